"""Span heads learned from the seeds: a label's mentions end in the parts of speech its seed
spans end in."""

from __future__ import annotations

import pytest

from domainfm.corpus.document import Document, Span
from domainfm.label.span_heads import MIN_SPANS, HeadRule, PartsOfSpeech


@pytest.fixture(scope="module")
def pos():
    return PartsOfSpeech()


def _seed(text: str, *marked: tuple[str, str]) -> Document:
    return Document(f"s{abs(hash(text)) % 10**8}", text,
                    spans=[Span(text.index(w), text.index(w) + len(w), label) for w, label in marked])


def _seeds(n: int) -> list[Document]:
    # diseases end in nouns; dates end in numbers
    return [_seed(f"Case {i} had severe zorbel fever on March {i + 1}.", ("severe zorbel fever", "Disease"),
                  (f"March {i + 1}", "Date")) for i in range(n)]


def test_last_part_of_speech_of_a_span(pos, monkeypatch):
    text = "The child had hereditary kidney disease."
    assert pos.last(text, text.index("hereditary"), text.index("hereditary") + len("hereditary")) == "ADJ"
    assert pos.last(text, text.index("kidney"), text.index(".")) == "NOUN"
    # a long-running backend tags many pool texts: only the most recent are kept
    monkeypatch.setattr("domainfm.label.span_heads.CACHED_TEXTS", 2)
    for i in range(4):
        pos.tokens(f"Case {i} was seen.")
    assert len(pos._cache) == 2


def test_heads_are_learned_per_label_and_filter_only_that_label(pos):
    rule = HeadRule.fit(_seeds(MIN_SPANS), ["Disease", "Date"], pos)
    assert rule.summary == {"Date": ["NUM"], "Disease": ["NOUN"]}
    text = "She had hereditary zorbel fever since June 3, now hereditary."
    spans = [(text.index("hereditary"), text.index("hereditary") + 10, "Disease", 0.5),  # ends in an adjective
             (text.index("hereditary"), text.index(" since"), "Disease", 0.6),
             (text.index("June"), text.index(","), "Date", 0.7),
             (text.rindex("hereditary"), text.rindex("."), "Other", 0.4)]  # no rule for this label
    assert [sp[3] for sp in rule.keep(text, spans)] == [0.6, 0.7, 0.4]


def test_a_long_text_is_tagged_in_blocks_with_its_own_offsets(monkeypatch):
    text = "The child had hereditary kidney disease.\nShe was seen twice.\n" * 3
    whole = PartsOfSpeech().tokens(text)
    monkeypatch.setattr("domainfm.label.span_heads.BLOCK_CHARS", 45)
    assert PartsOfSpeech().tokens(text) == whole  # cut at line ends, offsets into the whole text


def test_too_few_seed_spans_give_no_rule(pos):
    assert HeadRule.fit(_seeds(MIN_SPANS - 1), ["Disease", "Date"], pos) is None
