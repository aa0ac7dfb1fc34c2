"""Find PHI in documents: one presidio ``AnalyzerEngine`` built once, spaCy run once per batch.

The detector resolves the spaCy pipeline offline (``resolve_spacy_model``), hands presidio's
``NlpEngineProvider`` an explicit model so presidio never downloads one, disables every spaCy
component the recognizer set does not read, runs ``nlp.pipe`` over a batch of texts, and passes
each ``Doc`` to ``AnalyzerEngine.analyze(nlp_artifacts=...)`` so no text is parsed twice.
Overlapping detections are merged into one span by the one overlap rule
(:mod:`domainfm.deid.detection`), so the transformation half gets non-overlapping spans in input
coordinates.

presidio logs recognizer decisions at DEBUG/INFO level; :func:`quiet_presidio_logs` keeps its
loggers at WARNING and drops anything below it, so no note text can reach a log.

Example:
    >>> detector = PhiDetector(DeidConfig(profile="clinical"))  # doctest: +SKIP
    >>> [(d.label, d.start, d.end) for d in detector.detect_text("Seen by Dr. Lee on 7/22.")]  # doctest: +SKIP
    [('DOCTOR', 12, 15), ('DATE', 19, 23)]
"""

from __future__ import annotations

import itertools
import logging
import re
from functools import lru_cache
from typing import Any, Iterable, Iterator

from domainfm.config import as_config
from domainfm.corpus.document import Document, document_stream
from domainfm.deid.config import DeidConfig
from domainfm.deid.labels import entity_selected
from domainfm.deid.detection import Detection, merge_detections  # noqa: F401 (re-exported)

_PRESIDIO_LOGGERS = ("presidio-analyzer", "presidio_analyzer", "presidio-anonymizer", "decision_process")


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_presidio_logs() -> None:
    """Keep presidio's loggers at WARNING: its DEBUG/INFO messages can quote analysed text."""
    for name in _PRESIDIO_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _BelowWarning) for f in logger.filters):
            logger.addFilter(_BelowWarning())


# texts per spaCy memory zone (PhiDetector._batches): the strings of this many notes at most are
# held at once (about 1 MB), and the tokenizer re-learns its vocabulary's new words once per zone
ZONE_TEXTS = 1000


class PhiDetector:
    """Reusable PHI detector: builds the spaCy pipeline and presidio engine once.

    Args:
        config: the stage settings; ``profile`` (or ``recognizers``) picks the recognizer set.

    Example:
        >>> detector = PhiDetector(DeidConfig(profile="clinical"))  # doctest: +SKIP
        >>> for doc, found in detector.detect(docs): ...  # doctest: +SKIP
    """

    def __init__(self, config: DeidConfig | None = None):
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

        from domainfm.deid.recognizers import build_set, vocab
        from domainfm.deid.recognizers.base import NoContextEnhancer
        from domainfm.models import resolve_spacy_model

        quiet_presidio_logs()
        self.config = as_config(config, DeidConfig)
        self.recognizer_set = build_set(self.config.recognizer_set)
        model = resolve_spacy_model(self.config.spacy_model)
        self.nlp_engine = _nlp_engine(model, tuple(sorted(self.recognizer_set.spacy_components)))
        self.nlp = self.nlp_engine.get_nlp("en")
        vocab.load_english(self.nlp)
        registry = RecognizerRegistry(recognizers=list(self.recognizer_set.recognizers),
                                      supported_languages=["en"])
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=self.nlp_engine,
                                       supported_languages=["en"],
                                       default_score_threshold=self.config.score_threshold,
                                       context_aware_enhancer=NoContextEnhancer())
        self._entities = sorted({e for r in registry.recognizers for e in r.supported_entities})
        self.learned = None
        self._plausible = None  # the shape checks of learned spans, when there is a model to check
        if self.config.ner_model and self.config.ner_shape_checks:
            from domainfm.deid.learned_vetting import plausible
            from domainfm.deid.recognizers.base import DocShape

            self._plausible, self._doc_shape = plausible, DocShape.of
        if self.config.ner_model:
            from domainfm.deid.learned import LearnedPhiTagger

            self.learned = LearnedPhiTagger(self.config.ner_model, label_map=self.config.ner_label_map,
                                            batch_size=self.config.batch_size, quantize=self.config.ner_quantize)

    def detect_text(self, text: str) -> list[Detection]:
        return next(self.detect_texts([text]))

    def detect_texts(self, texts: Iterable[str]) -> Iterator[list[Detection]]:
        """Detections per text, in order; spaCy runs over ``batch_size`` texts at a time."""
        for results in self._batches((t, None) for t in texts):
            yield from (found for _, found in results)

    def detect(self, docs: Iterable[Document]) -> Iterator[tuple[Document, list[Detection]]]:
        for results in self._batches((d.text, d) for d in docs):
            yield from results

    def _batches(self, pairs) -> Iterator[list[tuple[Any, list[Detection]]]]:
        """``(context, detections)`` for the ``(text, context)`` pairs, a list at a time.

        Every :data:`ZONE_TEXTS` texts are tokenized and read inside a spaCy memory zone: spaCy's
        vocabulary keeps every new string it tokenizes (each name, phone number and date of a
        note), so a long run grew by about 1 MB per 1,000 notes
        (``tests/benchmarks/bench_stage_memory.py``); the zone frees them. Not one zone per batch:
        the words first met inside a zone leave with it, and tokenizing them again in every
        batch cost 5-15% of the speed. A zone is closed before its results are handed out: the
        caller may detect something else meanwhile (a meta field), and zones do not nest. With
        spaCy's own worker processes (``workers`` > 1 on this detector) the pipe runs over the
        whole stream as before: a zone per list would start them again for each."""
        if self.config.workers > 1 or not hasattr(self.nlp, "memory_zone"):
            for batch in batched(self._pipe(pairs), self.config.batch_size):
                yield list(zip((context for _, _, context, _ in batch), self._analyze_batch(batch)))
            return
        for chunk in batched(pairs, max(ZONE_TEXTS, self.config.batch_size)):
            with self.nlp.memory_zone():
                results = []
                for batch in batched(self._pipe(chunk), self.config.batch_size):
                    results += zip((context for _, _, context, _ in batch), self._analyze_batch(batch))
            yield results

    def _analyze_batch(self, batch) -> Iterator[list[Detection]]:
        """Rules (+ the learned model) over a batch from :meth:`_pipe`, mapped back onto the input."""
        for (text, doc, _, positions), learned in zip(batch, self._learned([text for text, *_ in batch])):
            found = self._analyze(text, doc, learned)
            yield found if positions is None else map_back(found, positions)

    def _learned(self, texts: list[str]) -> list[list[Detection]]:
        """The learned model's spans of a batch (none without ``ner_model``)."""
        if self.learned is None:
            return [[] for _ in texts]
        return self.learned.detect(texts)

    def _pipe(self, pairs):
        """``(detection text, spaCy doc, context, positions)`` per ``(input text, context)`` pair:
        the detection text is the input without invisible characters (:func:`visible_text`),
        ``positions`` maps it back (``None`` when nothing was cut)."""
        cut = {}

        def prepared():
            for i, (text, context) in enumerate(pairs):
                clean, positions = visible_text(text)
                cut[i] = positions
                yield clean, (i, context)

        for doc, (i, context) in self.nlp.pipe(prepared(), as_tuples=True, batch_size=self.config.batch_size,
                                               n_process=self.config.workers):
            yield doc.text, doc, context, cut.pop(i)

    def _artifacts(self, doc):
        from presidio_analyzer.nlp_engine import NlpArtifacts

        # Recognizers here read doc directly (``doc.ents`` too, once: building that list walks
        # every token); presidio's lemma-based context enhancement is not used (no recognizer
        # declares presidio context words), so lemmas and entities stay empty.
        return NlpArtifacts(entities=[], tokens=doc, tokens_indices=[], lemmas=[],
                            nlp_engine=self.nlp_engine, language="en", scores=[])

    def _analyze(self, text: str, doc, learned: list[Detection] = ()) -> list[Detection]:
        if not text.strip():
            return []
        results = self.analyzer.analyze(text=text, language="en", entities=self._entities,
                                        nlp_artifacts=self._artifacts(doc),
                                        score_threshold=self.config.score_threshold)
        found = [Detection(r.start, r.end, r.entity_type, float(r.score),
                           (r.recognition_metadata or {}).get("recognizer_name", "")) for r in results]
        found += self._vetted(text, doc, learned, found)
        return self._selected(text, found)

    def _vetted(self, text: str, doc, learned: list[Detection], found: list[Detection]) -> list[Detection]:
        """The learned spans kept: above the floor and, with shape checks, either overlapping a
        rule's detection in ``found`` or of a shape their label allows."""
        floor = self.config.score_threshold if self.config.ner_threshold is None else self.config.ner_threshold
        learned = [d for d in learned if d.score >= floor]
        if learned and self._plausible is not None:
            all_caps = self._doc_shape(doc).upper
            learned = [d for d in learned
                       if any(d.start < r.end and r.start < d.end for r in found)
                       or self._plausible(text, d.start, d.end, d.label, all_caps=all_caps)]
        return learned

    def _selected(self, text: str, found: list[Detection]) -> list[Detection]:
        return merge_detections(text, [
            d for d in found if entity_selected(d.label, self.config.entities, self.config.exclude_entities)
        ])

    def detect_learned(self, docs: Iterable[Document]) -> Iterator[tuple[Document, list[Detection]]]:
        """The learned model's spans alone, kept as :meth:`detect` keeps a span no rule found
        (floor, shape checks, entity selection), without running the rules. What the model adds
        on its own, for measurements that credit the rules and the model on different texts
        (the de-id benchmark's split-credit estimate)."""
        if self.learned is None:
            raise ValueError("detect_learned needs a detector built with DeidConfig.ner_model")
        for batch in batched(self._pipe(((d.text, d) for d in docs)), self.config.batch_size):
            for (text, doc, document, positions), learned in zip(batch, self._learned([t for t, *_ in batch])):
                kept = self._selected(text, self._vetted(text, doc, learned, []))
                yield document, kept if positions is None else map_back(kept, positions)


# Control characters (NUL, BEL, ...) glue onto neighbouring words in spaCy's tokenizer
# ("Okonkwo.\x07" becomes one token) and hide names from token-based recognizers: they become
# spaces for detection. Invisible characters inside a word (zero-width space and joiners, soft
# hyphen, bidi marks, BOM) and ANSI escape sequences split a name or an MRN in two without
# showing on screen ("Okon\u200bkwo", "MRN 4471\x1b[0m2290"): they are cut out for detection and
# every detection is mapped back onto the input, covering what was cut inside it.
_CONTROLS = {c: " " for c in range(32) if chr(c) not in "\t\n\r"}
_CONTROLS.update({c: " " for c in range(0x7F, 0xA0)})
_INVISIBLE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


# spaCy's tokenizer strips a suffix at a time from a token and searches the rest again, so a long
# run of punctuation ("=====", "*****", ",,,,,", "____") costs the square of its length: 20,000
# characters took over a minute. Detection reads such runs with a space every 32 characters
# (same length, so offsets are unchanged); they hold no letter or digit to identify anyone.
_PUNCT_RUN = re.compile(r"(?:[^\w\s]|_){64,}")
_RUN_PIECE = 32


def _spaced_run(match: re.Match) -> str:
    run = match.group()
    return "".join(" " if i % _RUN_PIECE == _RUN_PIECE - 1 else c for i, c in enumerate(run))


def visible_text(text: str) -> tuple[str, list[int] | None]:
    """The text detection reads and, when characters were cut, each of its characters' offset in
    ``text`` (plus ``len(text)`` at the end); ``None`` when offsets are unchanged. Long runs of
    punctuation are read with spaces in them (see ``_PUNCT_RUN``)."""
    if _INVISIBLE.search(text) is None:
        return _PUNCT_RUN.sub(_spaced_run, text.translate(_CONTROLS)), None
    kept, positions, cursor = [], [], 0
    for match in _INVISIBLE.finditer(text):
        kept.append(text[cursor:match.start()])
        positions.extend(range(cursor, match.start()))
        cursor = match.end()
    kept.append(text[cursor:])
    positions.extend(range(cursor, len(text)))
    positions.append(len(text))
    return _PUNCT_RUN.sub(_spaced_run, "".join(kept).translate(_CONTROLS)), positions


def map_back(found: list[Detection], positions: list[int]) -> list[Detection]:
    """Detections on a :func:`visible_text` text, in the input's offsets."""
    return [Detection(positions[d.start], positions[d.end - 1] + 1, d.label, d.score, d.recognizer) for d in found]


@lru_cache(maxsize=4)
def _nlp_engine(model: str, components: tuple[str, ...]):
    """presidio's spaCy engine for ``model`` with only ``components`` enabled, loaded once per
    process: detectors with the same needs share it (it is read-only once loaded)."""
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": model}],
    })
    engine = provider.create_engine()
    nlp = engine.get_nlp("en")
    for pipe in list(nlp.pipe_names):
        if pipe not in components:
            nlp.disable_pipe(pipe)
    split_glued_tokens(nlp)
    return engine


# Notes glue words with punctuation that spaCy's news-trained rules keep whole: "pellham.talked",
# "BIGEMINY.DR.", "DAUGHTER-MARLA---301", "(DAUGHTER)-", "Kowalczuk- 204". Splitting them lets the
# token recognizers see the name; regex recognizers read the raw text and are not affected.
_EXTRA_INFIXES = (
    r"(?<=[A-Za-z]{2})\.(?=[A-Za-z]{2})",   # word.word
    r"(?<=[A-Za-z])-+(?=\d)",                # name---301
    r"(?<=[A-Za-z])\)(?=-)",                 # (son)-
)
_EXTRA_SUFFIXES = (r"(?<=[A-Za-z)])-+",)     # "Kowalczuk-"
# only real web addresses stay one token (spaCy's default also keeps "word.word")
_URL = r"(?i)^[\w.+%-]+@[\w-]+(?:\.[\w-]+)+$|^(?:https?://|ftp://|www\d{0,3}\.)\S+$|^[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|mil|info|biz|io|uk|de|fr)(?:/\S*)?$"


def split_glued_tokens(nlp) -> None:
    """Add the note-specific infix and suffix rules above to ``nlp``'s tokenizer."""
    import re

    from spacy.util import compile_infix_regex, compile_suffix_regex

    tokenizer = nlp.tokenizer
    tokenizer.infix_finditer = compile_infix_regex(tuple(nlp.Defaults.infixes) + _EXTRA_INFIXES).finditer
    tokenizer.suffix_search = compile_suffix_regex(tuple(nlp.Defaults.suffixes) + _EXTRA_SUFFIXES).search
    tokenizer.url_match = re.compile(_URL).match


def detect(docs: Iterable[Document], config: DeidConfig | None = None) -> Iterator[tuple[Document, list[Detection]]]:
    """Stream ``(document, detections)`` pairs; the engine is built once for the whole stream.

    Example:
        >>> for doc, found in detect(read_documents("notes.jsonl"), DeidConfig()):  # doctest: +SKIP
        ...     print(doc.id, len(found))
    """
    detector = PhiDetector(config)
    yield from detector.detect(document_stream(docs))


def batched(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk
