"""The privacy audit used carelessly: a label field holding names or record numbers (never on the
console), and a report rewritten over an earlier one that fails half way (the old one stays whole)."""

from __future__ import annotations

from collections import Counter

import pytest

from domainfm.corpus import Document

PLANTED = ("Zorblax", "Quintavius", "88123456")


class _Target:
    """The two things ``_with_known_labels`` asks of a classifier."""

    label_field = "label"
    labels = ("cardiology", "neurology")

    def gold_status(self, doc):
        if doc.label is None:
            return "missing", None
        return ("known", None) if doc.label in self.labels else ("unknown", doc.label)


def _left_out(train_labels, holdout_labels):
    from domainfm.privacy_audit.runner import _with_known_labels

    data = Counter()
    train = [Document(f"t{i}", "note", label=label) for i, label in enumerate(train_labels)]
    holdout = [Document(f"h{i}", "note", label=label) for i, label in enumerate(holdout_labels)]
    return data, _with_known_labels(_Target(), train, holdout, data)


def test_unknown_labels_that_look_like_identifiers_are_counted_not_shown():
    # a label field pointing at the patient column: two names and a record number, too few values
    # for the many-distinct-values test, each on more than one document
    data, (_, _, (report_warning, console)) = _left_out(
        ["cardiology", "Zorblax Quintavius", "Zorblax Quintavius", "MRN 88123456"],
        ["neurology", "MRN 88123456", "Zorblax Quintavius"])
    assert data["train_documents_left_out_label_unknown_to_model"] == 3
    assert data["holdout_documents_left_out_label_unknown_to_model"] == 2
    assert "2 distinct values (not shown: 2 of them read as names, record numbers" in console
    assert not any(part in console or part in report_warning for part in PLANTED), console
    # ordinary class names (a model trained without a class) are still listed for the user
    _, (_, _, (_, console)) = _left_out(["cardiology", "urology"], ["neurology", "urology", "oncology"])
    assert "(unknown: oncology=1, urology=2)" in console


def test_report_files_are_renamed_into_place_only_when_all_are_written(tmp_path):
    from domainfm.privacy_audit.runner import _write_report_files

    _write_report_files(tmp_path, {"report.json": "old report\n", "summary.md": "old summary"})

    with pytest.raises(TypeError):
        # the summary cannot be written (a rendering bug, a full disk): the new report.json must
        # not be left beside the old summary.md
        _write_report_files(tmp_path, {"report.json": "new report\n", "summary.md": object()})
    assert (tmp_path / "report.json").read_text() == "old report\n"
    assert (tmp_path / "summary.md").read_text() == "old summary"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "summary.md"]  # no temporary left


def test_a_lora_adapter_given_as_the_base_model_is_named_as_base_model(tmp_path):
    import json

    from domainfm.errors import ModelResolutionError
    from domainfm.privacy_audit.lm import ScoringModel

    adapter = tmp_path / "ft" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base-bert"}))
    # the message called it 'model.name', a field the audit's user never wrote
    with pytest.raises(ModelResolutionError, match=r"^base_model \(.*is a LoRA adapter.*'org/base-bert'"):
        ScoringModel.load(str(adapter.parent), field="base_model")
