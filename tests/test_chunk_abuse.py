"""The chunk stage used the way a demanding user would: other tokenizers, other line ends,
spans at chunk edges, reassembly fed the wrong things."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import byte_level_bpe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_chunk import CLINICAL_NOTE, CONTRACT, check_invariants, chunked, minilm  # noqa: F401 (fixture)

from domainfm.chunk import (
    Chunk,
    ChunkConfig,
    Chunker,
    aggregate_predictions,
    chunk_documents,
    merge_char_attributions,
    merge_token_attributions,
    project_spans,
    sectionize,
)
from domainfm.corpus import Document, Span
from domainfm.errors import ConfigError, RecordError

SENTENCES = " Either party was seen, the party may terminate."  # every word after a space
INLINE_NOTE = "HPI: the patient was seen., MEDICATIONS: , the patient may terminate., PLAN: , the party was seen."


@pytest.fixture(scope="module")
def gpt2_style():
    """Byte-level BPE whose tokens carry their leading space (" Either", " MEDICATIONS"), as
    GPT-2, RoBERTa and Llama 3 tokens do."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = byte_level_bpe([SENTENCES, INLINE_NOTE], ["<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


# ------------------------------------------------------- tokens that carry their leading space

def test_byte_level_chunks_end_at_the_sentence_not_one_word_later(gpt2_style):
    doc, chunks, config = chunked("Seen." + SENTENCES * 12, gpt2_style, max_tokens=16, overlap=0)
    assert len(chunks) > 6
    check_invariants(doc, chunks, gpt2_style, config)
    # before: "... may terminate. Either" | "party was seen, the" (the boundary after the next word)
    assert all(c.text.endswith((".", ",")) for c in chunks)
    assert all(c.text.startswith(("Seen", "Either", "the")) for c in chunks)


def test_byte_level_inline_heading_starts_its_chunk(gpt2_style):
    doc, chunks, config = chunked(INLINE_NOTE, gpt2_style, max_tokens=14, overlap=0, profile="clinical")
    check_invariants(doc, chunks, gpt2_style, config)
    # before: the hard boundary fell after " MEDICATIONS", inside the heading
    assert sum(c.text.startswith(("MEDICATIONS:", "PLAN:")) for c in chunks) == 2
    assert not any(c.text.startswith(":") for c in chunks)


_PIECES = st.one_of(st.text(st.sampled_from(list("either party was seen ,.:\r\n\t\xa0😀\u0301\u200b")), max_size=40),
                    st.sampled_from([" Either party was seen.", "\r\nHPI: ", "\nMEDICATIONS:\r\n", ", PLAN: , ",
                                     "\ufeffARTICLE\xa02\r\n", "\r\n\r\n", "terminate" * 8]))


# From 14 positions up: this vocabulary knows "MEDICATIONS" only as " MEDICATIONS", so a chunk that
# starts with it (its space stripped) needs 11 byte tokens + 2 specials and cannot be cut smaller.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(_PIECES, max_size=20), max_tokens=st.integers(14, 40), overlap_share=st.floats(0, 0.9),
       profile=st.sampled_from(["clinical", "legal", "generic"]))
def test_property_byte_level_invariants_and_overlap(gpt2_style, pieces, max_tokens, overlap_share, profile):
    text = "".join(pieces)
    overlap = int(overlap_share * (max_tokens - 2 - 1))
    doc, chunks, config = chunked(text, gpt2_style, max_tokens=max_tokens, overlap=overlap, profile=profile)
    check_invariants(doc, chunks, gpt2_style, config)
    offsets = gpt2_style(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for prev, nxt in zip(chunks, chunks[1:]):
        shared = [1 for a, b in offsets if a >= nxt.start and b <= prev.end]
        assert len(shared) <= overlap


def test_chunks_that_differ_only_by_whitespace_tokens_are_kept_once(gpt2_style):
    # 13 tokens, 9 of them no-break spaces (2 byte tokens each): the second planned chunk starts
    # and ends on whitespace tokens only, and trims to the first one's characters
    doc, chunks, config = chunked("  \xa0\xa0:::\xa0\xa0", gpt2_style, max_tokens=14, overlap=9)
    assert [(c.start, c.end) for c in chunks] == [(4, 7)]  # before: (4, 7) twice
    check_invariants(doc, chunks, gpt2_style, config)


# ------------------------------------------------------------ line ends and invisible spaces

@pytest.mark.parametrize("profile, text, variant", [
    ("clinical", CLINICAL_NOTE, lambda t: t.replace("\n", "\r\n")),
    ("clinical", CLINICAL_NOTE, lambda t: t.replace("\n", "\r")),  # classic Mac line ends
    ("clinical", CLINICAL_NOTE, lambda t: "\ufeff" + t),  # a BOM before the first heading
    ("legal", CONTRACT, lambda t: t.replace("\n", "\r\n")),
    ("legal", CONTRACT, lambda t: t.replace("ARTICLE ", "ARTICLE\xa0").replace("7.2 ", "7.2\xa0")),
    ("legal", CONTRACT, lambda t: t.replace("\n\nARTICLE", "\n\x0cARTICLE")),  # a page break
    ("generic", CONTRACT, lambda t: t.replace("\n", "\r\n")),
])
def test_windows_line_ends_nbsp_and_bom_find_the_same_sections_and_chunks(minilm, profile, text, variant):
    other = variant(text)

    def shape(t: str) -> list[tuple[str, tuple[str, ...]]]:
        return [(s.label, s.top) for s in sectionize(t, profile)]

    assert shape(other) == shape(text)  # before: CRLF lost "PHYSICAL EXAM", "PLAN", "EXHIBIT A"...
    doc, chunks, config = chunked(text, minilm, max_tokens=48, overlap=8, profile=profile)
    other_doc, other_chunks, _ = chunked(other, minilm, max_tokens=48, overlap=8, profile=profile)
    check_invariants(other_doc, other_chunks, minilm, config)
    assert [c.section for c in other_chunks] == [c.section for c in chunks]
    assert [c.n_tokens for c in other_chunks] == [c.n_tokens for c in chunks]


# ------------------------------------------------------------------- spans at chunk edges

def test_adjacent_same_label_spans_at_a_chunk_boundary_come_back_apart(minilm):
    text = "ibuprofen aspirin " * 40
    spans = [Span(i * 18 + a, i * 18 + b, "DRUG") for i in range(40) for a, b in ((0, 10), (10, 17))]
    doc = Document("d", text, spans=spans)  # "ibuprofen " ends where "aspirin" starts
    chunks = list(chunk_documents([doc], ChunkConfig(max_tokens=20, overlap=0), minilm))
    assert len(chunks) > 3
    for merge in ("union", "exact"):
        assert project_spans(chunks, merge=merge)["d"] == spans  # before: 72 spans, pairs joined


def test_own_spans_meeting_at_a_boundary_are_not_joined_but_predictions_are():
    first = Chunk("d#0", "d", 0, 3, "IBU", 3, "", [Span(0, 3, "DRUG")])
    second = Chunk("d#1", "d", 3, 9, "PROFEN", 3, "", [Span(0, 6, "DRUG")])
    assert [s.key for s in project_spans([first, second])["d"]] == [(0, 3, "DRUG"), (3, 9, "DRUG")]
    # a model's predictions touching at the edge are two views of one entity (documented)
    predicted = project_spans([first, second], [[Span(0, 3, "DRUG")], [Span(0, 6, "DRUG")]])
    assert [s.key for s in predicted["d"]] == [(0, 9, "DRUG")]


# -------------------------------------------------------- one document through Chunker.chunk

@pytest.mark.parametrize("doc, message", [
    (Document("x", "abc def", spans=[Span(0, 10, "X")]), r"span 0 \[0:10\] must satisfy"),
    (Document("y", "abc \ud800 def"), "unpaired UTF-16 surrogate"),
])
def test_chunker_chunk_checks_the_document_like_the_stream_does(minilm, doc, message):
    # before: the span came out "cut" at a doc_end past the text; the surrogate a TypeError
    with pytest.raises(RecordError, match=message):
        Chunker(ChunkConfig(max_tokens=16, overlap=2), minilm).chunk(doc)


# ------------------------------------------------------------- reassembly given wrong input

CHUNKS = [Chunk("d#0", "d", 0, 6, "abcdef", 4, ""), Chunk("d#1", "d", 4, 10, "efghij", 4, "")]


@pytest.mark.parametrize("call, message", [
    (lambda: project_spans(CHUNKS, [[Span(0, 9, "X")], []]), r"chunk 'd#0': span 0 \[0:9\] must lie inside the chunk"),
    (lambda: merge_token_attributions(CHUNKS, [[(0, 9, 1.0)], []]), r"chunk 'd#0': token \[0:9\] must lie inside"),
    (lambda: merge_char_attributions(CHUNKS, [np.ones(6), np.ones(6)], doc_lengths={"d": 8}),
     r"chunk 'd#1' ends at character 10, past doc_lengths\['d'\]=8"),
    (lambda: aggregate_predictions(CHUNKS, [[0.1, 0.9], [0.2, 0.3, 0.5]]),
     r"chunk 'd#1': prediction has shape \(3,\) but chunk 'd#0' \(2,\)"),
    (lambda: aggregate_predictions(CHUNKS, [{"pos": 1.0}, [0.2, 0.8]]),
     "chunk 'd#1': prediction is a list but chunk 'd#0' gave a dict"),
    (lambda: aggregate_predictions(CHUNKS, [[0.2, 0.8], {"pos": 1.0}]),
     "chunk 'd#1': prediction is a dict but chunk 'd#0' gave a list"),
])
def test_reassembly_mistakes_are_named_errors(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
