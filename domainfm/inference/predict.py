"""Load a fine-tuned task model, predict documents and score them.

A model folder written by :func:`domainfm.finetune.finetune` holds::

    domainfm_task.json    task type, labels (id2label / label2id), base model, sequence settings
    adapter/              the LoRA adapter + trained head (peft ``save_pretrained``)   [LoRA]
    config.json, model.safetensors   the full model (full fine-tune, or LoRA with --merge)
    tokenizer files, finetune.yaml (resolved config), metrics.json, manifest.json

Without domainfm, ``AutoModelForSequenceClassification.from_pretrained(folder)`` (or
``...ForTokenClassification``) loads a full or merged model; an adapter loads with
``PeftModel.from_pretrained(AutoModelFor...from_pretrained(base, num_labels=..., id2label=...,
label2id=...), folder + "/adapter")`` using the labels and base from ``domainfm_task.json`` (and,
when its ``num_layers`` is not 0, ``num_hidden_layers=num_layers``: the adapter was trained on
that many of the base's layers).
A classifier trained with ``model.pooling: mean`` (``"pooling"`` in ``domainfm_task.json``) also
needs :func:`domainfm.inference.pooling.apply_pooling` on that base model, before the adapter is
attached; :func:`load_task_model` does it.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from domainfm.corpus.document import Document, Span
from domainfm.config import from_dict
from domainfm.errors import ConfigError, ModelResolutionError
from domainfm.finetune.config import NER_DECODINGS, TASK_TYPES, LongDocumentsSection
from domainfm.finetune.data import (
    IGNORE_INDEX,
    Feature,
    LabelMap,
    check_known_labels,
    decode_bio,
    decode_words,
    document_target,
    document_text,
    encode_documents,
)
from domainfm.metrics import classification_metrics, entity_metrics, multilabel_metrics, sigmoid, softmax
from domainfm.inference.pooling import apply_pooling
from domainfm.models import check_tokenizer_fits, quiet_hf_loading, quiet_peft_wrap

TASK_FILE = "domainfm_task.json"
ADAPTER_DIR = "adapter"


@dataclass
class TaskModel:
    """A loaded task model with everything needed to turn documents into predictions."""

    model: Any
    tokenizer: Any
    task: str
    label_map: LabelMap
    max_length: int
    long_documents: LongDocumentsSection
    text_field: str = "text"
    label_field: str = "label"
    info: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None  # where it was loaded from (None: built in memory)
    full_model: bool = False  # loaded from the folder's config.json (full or merged), not base + adapter

    @property
    def ner_decoding(self) -> str:
        # folders from before model.ner_decoding get the current default: it is decoding, not training
        return self.info.get("ner_decoding") or "words"

    @property
    def device(self):
        return next(self.model.parameters()).device


def auto_model_class(task: str):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return AutoModelForTokenClassification if task == "ner" else AutoModelForSequenceClassification


def task_model_config(source: str, task: str, label_map: LabelMap, hub: dict | None = None):
    """The base model's config with the task's label maps and problem type."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source, **(hub or {}))
    config.num_labels = len(label_map.tags)
    config.id2label = label_map.id2label
    config.label2id = label_map.label2id
    if task == "multilabel":
        config.problem_type = "multi_label_classification"
    elif task == "classification":
        config.problem_type = "single_label_classification"
    return config


def keep_first_layers(config, num_layers: int, model_name: str) -> None:
    """Make ``config`` describe only the first ``num_layers`` transformer layers.

    ``from_pretrained`` with such a config loads those layers and leaves the rest of the
    checkpoint unread, so the shallow model starts from the base model's own lower layers.

    Raises:
        ConfigError: the model has no layer count, or fewer layers than asked for.
    """
    total = getattr(config, "num_hidden_layers", None)
    if not isinstance(total, int):
        raise ConfigError(f"model.num_layers: {model_name!r} does not say how many layers it has "
                          "(no num_hidden_layers in its config); leave model.num_layers at 0")
    if num_layers > total:
        raise ConfigError(f"model.num_layers is {num_layers}, but {model_name!r} has {total} layers; "
                          f"use 1 to {total} (0 keeps them all)")
    config.num_hidden_layers = num_layers
    per_layer = getattr(config, "layer_types", None)  # per-layer attention kinds (newer encoders)
    if isinstance(per_layer, list) and len(per_layer) > num_layers:
        config.layer_types = per_layer[:num_layers]


def read_task_info(model_dir: str | os.PathLike, task: str | None = None) -> dict[str, Any]:
    """Read ``domainfm_task.json``, explaining what the folder is when it is not a task model.

    Raises:
        ConfigError: the folder is missing, is another stage's output, or holds a model of
            another task type than ``task``.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ConfigError(f"model folder {folder} does not exist")
    path = folder / TASK_FILE
    if not path.is_file():
        stage = None
        try:
            stage = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("stage")
        except (OSError, ValueError, AttributeError):
            pass
        what = f"a '{stage}' output" if stage else "not a 'domainfm finetune' output"
        hint = " (a base model: name it as model.name in a task file and fine-tune it)" if stage == "pretrain" else ""
        raise ConfigError(f"{folder} is {what}, not a fine-tuned task model: it has no {TASK_FILE}{hint}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _damaged(path, "it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _damaged(path, f"it is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(info, dict):
        raise _damaged(path, f"it holds {_describe(info)}, not an object")
    if info.get("task") not in TASK_TYPES:
        raise _damaged(path, f"'task' must be one of {', '.join(TASK_TYPES)}, {_got(info, 'task')}")
    labels = info.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise _damaged(path, f"'labels' must be a non-empty list of label names, {_got(info, 'labels')}")
    if task is not None and info.get("task") != task:
        raise ConfigError(f"{folder} holds a {info.get('task')!r} model, but a {task!r} model is needed here")
    return info


def _check_outputs(model, label_map: LabelMap, folder: Path) -> None:
    """The loaded head must have one output per label of the task file."""
    n_out = getattr(getattr(model, "config", None), "num_labels", None)
    if isinstance(n_out, int) and n_out != len(label_map.tags):
        raise _damaged(folder / TASK_FILE, f"it lists {len(label_map.tags)} outputs but the model in "
                                           f"{folder} has {n_out}: the two come from runs with other label sets")


def check_output_names(tm: TaskModel) -> None:
    """Predictions are named through the task file's ``labels``; its ``id2label`` / ``label2id``
    and a saved model's own ``config.json`` names must agree with it, or every class would be
    renamed silently (a hand-edited or mixed-up task file).

    Checked before predicting rather than at load time, so that tools which only read a folder's
    label set (the de-identifier's PHI label mapping) can still explain what is wrong with it.

    Raises:
        ConfigError: naming the file that disagrees.
    """
    if tm.folder is None:  # built in memory: no task file to disagree with
        return
    path = tm.folder / TASK_FILE
    expected = {str(k): v for k, v in tm.label_map.id2label.items()}
    if "id2label" in tm.info and tm.info["id2label"] != expected:
        raise _damaged(path, "'labels' and 'id2label' disagree (the output each label names differs)")
    if "label2id" in tm.info and tm.info["label2id"] != tm.label_map.label2id:
        raise _damaged(path, "'labels' and 'label2id' disagree (the output each label names differs)")
    names = getattr(getattr(tm.model, "config", None), "id2label", None)
    if tm.full_model and isinstance(names, dict) and names:
        names = {int(k): v for k, v in names.items()}
        if names != {i: f"LABEL_{i}" for i in names} and names != tm.label_map.id2label:  # LABEL_i: unnamed
            raise _damaged(path, f"its labels differ from those in {tm.folder / 'config.json'} (id2label): the two "
                                 "come from runs with other label sets")


def _damaged(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{path}: {what}; this file is written by 'domainfm finetune' with the model: restore it "
                       "or fine-tune again")


def _got(info: dict[str, Any], key: str) -> str:
    return f"got {_describe(info[key])}" if key in info else "but it is missing"


def _describe(value: Any) -> str:
    """A short scalar of the task file as it is (model settings, not document text), anything
    else by its JSON type (:func:`domainfm.corpus.document.describe_type`)."""
    from domainfm.corpus.document import describe_type

    if value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 40):
        return json.dumps(value)
    return describe_type(value)


def _sequence_settings(info: dict[str, Any], path: Path) -> tuple[int, LongDocumentsSection]:
    """``max_length`` and ``long_documents`` of a task file, checked."""
    max_length = info.get("max_length")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise _damaged(path, f"'max_length' must be a positive integer, {_got(info, 'max_length')}")
    long_documents = info.get("long_documents")
    if not isinstance(long_documents, dict):
        raise _damaged(path, f"'long_documents' must be an object, {_got(info, 'long_documents')}")
    try:  # unknown keys and bad values, named as in a task file
        return max_length, from_dict(LongDocumentsSection, long_documents, prefix="long_documents.")
    except ConfigError as exc:
        raise _damaged(path, str(exc)) from None


def adapter_base(folder: Path, recorded: str, identity: Any = None) -> str:
    """The base model a LoRA adapter folder needs, where it is now: a base that lay in the same
    run folder as the adapter (``run/pretrain/model`` beside ``run/finetune/model``) is read from
    the run folder the adapter lies in now, so a copied or moved run never loads the original's;
    anything else (a hub id, a model kept elsewhere) as ``domainfm_task.json`` recorded it.

    Where the folder was written is read off its ``manifest.json`` (the recorded path of its
    ``domainfm_task.json``); without one, the recorded base is kept. ``identity`` (the task file's
    ``base_model.identity``: the base folder's absolute path and fingerprint, recorded since
    fine-tuning records it) settles which candidate holds the base the adapter was trained on.

    Raises:
        ModelResolutionError: every candidate folder that exists holds another model than the
            recorded fingerprint (the base was retrained or replaced since: the adapter's weights
            would be applied to weights they were not trained with).
    """
    from domainfm.manifest import relocate, verify_model

    candidates = []
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        written = [Path(o["path"]) for o in manifest["outputs"] if Path(o["path"]).name == TASK_FILE]
    except (OSError, ValueError, TypeError, KeyError):  # no manifest or not ours: nothing says where it was
        written = []
    moved = relocate(recorded, written[0].parent, folder) if written else None
    if moved is not None and moved.exists():
        candidates.append(str(moved))
    candidates.append(recorded)
    fingerprint = identity.get("fingerprint") if isinstance(identity, dict) else None
    if not isinstance(fingerprint, dict):  # a hub model, or recorded before fingerprints
        return candidates[0]
    if isinstance(identity.get("path"), str):
        candidates.append(identity["path"])
    reasons = []
    for candidate in dict.fromkeys(candidates):
        if not Path(candidate).exists():
            continue
        found, why = verify_model({"path": str(Path(candidate).resolve()), "fingerprint": fingerprint})
        if found is not None:
            return candidate
        reasons.append(why)
    if reasons:
        raise ModelResolutionError(
            f"the adapter in {folder} was trained on another base model than the one now at {candidates[0]} "
            f"({reasons[0]}); give it back its base model (the folder fine-tuning read), or fine-tune again")
    return candidates[0]


def load_task_model(model_dir: str | os.PathLike, *, task: str | None = None, device: str | None = None,
                    ner_decoding: str | None = None) -> TaskModel:
    """Load a model folder written by :func:`domainfm.finetune.finetune`.

    Args:
        model_dir: the folder.
        task: when given, the folder must hold a model of this task type.
        device: ``cpu``, ``cuda``...; default: a GPU when there is one.
        ner_decoding: ``words`` or ``tokens`` instead of the folder's own (ner models only).

    Example:
        >>> tm = load_task_model("runs/demo")  # doctest: +SKIP
        >>> tm.task, tm.label_map.labels[:2]   # doctest: +SKIP
        ('classification', ['cardiology', 'endocrinology'])
    """
    import torch
    from transformers import AutoTokenizer

    folder = Path(model_dir)
    info = read_task_info(folder, task)
    if ner_decoding is not None:
        if info.get("task") != "ner":
            raise ConfigError(f"ner_decoding applies to ner models; {folder} holds a {info.get('task')!r} model")
        if ner_decoding not in NER_DECODINGS:
            raise ConfigError(f"ner_decoding must be one of {', '.join(NER_DECODINGS)}, got {ner_decoding!r}")
        info["ner_decoding"] = ner_decoding
    max_length, long_documents = _sequence_settings(info, folder / TASK_FILE)
    label_map = LabelMap(info["task"], list(info["labels"]))
    cls = auto_model_class(info["task"])
    with quiet_hf_loading(f"the model in {folder}"):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        pooling = info.get("pooling") or "cls"  # folders from before model.pooling: the [CLS] head
        if (folder / "config.json").is_file():
            model = apply_pooling(cls.from_pretrained(folder), pooling)
        else:
            from peft import PeftModel

            base = info["base_model"].get("resolved") if isinstance(info.get("base_model"), dict) else None
            if not isinstance(base, str) or not base:
                raise _damaged(folder / TASK_FILE, "'base_model.resolved' (the base model the adapter needs) is "
                                                   "missing")
            base = adapter_base(folder, base, info["base_model"].get("identity"))
            if not Path(base).exists() and not ("/" in base and not base.startswith((".", "/"))):
                raise ModelResolutionError(
                    f"the adapter in {folder} needs its base model {base!r}, which is not here; copy the base "
                    "model there or fine-tune with --merge to save a self-contained model")
            config = task_model_config(base, info["task"], label_map)
            num_layers = info.get("num_layers") or 0  # folders from before model.num_layers was recorded: all
            if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 0:
                raise _damaged(folder / TASK_FILE, f"'num_layers' must be an integer >= 0, {_got(info, 'num_layers')}")
            if num_layers:  # the adapter was trained on the base's first num_layers layers only
                keep_first_layers(config, num_layers, base)
            base_model = apply_pooling(cls.from_pretrained(base, config=config), pooling)
            adapter = folder / ADAPTER_DIR
            if not (adapter / "adapter_config.json").is_file() or not any(
                    (adapter / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
                raise _damaged(adapter, "the LoRA adapter's adapter_config.json or adapter_model.safetensors is "
                                        "missing")
            try:
                with quiet_peft_wrap():
                    model = PeftModel.from_pretrained(base_model, adapter)
            except RuntimeError as exc:  # torch's load_state_dict: a head of another size
                if "size mismatch" not in str(exc):
                    raise
                raise _damaged(folder / TASK_FILE, f"its {len(label_map.tags)} outputs "
                                                   f"({'tags' if info['task'] == 'ner' else 'labels'}) do not fit "
                                                   "the adapter's head, which was trained on another label set") from None
    check_tokenizer_fits(tokenizer, model, f"the model in {folder}")
    _check_outputs(model, label_map, folder)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    return TaskModel(model, tokenizer, info["task"], label_map, max_length, long_documents,
                     info.get("text_field", "text"), info.get("label_field", "label"), info, folder,
                     (folder / "config.json").is_file())


# ---------------------------------------------------------------------------------------------
# Batching and scoring


def collate(features: Sequence[Feature], pad_id: int, task: str | None = None, with_labels: bool = False):
    """Pad a batch; labels are padded with ``-100`` for ner."""
    import torch

    n = max(len(f.input_ids) for f in features)
    ids = torch.full((len(features), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), n), dtype=torch.long)
    for i, f in enumerate(features):
        ids[i, : len(f.input_ids)] = torch.tensor(f.input_ids)
        mask[i, : len(f.input_ids)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if with_labels:
        if task == "ner":
            labels = torch.full((len(features), n), IGNORE_INDEX, dtype=torch.long)
            for i, f in enumerate(features):
                labels[i, : len(f.label)] = torch.tensor(f.label)
        elif task == "multilabel":
            labels = torch.tensor([f.label for f in features], dtype=torch.float)
        else:
            labels = torch.tensor([f.label for f in features], dtype=torch.long)
        batch["labels"] = labels
    return batch


# On a CPU a forward pass costs in proportion to its cells, padding included, and a batch of a
# few rows runs about as fast per row as a full one; sorting alone still leaves short and long
# windows together when a call brings few of them (a deid batch of 32 notes gives about 55), and
# padding them to the longest cost a fifth to a third of the pass. On a GPU fewer, fuller
# batches win, so padding is not capped there.
CPU_MAX_PADDING = 0.1


def length_batches(lengths: Sequence[int], batch_size: int, max_padding: float = 1.0) -> list[list[int]]:
    """Indices of ``lengths`` in batches of similar length: sorted, then cut at ``batch_size`` rows
    or where padding every row to the next one's length would make more than ``max_padding`` of
    the batch's cells padding (``1.0``: rows only).

    Example:
        >>> length_batches([3, 40, 4, 38, 5], batch_size=4, max_padding=0.25)
        [[0, 2, 4], [3, 1]]
    """
    batches: list[list[int]] = []
    current: list[int] = []
    filled = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        rows, longest = len(current) + 1, lengths[i]
        if current and (rows > batch_size or filled + longest < (1 - max_padding) * rows * longest):
            batches.append(current)
            current, filled = [], 0
        current.append(i)
        filled += longest
    if current:
        batches.append(current)
    return batches


def padding_cap(device) -> float:
    """The ``max_padding`` of :func:`length_batches` for a model on ``device``."""
    return CPU_MAX_PADDING if str(device).split(":")[0] == "cpu" else 1.0


def score_features(model, features: Sequence[Feature], *, pad_id: int, batch_size: int = 64) -> list[np.ndarray]:
    """Logits per feature (``[classes]`` or ``[tokens, tags]``), in feature order; at most
    ``batch_size`` features a forward pass, grouped by length (:func:`length_batches`)."""
    import torch

    device = next(model.parameters()).device
    out: list[np.ndarray | None] = [None] * len(features)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for idx in length_batches([len(f.input_ids) for f in features], batch_size, padding_cap(device)):
            batch = collate([features[i] for i in idx], pad_id)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = logits[row, : len(features[i].input_ids)] if logits.ndim == 3 else logits[row]
    if was_training:
        model.train()
    return out  # type: ignore[return-value]


def _whole_words(text: str, spans: list[Span], edges: set[int] | None = None) -> list[Span]:
    """Spans widened to the letters and digits around their edges, overlapping ones of a label merged.

    Word-level decoding already gives whole words inside one sequence; a chunk that starts or
    ends inside a word (token-exact chunking can cut between sub-tokens) sees only part of it.
    With ``edges`` (the sequences' start and end offsets), only a span edge that lies on one is
    widened: elsewhere the span already ends where the tokenizer's word does, and a tokenizer
    whose words split letters from digits (byte-level BPE: ``COVID`` + ``19``) means it.
    """
    widened = []
    for s in spans:
        start, end = s.start, s.end
        while (edges is None or s.start in edges) and 0 < start < len(text) and text[start - 1].isalnum() \
                and text[start].isalnum():
            start -= 1
        while (edges is None or s.end in edges) and 0 < end < len(text) and text[end - 1].isalnum() \
                and text[end].isalnum():
            end += 1
        widened.append(Span(start, end, s.label, s.attrs))
    merged: list[Span] = []
    for s in sorted(widened, key=lambda x: (x.label, x.start, x.end)):
        last = merged[-1] if merged else None
        if last is not None and last.label == s.label and s.start < last.end:
            score = max(last.attrs.get("score", 0), s.attrs.get("score", 0))
            merged[-1] = Span(last.start, max(last.end, s.end), last.label, {**last.attrs, "score": score})
        else:
            merged.append(s)
    return merged


def document_outputs(task: str, label_map: LabelMap, docs: Sequence[Document], features: Sequence[Feature],
                     logits: Sequence[np.ndarray], aggregate: str = "mean", ner_decoding: str = "words",
                     texts: Sequence[str] | None = None) -> list[Any]:
    """Per document: class probabilities (classification / multilabel, from chunk logits
    aggregated with ``aggregate``) or predicted spans in document coordinates (ner, decoded as
    ``ner_decoding`` says: ``words`` or ``tokens``, see ``ModelSection``; with ``words`` and the
    documents' ``texts``, spans cut by a sequence edge are widened to whole words)."""
    if task == "ner":
        id2label = label_map.id2label
        per_feature = []
        for f, lg in zip(features, logits):
            probs = softmax(lg)
            if ner_decoding == "words" and f.word_ids:
                per_feature.append(decode_words(np.log(np.clip(probs, 1e-12, None)), f.word_ids, f.offsets, id2label))
            else:
                per_feature.append(decode_bio(probs.argmax(-1), probs.max(-1), f.offsets, id2label))
        spans: dict[int, list[Span]] = defaultdict(list)
        if features and features[0].chunk is not None:
            from domainfm.chunk import project_spans

            # per document position, not id: two documents given with one id (the Python API
            # does not refuse them) must not pool their chunks
            for i, items in _by_document(features, per_feature).items():
                doc_text = {items[0][0].chunk.doc_id: texts[i]} if texts is not None else None
                merged = project_spans([f.chunk for f, _ in items], [x for _, x in items], merge="union",
                                       texts=doc_text)
                spans[i] = next(iter(merged.values()), [])
        else:
            for f, found in zip(features, per_feature):
                spans[f.doc_index].extend(Span(s.start + f.offset, s.end + f.offset, s.label, s.attrs) for s in found)
        if ner_decoding == "words" and texts is not None:
            edges: dict[int, set[int]] = defaultdict(set)  # where a sequence may have cut a word
            for f in features:
                edges[f.doc_index] |= {f.offset, f.offset + f.length}
            spans = {i: _whole_words(texts[i], found, edges[i]) for i, found in spans.items()}
        return [sorted(spans.get(i, []), key=lambda s: (s.start, s.end, s.label)) for i in range(len(docs))]
    if features and features[0].chunk is not None:
        from domainfm.chunk import aggregate_predictions

        doc_logits = [None] * len(docs)
        for i, items in _by_document(features, logits).items():  # by position, as for ner above
            agg = aggregate_predictions([f.chunk for f, _ in items], [x for _, x in items], how=aggregate,
                                        weight="chars")
            doc_logits[i] = np.asarray(next(iter(agg.values())))
    else:
        doc_logits = [None] * len(docs)
        for f, lg in zip(features, logits):
            doc_logits[f.doc_index] = lg
    return [(sigmoid(lg) if task == "multilabel" else softmax(lg)) for lg in doc_logits]


def _by_document(features: Sequence[Feature], values: Sequence[Any]) -> dict[int, list[tuple[Feature, Any]]]:
    grouped: dict[int, list[tuple[Feature, Any]]] = defaultdict(list)
    for f, value in zip(features, values):
        grouped[f.doc_index].append((f, value))
    return grouped


def predict_outputs(tm: TaskModel, docs: Sequence[Document], *, batch_size: int = 64,
                    with_labels: bool = False) -> list[Any]:
    check_output_names(tm)
    encoded = encode_documents(docs, task=tm.task, tokenizer=tm.tokenizer, max_length=tm.max_length,
                               long_documents=tm.long_documents, label_map=tm.label_map,
                               label_field=tm.label_field, text_field=tm.text_field, with_labels=with_labels)
    pad = tm.tokenizer.pad_token_id if tm.tokenizer.pad_token_id is not None else 0
    logits = score_features(tm.model, encoded.features, pad_id=pad, batch_size=batch_size)
    texts = [document_text(d, tm.text_field) for d in docs] if tm.task == "ner" else None
    return document_outputs(tm.task, tm.label_map, docs, encoded.features, logits, tm.long_documents.aggregate,
                            tm.ner_decoding, texts)


def _record(tm: TaskModel, doc: Document, output: Any) -> dict[str, Any]:
    record = doc.to_dict()
    labels = tm.label_map.labels
    if tm.task == "ner":
        record["pred_spans"] = [{"start": s.start, "end": s.end, "label": s.label, "score": s.attrs.get("score")}
                                for s in output]
    elif tm.task == "multilabel":
        record["pred"] = {"labels": [l for l, p in zip(labels, output) if p >= 0.5],
                          "scores": {l: round(float(p), 4) for l, p in zip(labels, output)}}
    else:
        record["pred"] = {"label": labels[int(np.argmax(output))],
                          "scores": {l: round(float(p), 4) for l, p in zip(labels, output)}}
    return record


def _as_task_model(model: TaskModel | str | os.PathLike, task: str | None = None) -> TaskModel:
    return model if isinstance(model, TaskModel) else load_task_model(model, task=task)


def predict(model: TaskModel | str | os.PathLike, docs: Iterable[Document], *, batch_size: int = 64) -> list[dict]:
    """Predict documents; returns their JSONL records with ``pred`` (``label`` or ``labels``
    plus per-class ``scores``) or ``pred_spans`` (``start``, ``end``, ``label``, ``score``).

    Example:
        >>> records = predict("runs/demo", read_documents("notes.jsonl"))  # doctest: +SKIP
        >>> records[0]["pred"]["label"]                                     # doctest: +SKIP
        'cardiology'
    """
    tm = _as_task_model(model)
    docs = list(docs)
    if not docs:
        return []
    outputs = predict_outputs(tm, docs, batch_size=batch_size)
    return [_record(tm, d, o) for d, o in zip(docs, outputs)]


def compute_metrics(task: str, label_map: LabelMap, docs: Sequence[Document], outputs: Sequence[Any],
                    label_field: str) -> dict[str, Any]:
    """Score document outputs (from :func:`document_outputs`) against the documents' gold labels.

    NER scores with nothing to measure are ``None`` (see :func:`~domainfm.metrics.entity_metrics`):
    an entity type of the model that the documents and predictions both lack stays out of macro-F1.
    """
    labels = label_map.labels
    if task == "ner":
        targets = [document_target(d, task, label_field) for d in docs]
        metrics = entity_metrics([[s for s in t if s.label in labels] for t in targets], outputs, labels)
        # spans of types the model was not trained on are not scored (by design: a site maps some
        # types to the rules); they are counted, so a recall over fewer spans does not go unnoticed
        unknown = Counter(s.label for t in targets for s in t if s.label not in labels)
        if unknown:
            metrics["gold_spans_not_scored"] = {"reason": "types the model was not trained on",
                                                "by_label": dict(sorted(unknown.items()))}
        return metrics
    if task == "multilabel":
        y_true = np.array([[1 if l in document_target(d, task, label_field) else 0 for l in labels] for d in docs])
        y_pred = np.array([[1 if p >= 0.5 else 0 for p in o] for o in outputs])
        return multilabel_metrics(y_true.reshape(len(docs), len(labels)), y_pred.reshape(len(docs), len(labels)), labels)
    y_true = [document_target(d, task, label_field) for d in docs]
    y_pred = [labels[int(np.argmax(o))] for o in outputs]
    return classification_metrics(y_true, y_pred, labels)


def evaluate(model: TaskModel | str | os.PathLike, docs: Iterable[Document], *, batch_size: int = 64) -> dict:
    """Predict labelled documents and score them: accuracy, macro/micro F1, per-class scores and
    the confusion matrix (classification, multilabel) or entity-level F1 (ner).

    Raises:
        RecordError: a document lacks the gold field, or has a label the model never saw.
    """
    tm = _as_task_model(model)
    docs = list(docs)
    if not docs:
        raise ConfigError("no documents to evaluate")
    for d in docs:
        document_target(d, tm.task, tm.label_field)  # gold present and well-formed
    check_known_labels(docs, tm.label_map, tm.label_field)
    outputs = predict_outputs(tm, docs, batch_size=batch_size)
    return compute_metrics(tm.task, tm.label_map, docs, outputs, tm.label_field)
