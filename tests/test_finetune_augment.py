"""Mention replacement for ``ner`` training (``augment:``): the copies keep every span aligned
with its new text, leave other labels' text alone, are reproducible, and reach training."""

from __future__ import annotations

from domainfm.config import load_config
from domainfm.corpus import Document, Span, write_documents
from domainfm.finetune import TaskConfig, finetune
from domainfm.finetune.augment import AugmentConfig, augment_documents

TEXT = "Seen by Dr. SMITH and Jane Smith at MGH on 3/4. Smith is better. Lives in Boston."


def _doc() -> Document:
    spans = []
    for piece, label in (("SMITH", "NAME"), ("Jane Smith", "NAME"), ("MGH", "LOCATION"), ("3/4", "DATE"),
                         ("Smith is", "NAME"), ("Boston", "LOCATION")):
        start = TEXT.index(piece, spans[-1].end if spans else 0)
        end = start + len(piece) - (3 if piece == "Smith is" else 0)
        spans.append(Span(start, end, label, attrs={"source": "gold"}))
    return Document("n1", TEXT, {"patient_id": "p1"}, spans=spans)


def test_copies_replace_the_chosen_labels_and_keep_every_span_aligned():
    doc = _doc()
    copies, counts = augment_documents([doc], AugmentConfig(copies=3), seed=13)
    assert [c.id for c in copies] == ["n1#aug1", "n1#aug2", "n1#aug3"]
    assert counts == {"copies": 3, "documents": 3, "spans_replaced": 15, "spans_dropped": 0,
                      "labels": ["LOCATION", "NAME"], "name_locales": ["en_US"], "place_locales": ["en_US"]}
    originals = {doc.span_text(s) for s in doc.spans if s.label != "DATE"}
    texts = set()
    for copy in copies:
        assert [s.label for s in copy.spans] == [s.label for s in doc.spans]
        assert copy.meta == doc.meta and copy.spans[0].attrs == {"source": "gold"}
        got = {s.label: [] for s in copy.spans}
        for s in copy.spans:
            got[s.label].append(copy.span_text(s))
        assert got["DATE"] == ["3/4"]  # not a replaced label: same text
        assert not originals & set(got["NAME"] + got["LOCATION"])
        name, full, again = got["NAME"]
        assert name.isupper() and full.split()[1] == again  # case kept; one surname, one replacement
        assert copy.text.startswith("Seen by Dr. ") and copy.text.endswith(".")
        texts.add(copy.text)
    assert len(texts) == 3  # every copy draws other strings
    assert [c.text for c in augment_documents([doc], AugmentConfig(copies=3), seed=13)[0]] == [c.text for c in copies]
    assert augment_documents([doc], AugmentConfig(copies=1), seed=14)[0][0].text != copies[0].text


def test_name_locales_draw_names_from_those_lists_and_unknown_ones_are_named():
    import pytest

    from domainfm.deid.surrogates import name_lists
    from domainfm.errors import ConfigError

    doc = _doc()
    cfg = AugmentConfig(copies=6, name_locales=["fi_FI", "pl_PL"])
    copies, counts = augment_documents([doc], cfg, seed=13)
    assert counts["name_locales"] == ["fi_FI", "pl_PL"]
    male, female, last = name_lists(("fi_FI", "pl_PL"))
    known = {n.casefold() for n in male + female + last}
    drawn = [w for c in copies for s in c.spans if s.label == "NAME" for w in c.span_text(s).split()
             if w not in ("Dr.",)]
    assert drawn and all(w.casefold() in known for w in drawn)
    us = {n.casefold() for lists in name_lists(("en_US",)) for n in lists}
    assert any(w.casefold() not in us for w in drawn)  # not the US lists
    with pytest.raises(ConfigError, match="augment.name_locales.*xx_XX"):
        AugmentConfig(copies=1, name_locales=["xx_XX"])
    with pytest.raises(ConfigError, match="augment.name_locales"):
        AugmentConfig(copies=1, name_locales=[])


def test_place_locales_draw_places_of_those_countries_and_unknown_ones_are_named():
    import pytest

    from domainfm.deid.surrogates import SurrogateGenerator
    from domainfm.errors import ConfigError

    doc = _doc()  # "Lives in Boston.": a city
    us = augment_documents([doc], AugmentConfig(copies=8), seed=13)[0]
    many, counts = augment_documents([doc], AugmentConfig(copies=8, place_locales=["pl_PL", "de_DE", "fi_FI"]), seed=13)
    assert counts["place_locales"] == ["pl_PL", "de_DE", "fi_FI"]
    city = lambda c: c.span_text(c.spans[-1])  # noqa: E731
    assert [city(c) for c in many] != [city(c) for c in us]
    # the cities Faker's lists of those countries hold, one locale drawn per place
    import importlib

    known = {name for loc in ("pl_PL", "de_DE", "fi_FI")
             for name in importlib.import_module(f"faker.providers.address.{loc}").Provider.cities}
    assert all(city(c) in known for c in many)
    assert len({city(c) for c in many}) > 3
    assert all(c.text.endswith(".") and "\n" not in c.text for c in many)
    # one generator per worker: the same value gives the same place in two generators
    a = SurrogateGenerator(b"k" * 32, place_locales=("en_IN", "de_DE"))
    b = SurrogateGenerator(b"k" * 32, place_locales=("en_IN", "de_DE"))
    assert a.surrogate("Boston", "CITY", "s") == b.surrogate("Boston", "CITY", "s")
    assert "\n" not in a.surrogate("12 Elm Street", "LOCATION", "s")  # two-line streets become one line
    # a locale without a list the value needs (Germany's Faker has no state abbreviations)
    # falls back to ``locale``'s
    assert len(SurrogateGenerator(b"k" * 32, place_locales=("de_DE",)).surrogate("MA", "LOCATION", "s")) == 2
    with pytest.raises(ConfigError, match="augment.place_locales.*xx_XX"):
        AugmentConfig(copies=1, place_locales=["xx_XX"])
    with pytest.raises(ConfigError, match="augment.place_locales"):
        AugmentConfig(copies=1, place_locales="de_DE")


def test_a_span_glued_to_a_word_gets_a_space_so_no_word_crosses_its_edge():
    text = "Lives inBostonBuilding 4 and sees DrSmith."
    spans = [Span(8, 14, "LOCATION"), Span(14, 22, "LOCATION"), Span(36, 41, "NAME")]
    doc = Document("g", text, spans=spans)
    for copy in augment_documents([doc], AugmentConfig(copies=4), seed=5)[0]:
        for s in copy.spans:
            got = copy.span_text(s)
            assert got == got.strip() and got
            before, after = copy.text[s.start - 1], copy.text[s.end:s.end + 1]
            assert not (before.isalnum() and got[0].isalnum()) and not (after.isalnum() and got[-1].isalnum())
        assert copy.text.startswith("Lives in") and copy.text.endswith(".")


def test_spans_inside_a_replaced_span_are_dropped_and_counted():
    text = "Transferred to Saint Mary Hospital today."
    outer = Span(15, 34, "LOCATION")
    inner = Span(21, 25, "NAME")  # "Mary": its text goes with the place
    doc = Document("n2", text, spans=[outer, inner, Span(35, 40, "DATE")])
    [copy], counts = augment_documents([doc], AugmentConfig(copies=1), seed=1)
    assert counts["spans_replaced"] == 1 and counts["spans_dropped"] == 1
    assert [s.label for s in copy.spans] == ["LOCATION", "DATE"]
    assert copy.span_text(copy.spans[1]) == "today"


def test_off_by_default_and_documents_without_a_replaced_label_are_not_copied():
    doc = Document("n3", "Seen on 3/4.", spans=[Span(8, 11, "DATE")])
    assert augment_documents([doc], AugmentConfig(), seed=1) == ([], {"copies": 0})
    assert augment_documents([doc], AugmentConfig(copies=2), seed=1)[0] == []


def test_finetune_trains_on_the_copies_and_records_them(tmp_path, clinical_corpus, tiny_model_dir):
    from domainfm.corpus import read_documents
    from domainfm.finetune.split import read_split

    docs = list(read_documents(clinical_corpus))[:24]
    write_documents(tmp_path / "ner.jsonl", docs)
    overrides = {"task": "ner", "model.name": str(tiny_model_dir), "model.max_length": 64,
                 "data.train": str(tmp_path / "ner.jsonl"), "data.eval_fraction": 0.25,
                 "labels.names": ["PATIENT", "DATE"], "augment.copies": 2, "augment.labels": ["PATIENT"],
                 "long_documents.strategy": "truncate", "train.max_steps": 1, "train.eval_every": 1,
                 "train.batch_size": 8, "allow_identified_data": True}
    result = finetune(load_config(TaskConfig, overrides=overrides), tmp_path / "m")
    data = result.metrics["data"]
    split = read_split(tmp_path / "m")
    copied = [d for d in docs if split.side(d) == "train" and any(s.label == "PATIENT" for s in d.spans)]
    assert split.eval and copied
    assert data["augment"]["documents"] == 2 * len(copied)  # training documents only, never the held-out ones
    assert data["train"]["documents"] == data["train_documents"] + data["augment"]["documents"]
