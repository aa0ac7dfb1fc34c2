"""Spans at the cut between two chunks that do not overlap.

The chunker trims the whitespace at a cut, so the characters between two chunks are in neither
of them. A model's entity that a cut splits ("boston" ending one chunk, "general" starting the
next) must still come back as one span, as it does when the chunks overlap; spans that are not
two pieces of one entity at a cut must stay apart.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import perfect_tagger_logits, wordpiece_tokenizer

from domainfm.chunk import Chunk, ChunkConfig, Chunker, project_spans
from domainfm.chunk.reassemble import WRAPPED_LINE
from domainfm.corpus import Document, Span
from domainfm.finetune.config import LongDocumentsSection
from domainfm.finetune.data import LabelMap, encode_documents
from domainfm.inference.predict import document_outputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _chunks(text: str, *ranges: tuple[int, int]) -> list[Chunk]:
    """Chunks of one document "d" as the chunker would write them, at the given character ranges."""
    return [Chunk(f"d#{i}", "d", s, e, text[s:e], 0, "") for i, (s, e) in enumerate(ranges)]


def _keys(spans) -> list[tuple[int, int, str]]:
    return sorted((s.start, s.end, s.label) for s in spans)


# ----------------------------------------------------------- hand-made chunks: the rule itself


@pytest.mark.parametrize("cut", ["", " ", "\n", "\r\n", " \n\t "])
def test_an_entity_cut_between_chunks_comes_back_whole_whatever_whitespace_the_cut_dropped(cut):
    text = "seen at boston" + cut + "general today"
    second = 14 + len(cut)
    chunks = _chunks(text, (0, 14), (second, len(text)))
    predicted = [[Span(8, 14, "PLACE", {"score": 0.9})], [Span(0, 7, "PLACE", {"score": 0.8})]]
    assert _keys(project_spans(chunks, predicted)["d"]) == [(8, second + 7, "PLACE")]  # before: two spans


def test_an_entity_over_three_chunks_comes_back_whole():
    text = "seen at leeds royal infirmary today"  # chunks: "seen at leeds" | "royal" | "infirmary today"
    chunks = _chunks(text, (0, 13), (14, 19), (20, len(text)))
    predicted = [[Span(8, 13, "PLACE")], [Span(0, 5, "PLACE")], [Span(0, 9, "PLACE")]]
    assert _keys(project_spans(chunks, predicted)["d"]) == [(8, 29, "PLACE")]


def test_a_cut_entity_joins_in_any_chunk_order_and_next_to_other_documents():
    text = "seen at boston general today"
    first, second = _chunks(text, (0, 14), (15, len(text)))
    other = Chunk("e#0", "e", 0, 14, text[:14], 0, "")  # another document at the same offsets
    predicted = [[Span(0, 7, "PLACE")], [Span(8, 14, "PLACE")], [Span(8, 14, "PLACE")]]
    got = project_spans([second, other, first], predicted)
    assert _keys(got["d"]) == [(8, 22, "PLACE")] and _keys(got["e"]) == [(8, 14, "PLACE")]


TEXT = "give aspirin heparin now"  # "give aspirin" | "heparin now" when cut at 12


@pytest.mark.parametrize("case, ranges, predicted, expected", [
    ("different labels", [(0, 12), (13, 24)], [[Span(5, 12, "DRUG")], [Span(0, 7, "PLACE")]],
     [(5, 12, "DRUG"), (13, 20, "PLACE")]),
    ("the first piece stops short of its chunk's end", [(0, 13), (13, 24)],  # chunk "give aspirin "
     [[Span(5, 12, "DRUG")], [Span(0, 7, "DRUG")]], [(5, 12, "DRUG"), (13, 20, "DRUG")]),
    ("the second piece starts after its chunk's start", [(0, 12), (12, 24)],  # chunk " heparin now"
     [[Span(5, 12, "DRUG")], [Span(1, 8, "DRUG")]], [(5, 12, "DRUG"), (13, 20, "DRUG")]),
    ("the chunks are not neighbours", [(0, 12), (13, 16), (17, 24)],  # the middle chunk predicts nothing
     [[Span(5, 12, "DRUG")], [], [Span(0, 3, "DRUG")]], [(5, 12, "DRUG"), (17, 20, "DRUG")]),
    ("two spans inside one chunk", [(0, 20), (21, 24)], [[Span(5, 12, "DRUG"), Span(13, 20, "DRUG")], []],
     [(5, 12, "DRUG"), (13, 20, "DRUG")]),
])
def test_spans_that_are_not_two_pieces_of_one_entity_at_a_cut_stay_apart(case, ranges, predicted, expected):
    assert _keys(project_spans(_chunks(TEXT, *ranges), predicted)["d"]) == expected, case


def test_exact_merging_keeps_the_pieces_apart():
    chunks = _chunks(TEXT, (0, 12), (13, 24))
    predicted = [[Span(5, 12, "DRUG")], [Span(0, 7, "DRUG")]]
    assert _keys(project_spans(chunks, predicted, merge="exact")["d"]) == [(5, 12, "DRUG"), (13, 20, "DRUG")]
    assert _keys(project_spans(chunks, predicted)["d"]) == [(5, 20, "DRUG")]  # "union", the default


def test_two_entities_meeting_exactly_at_a_cut_stay_apart_only_where_the_chunks_overlap():
    # "aspirin" and "heparin" are two entities; nothing in two pieces at a cut tells them from one
    # entity cut there, so without overlap they come back as one (documented). A chunk that
    # overlaps the cut sees both, and its two spans keep them apart.
    apart = [[Span(5, 12, "DRUG")], [Span(0, 7, "DRUG"), Span(8, 15, "DRUG")]]  # 2nd chunk: "aspirin heparin now"
    assert _keys(project_spans(_chunks(TEXT, (0, 12), (5, 24)), apart)["d"]) == [(5, 12, "DRUG"), (13, 20, "DRUG")]
    cut = [[Span(5, 12, "DRUG")], [Span(0, 7, "DRUG")]]
    assert _keys(project_spans(_chunks(TEXT, (0, 12), (13, 24)), cut)["d"]) == [(5, 20, "DRUG")]


@pytest.mark.parametrize("cut", ["\n", "\r\n", " \n "])
def test_with_the_texts_a_cut_at_a_line_break_joins_nothing(cut):
    # a list of one drug per line is cut exactly at its line breaks, where an entity rarely runs on
    text = "meds: aspirin" + cut + "heparin\n"  # a short line: a list item
    second = 13 + len(cut)
    chunks = _chunks(text, (0, 13), (second, len(text) - 1))
    predicted = [[Span(6, 13, "DRUG")], [Span(0, 7, "DRUG")]]
    apart = [(6, 13, "DRUG"), (second, second + 7, "DRUG")]
    assert _keys(project_spans(chunks, predicted, texts={"d": text})["d"]) == apart
    assert _keys(project_spans(chunks, predicted)["d"]) == [(6, second + 7, "DRUG")]  # without the texts
    spaced = "meds: boston general\n"  # a cut at a space still joins, texts given or not
    chunks = _chunks(spaced, (0, 13), (14, 20))
    assert _keys(project_spans(chunks, [[Span(6, 13, "PLACE")], [Span(0, 6, "PLACE")]],
                               texts={"d": spaced})["d"]) == [(6, 20, "PLACE")]
    wrapped = "x" * WRAPPED_LINE + " boston" + cut + "general\n"  # a long line: hard-wrapped text
    at = WRAPPED_LINE + 7
    chunks = _chunks(wrapped, (0, at), (at + len(cut), len(wrapped) - 1))
    assert _keys(project_spans(chunks, [[Span(at - 6, at, "PLACE")], [Span(0, 7, "PLACE")]],
                               texts={"d": wrapped})["d"]) == [(at - 6, at + len(cut) + 7, "PLACE")]


# ------------------------------------------------------ through the chunker, with overlap 0

PLACES = ("boston general", "leeds royal infirmary", "st mary")
DRUGS = ("aspirin", "low dose heparin", "warfarin")
FILLER = "the patient was seen in clinic for chest pain after a fall at home on monday and given".split()


def _documents(n: int = 16, seed: int = 3) -> list[Document]:
    """Made-up notes with many multi-word entities whose words are separated by a space, two
    spaces or a line break (hard-wrapped text, see :func:`_separator`). A filler word always lies between two entities:
    two entities of one label separated by whitespace alone would look like one cut entity."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        text, spans = "", []
        for k in range(int(rng.integers(12, 30))):
            if text:
                text += _separator(rng, text)
            if k % 2 and rng.random() < 0.7:
                label, names = ("PLACE", PLACES) if rng.random() < 0.5 else ("DRUG", DRUGS)
                start = len(text)
                for j, word in enumerate(str(rng.choice(names)).split()):
                    text += (_separator(rng, text, spaces=(" ", "  ")) if j else "") + word
                spans.append(Span(start, len(text), label))
            else:
                text += str(rng.choice(FILLER))
        docs.append(Document(f"n{i}", text, spans=spans))
    return docs


def _separator(rng, text: str, spaces=(" ", " ", "  ")) -> str:
    """Spaces, or a line break once the line is long: hard-wrapped text, where an entity may run
    across lines (a short line's break ends a list item, where no entity goes on)."""
    line = len(text) - text.rfind("\n") - 1
    return "\n" if line >= WRAPPED_LINE and rng.random() < 0.5 else str(rng.choice(spaces))


def _cut_inside_entities(doc: Document, chunks: list[Chunk]) -> int:
    """Cuts with whitespace dropped between two chunks that fall inside one of the document's spans."""
    return sum(1 for a, b in zip(chunks, chunks[1:]) if a.end < b.start
               and any(s.start < a.end and b.start < s.end for s in doc.spans))


@pytest.mark.parametrize("max_tokens", [8, 12, 20])
def test_pieces_of_the_documents_spans_come_back_whole_without_overlap(max_tokens):
    docs = _documents()
    chunker = Chunker(ChunkConfig(max_tokens=max_tokens, overlap=0), wordpiece_tokenizer([d.text for d in docs]))
    cuts = 0
    for doc in docs:
        chunks = chunker.chunk(doc)
        cuts += _cut_inside_entities(doc, chunks)
        # what a perfect model predicts per chunk: the pieces it sees, without the chunker's notes
        pieces = [[Span(s.start, s.end, s.label) for s in c.spans] for c in chunks]
        assert _keys(project_spans(chunks, pieces)[doc.id]) == _keys(doc.spans), doc.id
        # and the document's own spans, which the chunks carry with their full extent
        assert _keys(project_spans(chunks)[doc.id]) == _keys(doc.spans), doc.id
    assert cuts >= 3  # the chunker really cut entities at whitespace


def test_the_documents_own_spans_meeting_at_a_whitespace_cut_stay_apart():
    # "aspirin" and "heparin" are two of the document's spans; overlap 0 cuts between them
    text = " ".join(["aspirin heparin"] * 12)
    spans = [Span(k * 16 + a, k * 16 + b, "DRUG") for k in range(12) for a, b in ((0, 7), (8, 15))]
    doc = Document("d", text, spans=spans)
    chunks = Chunker(ChunkConfig(max_tokens=7, overlap=0), wordpiece_tokenizer([text])).chunk(doc)
    assert any(a.end < b.start and a.end in {s.end for s in spans} for a, b in zip(chunks, chunks[1:]))
    for merge in ("union", "exact"):
        assert _keys(project_spans(chunks, merge=merge)["d"]) == _keys(spans)


@pytest.mark.parametrize("decoding", ["words", "tokens"])
@pytest.mark.parametrize("max_length", [12, 20])
def test_ner_predictions_over_chunks_without_overlap_give_back_the_gold_spans(decoding, max_length):
    """Gold spans -> BIO tags of every chunk -> a perfect model's scores -> document spans, as
    finetune's evaluation and predict do it, with chunks that do not overlap."""
    docs = _documents()
    labels = LabelMap("ner", ["DRUG", "PLACE"])
    enc = encode_documents(docs, task="ner", tokenizer=wordpiece_tokenizer([d.text for d in docs], whole_words=False),
                           max_length=max_length, long_documents=LongDocumentsSection(strategy="chunk", overlap=0),
                           label_map=labels, label_field="spans")
    assert enc.stats["spans_cut_by_chunks"] >= 3
    found = document_outputs("ner", labels, docs, enc.features, perfect_tagger_logits(enc.features, labels),
                             ner_decoding=decoding, texts=[d.text for d in docs])
    for doc, spans in zip(docs, found):
        assert _keys(spans) == _keys(doc.spans), doc.id  # before: each cut entity came back as two spans
