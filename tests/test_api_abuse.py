"""The Python API as a notebook user calls it: configs built directly, with the wrong types.

The YAML path converts and checks every value (:func:`domainfm.config.from_dict`); a config
built in Python must be checked the same way: a ``ConfigError`` naming the field and what it
takes, never a ``TypeError`` from a comparison, and never a value that reads as something else
(the string ``"false"`` is true, a string is a list of its characters, NaN passes every range
check by failing it).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from domainfm.audit import AuditConfig
from domainfm.chunk import ChunkConfig
from domainfm.deid import DeidConfig
from domainfm.distributed.config import EngineConfig
from domainfm.errors import ConfigError
from domainfm.finetune import DataSection, LabelsSection, LongDocumentsSection, ModelSection, TaskConfig, TrainSection
from domainfm.label import LabelConfig
from domainfm.label.span_config import SpanLabelConfig
from domainfm.pretrain import DataConfig, LoraSection, MaskingConfig, ModelConfig, PretrainConfig, TrainConfig
from domainfm.privacy_audit import CanaryConfig, PrivacyAuditConfig, PrivacyGateConfig

NAN, INF = float("nan"), float("inf")


def _task(**kwargs) -> TaskConfig:
    return TaskConfig(data=DataSection(train="notes.jsonl"), **kwargs)


@pytest.mark.parametrize("build, message", [
    # a string where a bool is expected is truthy: "false" would switch the setting on
    (lambda: MaskingConfig(packing="no"), "'masking.packing' must be true or false"),
    (lambda: MaskingConfig(whole_word_mask="false"), "'masking.whole_word_mask' must be true or false"),
    (lambda: TrainSection(full_finetune="false"), "'train.full_finetune' must be true or false"),
    (lambda: TrainSection(checkpoint="no"), "'train.checkpoint' must be true or false"),
    (lambda: LoraSection(enabled="false"), "'lora.enabled' must be true or false"),
    (lambda: PretrainConfig(allow_identified_data="no"), "'allow_identified_data' must be true or false"),
    (lambda: CanaryConfig(enabled="no"), "'canaries.enabled' must be true or false"),
    # a string where a list is expected would be read character by character
    (lambda: DataConfig(paths="notes.jsonl"), "'data.paths' must be a list"),
    (lambda: LabelsSection(names="positive"), "'labels.names' must be a list"),
    (lambda: DataSection(train="a.jsonl", prepare="csv"), "'data.prepare' must be a list"),
    (lambda: AuditConfig(group_by="meta.sex"), "'group_by' must be a list"),
    (lambda: AuditConfig(counterfactuals="gender"), "'counterfactuals' must be a list"),
    (lambda: LabelConfig(c_grid=2.0), "'c_grid' must be a list"),
    (lambda: DeidConfig(entities="DATE"), "'entities' must be a list"),
    # a choice outside its Literal
    (lambda: TrainConfig(precision="fp8"), "'train.precision' must be one of"),
    (lambda: TrainConfig(report_to="wandb"), "'train.report_to' must be one of"),
    (lambda: ModelConfig(objective="clm"), "'model.objective' must be one of"),
    (lambda: LongDocumentsSection(strategy="chunks"), "(did you mean 'chunk'?)"),
    (lambda: LongDocumentsSection(aggregate="sum"), "'long_documents.aggregate' must be one of"),
    (lambda: TrainSection(class_weights="auto"), "'train.class_weights' must be one of"),
    (lambda: _task(task="ner2"), "'task' must be one of"),
    # a number of the wrong kind, or text where a number is expected
    (lambda: TrainConfig(lr="3e-4"), "'train.lr' must be a number"),
    (lambda: TrainConfig(batch_size=8.5), "'train.batch_size' must be an integer"),
    (lambda: TrainConfig(seed=None), "'train.seed' must be an integer"),
    (lambda: MaskingConfig(seq_len="128"), "'masking.seq_len' must be an integer"),
    (lambda: ModelSection(max_length=128.0), "'model.max_length' must be an integer"),
    (lambda: LongDocumentsSection(overlap="8"), "'long_documents.overlap' must be an integer"),
    (lambda: LabelsSection(min_examples=1.5), "'labels.min_examples' must be an integer"),
    (lambda: DataConfig(max_documents="5"), "'data.max_documents' must be an integer"),
    (lambda: AuditConfig(calibration_split="0.3"), "'calibration_split' must be a number"),
    (lambda: AuditConfig(explain=None), "'explain' must be an integer"),
    (lambda: AuditConfig(explain=2.5), "'explain' must be an integer"),
    (lambda: CanaryConfig(per_repeat=1.5), "'canaries.per_repeat' must be an integer"),
    (lambda: PrivacyAuditConfig(batch_size=True), "'batch_size' must be an integer"),
    (lambda: DataConfig(split_key=None), "'data.split_key' must be a string"),
    (lambda: ModelConfig(name=None), "'model.name' must be a string"),
    (lambda: DeidConfig(spacy_model=None), "'spacy_model' must be a string"),
    (lambda: AuditConfig(positive_class=1), "'positive_class' must be a string"),
    # NaN fails every comparison, so a bare "< 0" check takes it; inf is no setting either
    (lambda: TrainConfig(weight_decay=NAN), "'train.weight_decay' must be a finite number, got nan"),
    (lambda: TrainConfig(max_grad_norm=NAN), "'train.max_grad_norm' must be a finite number"),
    (lambda: TrainSection(max_grad_norm=INF), "'train.max_grad_norm' must be a finite number, got inf"),
    (lambda: TrainConfig(epochs=INF), "'train.epochs' must be a finite number"),
    (lambda: MaskingConfig(mask_replace_prob=NAN), "'masking.mask_replace_prob' must be a finite number"),
    (lambda: SpanLabelConfig(c=NAN), "'c' must be a finite number"),
    (lambda: LabelConfig(c_grid=[2.0, INF]), "'c_grid[1]' must be a finite number"),
    # a section of the wrong kind
    (lambda: PretrainConfig(train=None), "config section 'train' must be a TrainConfig or a mapping, got None"),
    (lambda: PretrainConfig(train=TrainSection()), "must be a TrainConfig or a mapping, got a TrainSection"),
    (lambda: TaskConfig(data="notes.jsonl"), "config section 'data' must be a DataSection or a mapping, got str"),
    (lambda: TaskConfig(data={"train": "a.jsonl", "eval_fraction": 2}), "data.eval_fraction must be in [0, 1)"),
    (lambda: PrivacyAuditConfig(gate={"max_mia_auc": 2}), "gate.max_mia_auc must be a finite number in [0, 1]"),
    (lambda: EngineConfig(workers="2"), "'engine.workers' must be an integer"),
])
def test_a_wrong_value_in_python_is_a_config_error_naming_the_field(build, message):
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value)


def test_what_python_users_naturally_pass_is_taken_as_the_yaml_value():
    # numpy scalars from a sweep, paths as Path objects, tuples for lists, sections as mappings
    chunk = ChunkConfig(tokenizer=Path("runs/tokenizer"), max_tokens=np.int64(256), overlap=np.int32(32))
    assert (chunk.tokenizer, chunk.max_tokens, chunk.overlap) == ("runs/tokenizer", 256, 32)
    assert type(chunk.max_tokens) is int
    deid = DeidConfig(score_threshold=np.float32(0.5), batch_size=np.int64(8), operator="surrogate",
                      vault=Path("/tmp/vault.db"))
    assert deid.score_threshold == 0.5 and type(deid.batch_size) is int and deid.vault == "/tmp/vault.db"
    assert AuditConfig(group_by=("meta.sex",), allow_identifying_groups=("meta.sex",)).group_by == ["meta.sex"]
    assert LabelConfig(seed=np.int64(3), c_grid=[1, 4]).c_grid == (1.0, 4.0)
    cfg = PretrainConfig(train={"lr": 1e-3, "max_steps": 5}, data={"paths": [Path("a.jsonl")]})
    assert isinstance(cfg.train, TrainConfig) and cfg.train.lr == 1e-3 and cfg.data.paths == [Path("a.jsonl")]
    task = _task(canaries={"enabled": True}, train={"batch_size": np.int64(4)})
    assert task.canaries.enabled is True and task.train.batch_size == 4
    gate = PrivacyAuditConfig(gate={"max_mia_auc": np.float64(0.55)}).gate
    assert isinstance(gate, PrivacyGateConfig) and type(gate.max_mia_auc) is float
    assert SpanLabelConfig(probe_layers=3, dictionaries="diseases").probe_layers == (3,)


def test_a_section_class_finetune_does_not_own_is_still_checked():
    # lora, augment and distill are shared dataclasses; the task checks their values too
    task = _task()
    task.lora.use_rslora = "no"
    with pytest.raises(ConfigError, match="'lora.use_rslora' must be true or false"):
        TaskConfig(data=task.data, lora=task.lora)


@pytest.mark.parametrize("stage, section, message", [
    ("pretrain", {"train": {"lr": 5}}, "pretrain.train.lr must be in (0, 1)"),
    ("pretrain", {"masking": {"seq_len": 2}}, "pretrain.masking.seq_len must be an int"),
    ("pretrain", {"data": {"eval_fraction": 2}}, "pretrain.data.eval_fraction must be in [0, 1)"),
    ("pretrain", {"train": {"batch_tokens": 64}},
     "pretrain.train.batch_tokens (64) must be >= pretrain.masking.seq_len"),
    ("pretrain", {"canaries": {"per_repeat": 0}}, "pretrain.canaries.per_repeat must be an int >= 1"),
    ("finetune", {"train": {"lr": 5}}, "finetune.train.lr must be in (0, 1)"),
    ("finetune", {"model": {"max_length": 2}}, "finetune.model.max_length must be an int"),
    ("finetune", {"labels": {"min_examples": 0}}, "finetune.labels.min_examples must be >= 1"),
    ("finetune", {"train": {"metric": "f1"}}, "finetune.train.metric 'f1' does not apply"),
    ("finetune", {"train": {"weight_decay": NAN}}, "'finetune.train.weight_decay' must be a finite number"),
])
def test_a_nested_error_in_a_pipeline_names_its_stage(tmp_path, stage, section, message):
    from domainfm.pipeline import pipeline_from_dict

    data = {"run_dir": str(tmp_path / "run"), "import": {"format": "jsonl", "src": str(tmp_path / "notes.jsonl")},
            stage: section}
    with pytest.raises(ConfigError) as info:
        pipeline_from_dict(data)
    assert message in str(info.value)


def test_a_value_that_only_looks_like_a_section_key_is_left_alone():
    from domainfm.config import from_dict

    # 'train.jsonl' is a file name, not the train section's key: only section keys get the prefix
    with pytest.raises(ConfigError) as info:
        from_dict(TaskConfig, {"data": {"train": "train.jsonl", "eval_fraction": 2}}, prefix="finetune.")
    assert "finetune.data.eval_fraction" in str(info.value)
    with pytest.raises(ConfigError) as info:
        from_dict(TaskConfig, {"data": {"train": "train.jsonl"}, "task": "ner", "augment": {"copies": 0},
                               "labels": {"map": {"a": ""}}}, prefix="finetune.")
    assert "finetune.labels.map" in str(info.value) and "finetune.finetune" not in str(info.value)


def test_a_stage_config_argument_may_be_a_mapping_and_anything_else_is_named():
    from domainfm.config import as_config

    assert as_config({"max_tokens": 128, "overlap": 16}, ChunkConfig) == ChunkConfig(max_tokens=128, overlap=16)
    assert as_config(None, DeidConfig) == DeidConfig()
    cfg = LabelConfig(seed=3)
    assert as_config(cfg, LabelConfig) is cfg
    with pytest.raises(ConfigError, match=r"must be a ChunkConfig \(or a mapping of its fields\), got a DeidConfig"):
        as_config(DeidConfig(), ChunkConfig)
    with pytest.raises(ConfigError, match="unknown config key 'max_token' .did you mean 'max_tokens'"):
        as_config({"max_token": 12}, ChunkConfig)


def test_stage_functions_take_a_mapping_and_name_a_wrong_config_type():
    from domainfm.chunk import chunk_documents
    from domainfm.corpus import Document
    from domainfm.deid import PhiDetector

    doc = Document(id="n1", text="HPI: cough for 3 days.\nPLAN: rest.")
    chunks = list(chunk_documents([doc], {"max_tokens": 128, "overlap": 16, "profile": "clinical"}))
    assert [c.id for c in chunks] == ["n1#0"]
    with pytest.raises(ConfigError, match="config must be a ChunkConfig .* got list"):
        list(chunk_documents([doc], [128]))
    with pytest.raises(ConfigError, match="config must be a DeidConfig .* got a ChunkConfig"):
        PhiDetector(ChunkConfig())
    assert PhiDetector({"profile": "clinical"}).config.profile == "clinical"


def test_a_document_that_could_not_be_read_back_is_never_written(tmp_path):
    from domainfm.corpus import Document, Span
    from domainfm.corpus.io import DocumentWriter
    from domainfm.errors import RecordError

    bad = [Document(id="d1", text="short", spans=[Span(2, 40, "NAME")]),  # past the text's end
           Document(id="d2", text=None),
           Document(id="d3", text="ok", meta={"age": np.int64(40)})]  # numpy values are not JSON
    for doc, reason in zip(bad, ["span 0 [2:40]", "'text' must be a string", "type int64 cannot be written"]):
        with pytest.raises(RecordError, match=re.escape(reason)):
            with DocumentWriter(tmp_path / "out.jsonl") as out:
                out.write(doc)
        assert not (tmp_path / "out.jsonl").exists()  # the atomic writer left nothing behind
    with pytest.raises(ConfigError, match="documents to write must be Document objects, got an object"):
        with DocumentWriter(tmp_path / "out.jsonl") as out:
            out.write({"id": "d4", "text": "x"})


def test_one_document_or_a_string_where_a_stream_is_expected_is_named():
    from domainfm.chunk import chunk_documents
    from domainfm.corpus import Document
    from domainfm.deid import deidentify
    from domainfm.deid.engine import detect

    doc = Document(id="n1", text="Seen today.")
    with pytest.raises(ConfigError, match=r"docs must be an iterable of Document; for one document pass \[doc\]"):
        list(chunk_documents(doc, ChunkConfig()))
    with pytest.raises(ConfigError, match="docs must be an iterable of Document .* got a string"):
        list(deidentify("Seen today.", DeidConfig(operator="tag")))
    with pytest.raises(ConfigError, match="docs must be Document objects, got an object; Document.from_dict"):
        list(chunk_documents([{"id": "n1", "text": "x"}], ChunkConfig()))
    with pytest.raises(ConfigError, match="docs must be an iterable of Document"):
        list(detect({"id": "n1"}, DeidConfig()))


def test_the_chunker_rejects_a_span_past_the_text_instead_of_cutting_it():
    from domainfm.chunk.splitter import Chunker
    from domainfm.corpus import Document, Span

    docs = [Document(id="a", text="First note."), Document(id="b", text="short", spans=[Span(1, 40, "X")]),
            Document(id="c", text="Third note.")]
    results = list(Chunker(ChunkConfig()).iter_documents(docs))
    assert [r.doc.id for r in results] == ["a", "b", "c"]  # input order kept around the reject
    assert results[0].error is None and results[2].error is None
    assert "span 0 [1:40]" in str(results[1].error) and not results[1].chunks
