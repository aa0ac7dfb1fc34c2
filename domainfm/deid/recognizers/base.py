"""Small recognizer classes on top of presidio's ``EntityRecognizer``.

A :class:`RegexRecognizer` runs pattern *data* (:class:`PatternSpec`: regex, label, score, an
optional validation hook and words that veto a match when they precede it). Token-level
recognizers (names, places, spaCy entities) subclass :class:`TokenRecognizer` and read the spaCy
``Doc`` that the detector already computed once per batch (``nlp_artifacts.tokens``).
Recognizers return canonical labels (see :mod:`domainfm.deid.labels`) directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts

# validation hook: (text, match, start, end, score) -> score, or None to drop the match
Validator = Callable[[str, "re.Match[str]", int, int, float], "float | None"]


@dataclass(frozen=True)
class PatternSpec:
    """One regex with its label and base score.

    Args:
        name: short id, reported as part of the recognizer name.
        regex: the pattern; ``group`` selects the reported part (e.g. the number after "MRN").
        label: canonical label.
        score: confidence when it matches.
        group: regex group reported as the span; a tuple reports each group as a span of its own
            (the two years of "1980-2005", each shifted alone), from one pass of the regex.
        validate: name of a hook in :data:`VALIDATORS` that may drop or rescore a match.
        veto_before: lower-case words that, as the word just before the match, drop it
            ("BP 120/80" is not a date).
        keep_before: regex on the text just before the match that lifts the veto ("L AC 5/14":
            the antecubital site, where "AC 14/5" alone is a ventilator setting).
        flags: regex flags (case-insensitive by default).
    """

    name: str
    regex: str
    label: str
    score: float
    group: int | str | tuple[int | str, ...] = 0
    validate: str | None = None
    veto_before: frozenset[str] = frozenset()
    keep_before: str | None = None
    flags: int = re.IGNORECASE


VALIDATORS: dict[str, Validator] = {}


def validator(name: str):
    def register(fn: Validator) -> Validator:
        VALIDATORS[name] = fn
        return fn

    return register


_WORD_BEFORE = re.compile(r"([A-Za-z#@/&']+)[^A-Za-z0-9\n]{0,3}$")


def word_before(text: str, start: int, span: int = 24) -> str:
    """The lower-cased word right before ``start`` (same line), or ``""``."""
    chunk = text[max(0, start - span):start]
    m = _WORD_BEFORE.search(chunk)
    return m.group(1).lower().strip("'") if m else ""


def result(label: str, start: int, end: int, score: float, recognizer: str) -> RecognizerResult:
    return RecognizerResult(
        entity_type=label, start=start, end=end, score=score,
        # presidio adds the recognizer's identifier (it groups results by it)
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: recognizer},
    )


class NoContextEnhancer(ContextAwareEnhancer):
    """Returns the recognizers' results unchanged. None of ours declares presidio context words
    (context is part of each recognizer's own rules), and presidio's default enhancer deep-copies
    every result of every document to find that out."""

    def __init__(self):
        super().__init__(context_similarity_factor=0.0, min_score_with_context_similarity=0.0,
                         context_prefix_count=0, context_suffix_count=0)

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
        return raw_results


class RegexRecognizer(EntityRecognizer):
    """Runs a list of :class:`PatternSpec` over the raw text."""

    def __init__(self, name: str, specs: Iterable[PatternSpec]):
        self.specs = list(specs)
        self._compiled = [(spec, re.compile(spec.regex, spec.flags)) for spec in self.specs]
        self._keep = {spec.name: re.compile(spec.keep_before, spec.flags) for spec in self.specs if spec.keep_before}
        labels = sorted({spec.label for spec in self.specs})
        super().__init__(supported_entities=labels, name=name, supported_language="en")

    def load(self) -> None:  # patterns are compiled in __init__
        pass

    def analyze(self, text: str, entities, nlp_artifacts: NlpArtifacts | None = None):
        out = []
        for spec, pattern in self._compiled:
            hook = VALIDATORS[spec.validate] if spec.validate else None
            groups = spec.group if isinstance(spec.group, tuple) else (spec.group,)
            for match in pattern.finditer(text):
                if spec.veto_before and word_before(text, match.start()) in spec.veto_before and not (
                        spec.name in self._keep
                        and self._keep[spec.name].search(text[max(0, match.start() - 24):match.start()])):
                    continue
                for group in groups:
                    start, end = match.span(group)
                    if start < 0 or start == end:
                        continue
                    score = spec.score
                    if hook is not None:
                        score = hook(text, match, start, end, score)
                        if score is None:
                            continue
                    out.append(result(spec.label, start, end, score, f"{self.name}:{spec.name}"))
        return out


class TokenRecognizer(EntityRecognizer):
    """Base of recognizers that walk the spaCy tokens computed once per batch."""

    labels: tuple[str, ...] = ()

    def __init__(self, name: str | None = None, **options):
        self.options = options
        super().__init__(supported_entities=list(self.labels), name=name or type(self).__name__,
                         supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities, nlp_artifacts: NlpArtifacts | None = None):
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        return self.find(text, nlp_artifacts.tokens, DocShape.of(nlp_artifacts.tokens))

    def find(self, text: str, doc, shape: "DocShape") -> list[RecognizerResult]:
        raise NotImplementedError


def token_texts(doc) -> list[str]:
    """The texts of ``doc``'s tokens, listed once per document: walking a ``Doc`` builds a Python
    object per token, and every token recognizer needs the texts."""
    texts = doc.user_data.get("deid_texts")
    if texts is None:
        texts = doc.user_data["deid_texts"] = [t.text for t in doc]
    return texts


@dataclass(frozen=True)
class DocShape:
    """How a note is cased: nursing notes are often ALL CAPS or all lower case, where
    capitalisation says nothing about names."""

    upper: bool
    lower: bool

    @property
    def mixed(self) -> bool:
        return not (self.upper or self.lower)

    @classmethod
    def of(cls, doc) -> "DocShape":
        cached = doc.user_data.get("deid_shape")
        if cached is not None:
            return cached
        upper = lower = title = 0
        for t in token_texts(doc):
            if len(t) < 2 or not t.isalpha():
                continue
            if t.isupper():
                upper += 1
            elif t.islower():
                lower += 1
            elif t[0].isupper():
                title += 1
        words = max(1, upper + lower + title)
        shape = cls(upper=upper / words > 0.6, lower=title / words < 0.03 and upper / words < 0.2)
        doc.user_data["deid_shape"] = shape
        return shape
