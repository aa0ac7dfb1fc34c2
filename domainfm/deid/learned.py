"""PHI spans from a token-classification model: your own, or a public de-id tagger.

Rules generalise across hospitals but miss what only a site's notes show (its ward names, its
way of writing names); a model trained on annotated notes of that site learns those.
:class:`LearnedPhiTagger` runs such a model and hands its spans to
:class:`domainfm.deid.engine.PhiDetector`, which adds them to the rule detections (a union:
recall first). Where a learned span overlaps a rule detection, the rule's label wins (rules tell
a doctor from a patient, which the surrogates use); the learned span can still widen it.

Three kinds of model load:

- a ``domainfm finetune`` NER folder (``domainfm_task.json``), decoded as it was trained;
- any Hugging Face token-classification model saved with ``save_pretrained`` (a folder with
  ``config.json``), or
- a Hub id (``owner/name``), loaded by ``from_pretrained`` (which downloads unless
  ``HF_HUB_OFFLINE`` is set; the cache is reused).

Long notes are cut into overlapping token windows; each word takes the tag of its first
sub-token in the window where it is furthest from an edge. Tags of any scheme (IOB2, BIOES,
BILOU, bare IO) decode into spans (:mod:`domainfm.deid.tagger_labels`), whose entity types map
onto the canonical PHI labels through a label map. Windows of all texts of a call are sorted by
length and batched, so padding stays small. ``quantize="int8"`` replaces the model's Linear
layers with dynamically quantised int8 ones (CPU only).

Example:
    >>> tagger = LearnedPhiTagger("runs/deid-ner")           # doctest: +SKIP
    >>> tagger.detect(["Seen on THORNBURY 4 by Dr. Okafor."])  # doctest: +SKIP
    [[Detection(start=8, end=19, label='LOCATION', score=0.97, recognizer='learned_ner'), ...]]
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from domainfm.deid.detection import LEARNED
from domainfm.errors import ConfigError, ModelResolutionError

QUANTIZE = ("none", "int8", "auto")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def model_kind(source: str | os.PathLike) -> Literal["domainfm", "hf-folder", "hub"]:
    """What ``source`` names: a ``domainfm finetune`` folder, a ``save_pretrained`` folder or a Hub id.

    Raises:
        ConfigError: a folder that is neither, a missing path, or a finetune folder of another task.
    """
    from domainfm.inference.predict import TASK_FILE, read_task_info

    path = Path(source)
    if path.is_dir():
        if (path / TASK_FILE).is_file():
            read_task_info(path, task="ner")
            return "domainfm"
        config = path / "config.json"
        if not config.is_file():
            raise ConfigError(f"{path} holds no model: neither {TASK_FILE} ('domainfm finetune') nor config.json "
                              "('save_pretrained')")
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{config}: not readable JSON ({str(exc).splitlines()[0][:120]})") from None
        architectures = data.get("architectures") or []
        if architectures and not any(a.endswith("ForTokenClassification") for a in architectures):
            raise ConfigError(f"{path} holds a {architectures[0]}, not a token-classification model")
        id2label = data.get("id2label") or {}
        if len(id2label) < 2:
            raise ConfigError(f"{path}/config.json has no id2label with the model's tags")
        # the tagger reads tag i as the model's output i: every output needs its one tag
        if sorted(str(k) for k in id2label) != sorted(str(i) for i in range(len(id2label))):
            raise ConfigError(f"{path}/config.json: id2label must number the model's {len(id2label)} tags 0 to "
                              f"{len(id2label) - 1}, got ids {', '.join(sorted(map(str, id2label)))}")
        return "hf-folder"
    # "runs/deid-ner" with a "runs" folder here is a local path with a typo, not a Hub id
    if _HUB_ID.match(str(source)) and not str(source).startswith((".", "/", "~")) and not path.parent.is_dir():
        return "hub"
    raise ConfigError(f"model folder {path} does not exist (nor is it a Hub id like 'owner/name')")


def canonical_for(name: str, label_map: str | Mapping[str, str | None] | None = None) -> str | None:
    """The canonical PHI label of a model's entity type; ``None`` for a type that is not PHI.

    Raises:
        ConfigError: when no label map knows the type.
    """
    from domainfm.deid.tagger_labels import resolve_label_map

    return resolve_label_map([name], label_map)[name]


def quantize_int8(model):
    """``model`` with every ``torch.nn.Linear`` replaced by a dynamically quantised int8 one
    (weights int8 with a scale per output row, activations quantised per batch; runs on CPU).

    One scale per row rather than per matrix: a matrix's largest weight otherwise sets the step
    for all its rows. On the recipe's 6-layer model and 733 notes, one scale per matrix lost 26
    of fp32's 554 spans and added 9; one per row, 8 and 8, at the same speed."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch >= 2.10 flags its quantized tensor types as deprecated
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


class _HFTagger:
    """A Hugging Face token-classification model and its fast tokenizer, as word-tag spans."""

    def __init__(self, source: str, device: str, hub: dict[str, Any] | None = None):
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from domainfm.models import check_tokenizer_fits, quiet_hf_loading

        with quiet_hf_loading(f"the token-classification model {source!r}"):
            self.tokenizer = AutoTokenizer.from_pretrained(source, **(hub or {}))
            self.model, loading = AutoModelForTokenClassification.from_pretrained(
                source, output_loading_info=True, **(hub or {}))
        # a bare encoder's weights under a config that names tags load without complaint (the
        # load report is silenced), and the randomly initialised head then tags noise as PHI
        prefix = f"{self.model.base_model_prefix}."
        untrained = sorted(k for k in loading.get("missing_keys", ()) if not k.startswith(prefix))
        if untrained:
            raise ConfigError(f"{source} is not a trained token-classification model: its weights have no "
                              f"{', '.join(untrained[:3])} (the tagging head); give the folder of a fine-tuned "
                              "tagger ('domainfm finetune' with task: ner, or a save_pretrained token classifier)")
        if not getattr(self.tokenizer, "is_fast", False):
            raise ModelResolutionError(f"{source!r} has no fast tokenizer (tokenizer.json): word offsets need one")
        check_tokenizer_fits(self.tokenizer, self.model, f"the token-classification model {source!r}")
        config = self.model.config
        self.tags = [str(config.id2label[i]) for i in range(len(config.id2label))]
        limits = [512, int(getattr(config, "max_position_embeddings", 512) or 512) - 2]
        if 0 < int(self.tokenizer.model_max_length or 0) < 100_000:
            limits.append(int(self.tokenizer.model_max_length))
        self.max_length = max(8, min(limits))
        self.stride = min(64, self.max_length // 4)
        self.model.to(device).eval()

    def entity_types(self) -> list[str]:
        from domainfm.deid.tagger_labels import parse_tag

        types: list[str] = []
        for tag in self.tags:
            kind = parse_tag(tag)[1]
            if kind is not None and kind not in types:
                types.append(kind)
        return types

    def spans(self, texts: Sequence[str], batch_size: int) -> list[list[tuple[int, int, str, float]]]:
        import torch

        from domainfm.deid.tagger_labels import decode_tags
        from domainfm.inference.predict import length_batches, padding_cap

        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, stride=self.stride,
                             return_overflowing_tokens=True, return_offsets_mapping=True,
                             return_attention_mask=False, return_token_type_ids=False, verbose=False)
        ids = enc["input_ids"]
        owner = enc["overflow_to_sample_mapping"]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = next(self.model.parameters()).device
        tag_ids: list[np.ndarray | None] = [None] * len(ids)
        probs: list[np.ndarray | None] = [None] * len(ids)
        with torch.inference_mode():
            for idx in length_batches([len(k) for k in ids], batch_size, padding_cap(device)):
                n = max(len(ids[k]) for k in idx)
                batch = torch.full((len(idx), n), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), n), dtype=torch.long)
                for row, k in enumerate(idx):
                    batch[row, : len(ids[k])] = torch.tensor(ids[k])
                    mask[row, : len(ids[k])] = 1
                logits = self.model(input_ids=batch.to(device), attention_mask=mask.to(device)).logits
                p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                for row, k in enumerate(idx):
                    tag_ids[k] = p[row, : len(ids[k])].argmax(-1)
                    probs[k] = p[row, : len(ids[k])].max(-1)
        # per text: word -> [margin from a window edge, tag, score, start, end]
        words: list[dict[int, list]] = [{} for _ in texts]
        for k in range(len(ids)):
            word_ids, offsets, n = enc.word_ids(k), enc["offset_mapping"][k], len(ids[k])
            seen: dict[int, list] = {}
            for pos, w in enumerate(word_ids):
                if w is None or offsets[pos][1] <= offsets[pos][0]:
                    continue
                if w not in seen:
                    seen[w] = [min(pos, n - 1 - pos), int(tag_ids[k][pos]), float(probs[k][pos]),
                               offsets[pos][0], offsets[pos][1]]
                else:
                    seen[w][4] = offsets[pos][1]
            best = words[owner[k]]
            for w, item in seen.items():
                known = best.get(w)
                if known is None:
                    best[w] = item
                    continue
                # A window edge can fall inside a word, leaving each window only some of its
                # sub-tokens: the word's tag is its first sub-token's (the window holding the
                # earliest one, then the one furthest from an edge), its extent every window's
                # part of it together, so no cut word ends early and leaves its tail unreplaced.
                if item[3] < known[3] or (item[3] == known[3] and item[0] > known[0]):
                    known[:3] = item[:3]
                known[3], known[4] = min(known[3], item[3]), max(known[4], item[4])
        out: list[list[tuple[int, int, str, float]]] = []
        for best in words:
            keys = sorted(best)
            tags = [self.tags[best[w][1]] for w in keys]
            scores = [best[w][2] for w in keys]
            out.append([(best[keys[a]][3], best[keys[b - 1]][4], kind, score)
                        for a, b, kind, score in decode_tags(tags, scores)])
        return out


class _TaskTagger:
    """A ``domainfm finetune`` NER folder, decoded as :func:`domainfm.inference.predict.predict_outputs` does."""

    def __init__(self, source: str, device: str):
        from domainfm.inference.predict import load_task_model

        self.task_model = load_task_model(source, task="ner", device=device)
        if hasattr(self.task_model.model, "merge_and_unload"):  # a LoRA adapter: one Linear per layer again
            self.task_model.model = self.task_model.model.merge_and_unload()

    @property
    def model(self):
        return self.task_model.model

    @model.setter
    def model(self, value) -> None:
        self.task_model.model = value

    def entity_types(self) -> list[str]:
        return list(self.task_model.label_map.labels)

    def spans(self, texts: Sequence[str], batch_size: int) -> list[list[tuple[int, int, str, float]]]:
        from domainfm.corpus.document import Document
        from domainfm.inference.predict import predict_outputs

        docs = [Document(f"text-{i}", t) for i, t in enumerate(texts)]
        outputs = predict_outputs(self.task_model, docs, batch_size=batch_size)
        return [[(s.start, s.end, s.label, float(s.attrs.get("score", 1.0))) for s in spans] for spans in outputs]


def tag_once(detect, seen: dict[str, list] | None = None):
    """``detect`` (a tagger's ``texts -> spans per text``) that tags each distinct text once and
    answers repeats from memory (``seen``, text -> spans, may start filled): for measurements
    that run the same notes through a detector several times (floors, split credit). The same
    span lists are returned again; callers must not change them."""
    seen = {} if seen is None else seen

    def tagged(texts: list[str]) -> list:
        missing = [t for t in dict.fromkeys(texts) if t not in seen]
        if missing:
            seen.update(zip(missing, detect(missing)))
        return [seen[t] for t in texts]

    return tagged


class LearnedPhiTagger:
    """A token-classification model as a PHI detector; built once, then called per batch of texts.

    Args:
        model: a ``domainfm finetune`` NER folder, a ``save_pretrained`` token-classification
            folder, or a Hugging Face Hub id.
        label_map: a shipped map's name (``i2b2``, ``obi``, ``stanford``, ``conll``,
            ``ontonotes``) to consult first, or ``{entity type: canonical label or None}``; the
            model's types that it leaves out are looked up in the shipped maps.
        batch_size: windows per forward pass (1 when quantised).
        device: ``cpu``, ``cuda``...; default: a GPU when there is one.
        quantize: ``int8`` (dynamic int8 Linear layers; on CPU only, ignored on a GPU), ``none``,
            or ``auto`` (int8 on CPU, none on a GPU).
        hub: extra keyword arguments for ``from_pretrained`` of a Hub id (``revision``,
            ``cache_dir``, ``token``...).

    Raises:
        ConfigError: an entity type no label map knows, a bad ``quantize``.
        ModelResolutionError: the model cannot be loaded.
    """

    def __init__(self, model: str | os.PathLike, *, label_map: str | Mapping[str, str | None] | None = None,
                 batch_size: int = 32, device: str | None = None, quantize: str = "none",
                 hub: dict[str, Any] | None = None):
        import torch

        from domainfm.deid.tagger_labels import resolve_label_map

        if quantize not in QUANTIZE:
            raise ConfigError(f"ner_quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
        self.source = str(model)
        self.kind = model_kind(self.source)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._tagger = (_TaskTagger(self.source, device) if self.kind == "domainfm"
                        else _HFTagger(self.source, device, hub))
        self.labels = resolve_label_map(self._tagger.entity_types(), label_map)
        self.quantized = quantize in ("int8", "auto") and device == "cpu"
        if self.quantized:
            self._tagger.model = quantize_int8(self._tagger.model)
        # int8 activations are quantised per forward pass, so a window batched with others would
        # get spans that depend on its neighbours (about 3% of spans on 300 notes); one window a
        # pass keeps a note's spans its own, for a few per cent of speed on a CPU
        self.batch_size = 1 if self.quantized else batch_size

    @property
    def model_dir(self) -> Path:
        return Path(self.source)

    @property
    def device(self) -> str:
        return str(next(self._tagger.model.parameters()).device)

    def detect(self, texts: Sequence[str]):
        """Detections per text (input coordinates), in order; blank texts get none."""
        from domainfm.deid.detection import Detection

        found: list[list] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if not todo:
            return found
        spans = self._tagger.spans([texts[i] for i in todo], self.batch_size)
        for i, items in zip(todo, spans):
            found[i] = [Detection(start, end, label, score, LEARNED) for start, end, kind, score in items
                        if (label := self.labels.get(kind)) is not None and end > start]
        return found
