"""What ``domainfm chunk`` runs with; saved in the output's manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domainfm.config import check_fields
from domainfm.errors import ConfigError

MAX_TOKENS_RANGE = (4, 1_048_576)


@dataclass
class ChunkConfig:
    """Settings of the chunking stage.

    Args:
        tokenizer: the model's tokenizer: an embedded name (``minilm``), a local folder written
            by ``save_pretrained`` or a hub id. It must be a *fast* tokenizer (offset mappings).
        max_tokens: model positions one chunk may occupy, special tokens ([CLS], [SEP]...)
            included; usually the model's maximum sequence length.
        overlap: tokens a chunk repeats from the end of the previous one (snapped to a sentence
            or paragraph boundary when one lies inside that window). Must be < ``max_tokens``.
        profile: sectionizer used to find headings: ``clinical`` (note headers such as HPI,
            MEDICATIONS, ASSESSMENT AND PLAN), ``legal`` (recitals, Article/Section/§, numbered
            and lettered clauses, exhibits) or ``generic`` (markdown and ALL-CAPS headings).

    Example:
        >>> ChunkConfig(max_tokens=256, overlap=32, profile="clinical").overlap
        32
    """

    tokenizer: str = "minilm"
    max_tokens: int = 512
    overlap: int = 64
    profile: Literal["clinical", "legal", "generic"] = "generic"

    def __post_init__(self) -> None:
        check_fields(self, skip=("profile",))  # any registered sectionizer, checked below
        lo, hi = MAX_TOKENS_RANGE
        if not _is_int(self.max_tokens) or not lo <= self.max_tokens <= hi:
            raise ConfigError(
                f"The 'max_tokens' parameter must be an int in [{lo}, {hi}]. "
                f"Got {self.max_tokens!r} instead (use the model's maximum sequence length, e.g. 512)."
            )
        if not _is_int(self.overlap) or self.overlap < 0:
            raise ConfigError(
                f"The 'overlap' parameter must be an int >= 0. Got {self.overlap!r} instead; "
                f"try --overlap {self.max_tokens // 8}"
            )
        if self.overlap >= self.max_tokens:
            raise ConfigError(
                f"'overlap' ({self.overlap}) must be smaller than 'max_tokens' ({self.max_tokens}); "
                f"try --overlap {self.max_tokens // 8}"
            )
        if not isinstance(self.tokenizer, str) or not self.tokenizer.strip():
            raise ConfigError("'tokenizer' must be a tokenizer name or path, e.g. 'minilm'")
        from domainfm.chunk.sections import get_sectionizer

        get_sectionizer(self.profile)  # unknown name -> ConfigError listing the available ones


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
