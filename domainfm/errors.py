"""Errors a user can act on.

Everything raised on purpose for bad input or bad configuration derives from
:class:`DomainFMError`; the CLI catches that one class at its boundary and prints a single
line. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DomainFMError(Exception):
    """Base class for errors caused by user input, data or configuration."""


class ConfigError(DomainFMError):
    """A configuration value is missing, unknown or out of range."""


class CorpusError(DomainFMError):
    """Input data cannot be read as documents (file missing, wrong format)."""


class RecordError(CorpusError):
    """One record is invalid. Carries where it came from so the message can name it.

    The message never quotes document text: it names the record, the field and what was
    expected, so it is safe to print to a shared log.
    """

    def __init__(self, reason: str, *, record_id: str | None = None, location: str | None = None):
        self.reason = reason
        self.record_id = record_id
        self.location = location
        where = ", ".join(
            part for part in (location, f"id={record_id!r}" if record_id is not None else None) if part
        )
        super().__init__(f"{where}: {reason}" if where else reason)


class OutputError(DomainFMError):
    """An output path cannot be written: another run holds it, it is a folder, read-only, ..."""


class ModelResolutionError(DomainFMError):
    """A model name or path cannot be resolved to something loadable offline."""
