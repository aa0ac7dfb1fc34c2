"""YAML task files and dotted command-line overrides -> validated dataclasses.

Every stage's settings are a dataclass whose field names are the YAML keys. Loading is strict:
an unknown key is an error that suggests the nearest valid name, a value of the wrong type is an
error naming the dotted field, and cross-field rules live in each dataclass's ``__post_init__``.
The fully resolved config is saved beside every output (see :mod:`domainfm.manifest`).

Example:
    >>> @dataclass
    ... class Train:
    ...     lr: float = 1e-4
    >>> @dataclass
    ... class Task:
    ...     train: Train = field(default_factory=Train)
    >>> load_config(Task, overrides=parse_overrides(["--train.lr", "3e-4"])).train.lr
    0.0003
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import re
import types
import typing
import warnings
from dataclasses import dataclass, field  # noqa: F401  (re-exported for config modules)
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, get_args, get_origin, get_type_hints

from domainfm.errors import ConfigError


def suggest(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'lr'?)"`` when a close match exists, else ``""``."""
    name, choices = str(name), list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        # "lr_rate" -> "lr", "text" -> "text_col": a valid name is a prefix of the other.
        close = [c for c in choices if len(c) >= 2 and (name.startswith(c) or c.startswith(name))][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_document_fields(section: Any, name: str = "data", *, limits: Iterable[str] = (),
                          zero_means: str = "no limit") -> None:
    """The checks every stage's data section shares: which text to read (``text_field``), the
    held-out share (``eval_fraction``), what keeps a patient on one side of the split
    (``split_key``), and document limits that must be >= 0.

    Raises:
        ConfigError: naming ``<name>.<field>``, what it got and what it accepts.
    """
    if not 0.0 <= section.eval_fraction < 1.0:
        raise ConfigError(f"{name}.eval_fraction must be in [0, 1), got {section.eval_fraction} "
                          "(0 disables evaluation)")
    if section.split_key not in ("auto", "id") and not section.split_key.startswith("meta."):
        raise ConfigError(f"{name}.split_key must be 'auto', 'id' or 'meta.<key>', got {section.split_key!r}")
    if section.text_field != "text" and not section.text_field.startswith("meta."):
        raise ConfigError(f"{name}.text_field must be 'text' or 'meta.<key>', got {section.text_field!r}"
                          f"{suggest(section.text_field, ['text'])}")
    for limit in limits:
        if getattr(section, limit) < 0:
            raise ConfigError(f"{name}.{limit} must be >= 0 (0 = {zero_means}), got {getattr(section, limit)}")


def check_train_section(section: Any, *, at_least_one: Iterable[str], zero_means_off: Iterable[str]) -> None:
    """The checks pretrain's and finetune's ``train`` sections share: the learning rate, the
    length of training (``max_steps``, else ``epochs``), counts that must be >= 1, counts where 0
    means off, and the optimiser's warm-up share, weight decay and clipping.

    Raises:
        ConfigError: naming ``train.<field>``, what it got and what it accepts.
    """
    if not 0.0 < section.lr < 1.0:
        raise ConfigError(f"train.lr must be in (0, 1), got {section.lr}")
    if section.max_steps < 0:
        raise ConfigError(f"train.max_steps must be >= 0 (0 = use train.epochs), got {section.max_steps}")
    if section.max_steps == 0 and not section.epochs > 0:
        raise ConfigError(f"train.epochs must be > 0 when train.max_steps is 0, got {section.epochs}")
    for name in at_least_one:
        if getattr(section, name) < 1:
            raise ConfigError(f"train.{name} must be an int >= 1, got {getattr(section, name)}")
    for name in zero_means_off:
        if getattr(section, name) < 0:
            raise ConfigError(f"train.{name} must be >= 0 (0 = off), got {getattr(section, name)}")
    if not 0.0 <= section.warmup_ratio < 1.0:
        raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {section.warmup_ratio}")
    if section.weight_decay < 0 or section.max_grad_norm < 0:
        raise ConfigError("train.weight_decay and train.max_grad_norm must be >= 0")


def from_dict(cls: type, data: Mapping[str, Any] | None, *, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and value types recursively."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {prefix or '<root>'!r} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    data = _renamed_keys(cls, data, prefix)
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(
                f"unknown config key {dotted!r}{suggest(key, fields)}; "
                f"valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(fields))}"
            )
        kwargs[key] = _coerce(value, hints[key], dotted)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"missing required config key(s): {', '.join(prefix + m for m in missing)}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        message = _in_section(str(exc), cls, prefix)
        if message == str(exc):
            raise
        raise ConfigError(message) from None


def _in_section(message: str, cls: type, prefix: str) -> str:
    """``message`` with the section-relative keys a config's checks name (``train.lr``) written
    as the full dotted key at ``prefix`` (``finetune.train.lr`` in a pipeline). Only a section
    name followed by one of that section's own keys is rewritten, so a value such as
    ``train.jsonl`` is left alone."""
    if not prefix:
        return message
    sections = {prefix.rstrip(".").rsplit(".", 1)[-1]: (prefix, cls)}
    for name, hint in get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            sections[name] = (f"{prefix}{name}.", hint)
    for name, (full, section) in sections.items():
        keys = "|".join(re.escape(f.name) for f in dataclasses.fields(section))
        message = re.sub(rf"(?<![\w.]){re.escape(name)}\.(?=(?:{keys})\b)", full, message)
    return message


def check_fields(obj: Any, section: str = "", *, nested: bool = False, skip: Iterable[str] = ()) -> None:
    """Check a config dataclass built in Python the way :func:`from_dict` checks YAML: every
    field must hold its annotated type, converted where the meaning is plain (numpy numbers,
    ``Path`` for a string, a tuple for a list, a mapping for a section) and refused otherwise,
    so ``"false"`` never reads as true, a string never as a list of characters, NaN never passes
    a range check by failing it. Call it first in ``__post_init__``.

    Args:
        obj: the config dataclass instance; fields are replaced by their converted values.
        section: the section's dotted name for messages (``train`` -> ``'train.lr'``).
        nested: also check again the fields of the sections it holds: each section checks
            itself when built, but an instance changed after that (``task.lora.r = "8"``) is
            caught only here.
        skip: fields the class checks itself (a registry wider than the annotation, a message
            of its own).

    Raises:
        ConfigError: ``config field '<section>.<field>' must be ...``, naming what it got.
    """
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if not f.init or f.name in skip:
            continue
        value = getattr(obj, f.name)
        dotted = f"{section}.{f.name}" if section else f.name
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and not isinstance(value, (hint, Mapping)):
            raise ConfigError(f"config section {dotted!r} must be a {hint.__name__} or a mapping, got {_show_type(value)}")
        checked = _coerce(value, hint, dotted, strict=True)
        if checked is not value:
            object.__setattr__(obj, f.name, checked)
        if nested and dataclasses.is_dataclass(hint) and checked is value:
            check_fields(value, dotted, nested=True)


def _show_type(value: Any) -> str:
    """What a wrong value is, for a message: ``None``, ``a ChunkConfig`` (a config of another
    class), else its type's name."""
    if value is None:
        return "None"
    return f"a {type(value).__name__}" if dataclasses.is_dataclass(value) else type(value).__name__


def as_config(value: Any, cls: type, name: str = "config") -> Any:
    """A stage function's config argument as ``cls``: an instance as it is, a mapping (what the
    task file's section holds) through :func:`from_dict`, ``None`` as the defaults. Anything
    else is a ``ConfigError`` here rather than an ``AttributeError`` deep in the stage.

    Example:
        >>> from domainfm.chunk import ChunkConfig
        >>> as_config({"max_tokens": 128, "overlap": 16}, ChunkConfig).max_tokens
        128
    """
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if isinstance(value, Mapping):
        return from_dict(cls, value)
    raise ConfigError(f"{name} must be a {cls.__name__} (or a mapping of its fields), got {_show_type(value)}")


def _renamed_keys(cls: type, data: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    """Keys a section renamed (``cls.RENAMED``: old -> new) are read under their new name, with a
    message saying what to write instead; both names at once is an error."""
    renamed = getattr(cls, "RENAMED", None)
    if not renamed or not any(old in data for old in renamed):
        return data
    out = dict(data)
    for old, new in renamed.items():
        if old not in out:
            continue
        if new in out:
            raise ConfigError(f"{prefix}{old} and {prefix}{new} are the same setting; keep only {prefix}{new}")
        warnings.warn(f"config key {prefix}{old!s} is deprecated; write {prefix}{new} (peft.LoraConfig's name)",
                      FutureWarning, stacklevel=3)
        out[new] = out.pop(old)
    return out


def _coerce(value: Any, hint: Any, dotted: str, *, strict: bool = False) -> Any:
    """``value`` as type ``hint``. YAML and command-line values arrive as text (``"3e-4"``,
    ``"true"``) and are converted; ``strict`` (a config built in Python) takes no text for a
    number or a bool, and no number for a string."""
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, dotted, strict=strict)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"config field {dotted!r} must be one of {list(args)}, got {value!r}"
            f"{suggest(str(value), [str(a) for a in args])}"
        )
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return from_dict(hint, value, prefix=f"{dotted}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field {dotted!r} must be a list, got {_show(value)}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{dotted}[{i}]", strict=strict) for i, v in enumerate(value)]
        if strict and isinstance(value, origin) and all(a is b for a, b in zip(items, value)):
            return value
        return items if origin is list else tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config field {dotted!r} must be a mapping, got {_show(value)}")
        return value if strict and isinstance(value, dict) else dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"config field {dotted!r} must be true or false, got {_show(value)}")
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return value if type(value) is int else int(value)  # numpy integers too
        if not strict and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"config field {dotted!r} must be an integer, got {_show(value)}")
    if hint is float:
        number = None
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
        elif not strict and isinstance(value, str):
            # YAML 1.1 reads "3e-4" as a string; users write learning rates that way.
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"config field {dotted!r} must be a number, got {_show(value)}")
        if not math.isfinite(number):  # NaN fails every range check, so it would pass them all
            raise ConfigError(f"config field {dotted!r} must be a finite number, got {number}")
        return value if type(value) is float else number
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not strict and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config field {dotted!r} must be a string, got {_show(value)}")
    if hint is Path:
        if isinstance(value, Path):
            return value
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise ConfigError(f"config field {dotted!r} must be a path, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_overrides(args: Iterable[str]) -> dict[str, Any]:
    """Turn ``["--train.lr", "3e-4", "--seed=3"]`` into ``{"train.lr": "3e-4", "seed": 3}``.

    Values are read as YAML scalars (so ``true``, ``3``, ``[a, b]`` and ``null`` work); the
    dataclass field type does the final conversion.
    """
    import yaml

    result: dict[str, Any] = {}
    items = list(args)
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--") or len(item) == 2:
            raise ConfigError(f"expected an override like '--section.key VALUE', got {item!r}")
        key = item[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
        else:
            if i + 1 >= len(items) or items[i + 1].startswith("--"):
                raise ConfigError(f"override '--{key}' has no value (write '--{key} VALUE')")
            i += 1
            raw = items[i]
        key = key.replace("-", "_")
        if key in result:  # as a key given twice in a YAML mapping: which one was meant?
            raise ConfigError(f"override '--{key}' is given twice; give it once")
        try:
            result[key] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            result[key] = raw
        i += 1
    return result


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested mapping (a copy); intermediate sections are created."""
    import copy

    merged = copy.deepcopy(dict(data))
    for dotted, value in overrides.items():
        node = merged
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give the YAML file (e.g. tasks/demo-clinical.yaml)")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_strict_yaml_loader())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at position {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


_STRICT_LOADER = None


def _strict_yaml_loader():
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    one silently, so a typo'd copy would override the intended value unnoticed)."""
    global _STRICT_LOADER
    if _STRICT_LOADER is None:
        import yaml

        class StrictLoader(yaml.SafeLoader):
            pass

        def construct_mapping(loader, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable key: let PyYAML report it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark)
                seen.add(key)
            return loader.construct_mapping(node, deep=deep)

        StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
        _STRICT_LOADER = StrictLoader
    return _STRICT_LOADER


def load_config(cls: type, path: str | Path | None = None, overrides: Mapping[str, Any] | None = None):
    """Read a YAML file (optional), apply dotted overrides, and validate into ``cls``."""
    data = read_yaml(path) if path is not None else {}
    if overrides:
        data = apply_overrides(data, overrides)
    return from_dict(cls, data)


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain YAML/JSON-serialisable data (paths become strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def save_config(obj: Any, path: str | Path) -> Path:
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(obj), sort_keys=False), encoding="utf-8")
    return path


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], *,
                       may_change: Iterable[str] = (), prefix: str = "") -> list[str]:
    """Dotted ``key: old -> new`` lines where two resolved configs differ.

    Used to refuse resuming a run under a different config; ``may_change`` names the dotted
    keys (checkpoint cadence, logging...) that a resumed run is allowed to change.
    """
    allowed = set(may_change)
    diffs = []
    for key in sorted(set(saved) | set(current)):
        dotted = f"{prefix}{key}"
        a, b = saved.get(key), current.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += config_differences(a, b, may_change=allowed, prefix=f"{dotted}.")
        elif a != b and dotted not in allowed:
            diffs.append(f"{dotted}: {a!r} -> {b!r}")
    return diffs

