"""Chunk edges: a blank document is rejected, not written as nothing; overlap when no cut is near.

- A document whose text is empty or only whitespace yields no chunk. Counted as written, it
  vanished from the output while the counts said otherwise; it goes to the reject file with a
  reason, in one process and on the engines (``chunk_partition``) alike.
- When every gap in the overlap window lies inside one character (a CJK character or an emoji
  that a byte-level tokenizer spreads over more tokens than ``overlap``), the next chunk started
  at the previous end: no overlap although overlap was asked for.
"""

from __future__ import annotations

import json

import pytest
from conftest import byte_level_bpe, wordpiece_tokenizer
from test_chunk import check_invariants, chunked

from domainfm.chunk import ChunkConfig, chunk_documents, chunk_file, project_spans
from domainfm.corpus import Document, Span
from domainfm.distributed.core import DOCUMENT, RECORD, REJECT, chunk_partition

EMPTY = "empty text: nothing to chunk"


@pytest.fixture(scope="module")
def bytelevel():
    """A byte-level BPE tokenizer that knows no CJK merge: every CJK character is 3 tokens."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = byte_level_bpe(["the patient was seen"], ["<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


# ------------------------------------------------------------------------- blank documents

def test_a_blank_document_is_rejected_with_a_reason_and_counts_reconcile(tmp_path, tiny_tokenizer):
    src, out = tmp_path / "docs.jsonl", tmp_path / "chunks.jsonl"
    records = [{"id": "e1", "text": ""}, {"id": "ok", "text": "the patient was seen"},
               {"id": "e2", "text": " \n\t \n"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = chunk_file(src, out, ChunkConfig(max_tokens=32, overlap=4), tokenizer=tiny_tokenizer)
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (3, 1, 2)
    assert result.counts.reasons == {EMPTY: 2}
    assert {json.loads(line)["doc_id"] for line in out.read_text().splitlines()} == {"ok"}
    rejects = [json.loads(line) for line in result.rejects.read_text().splitlines()]
    assert [(r["id"], r["location"], r["reason"]) for r in rejects] == [("e1", "docs.jsonl:1", EMPTY),
                                                                         ("e2", "docs.jsonl:3", EMPTY)]
    assert json.loads(rejects[1]["raw"])["text"] == " \n\t \n"  # the record kept for repair
    counts = json.loads(result.manifest.read_text())["counts"]
    assert (counts["read"], counts["written"], counts["rejected"], counts["empty_documents"]) == (3, 1, 2, 0)


def test_the_engines_reject_a_blank_document_as_chunk_file_does():
    rows = [{"order": i, "location": f"t:{i + 1}", "doc": json.dumps(r)} for i, r in enumerate(
        [{"id": "e1", "text": "  "}, {"id": "ok", "text": "Seen today."}, {"id": "e2", "text": ""}])]
    out = list(chunk_partition(iter(rows), ChunkConfig(max_tokens=64, overlap=8)))
    rejects = [(r["order"], r["location"], r["record_id"], json.loads(r["payload"])["reason"])
               for r in out if r["kind"] == REJECT]
    assert rejects == [(0, "t:1", "e1", EMPTY), (2, "t:3", "e2", EMPTY)]
    assert [r["record_id"] for r in out if r["kind"] == DOCUMENT] == ["ok"]
    assert [r["order"] for r in out if r["kind"] == RECORD] == [1]


# --------------------------------------------------------------------------------- overlap

@pytest.mark.parametrize("text, overlap", [("患者有胸痛" * 20, 2), ("😀" * 30, 3)])
def test_overlap_never_exceeds_its_tokens_when_the_window_lies_inside_one_character(bytelevel, text, overlap):
    # a byte-level tokenizer spreads one CJK character or emoji over 3-4 tokens: a window of fewer
    # tokens holds no cut, and `overlap` is an upper bound, so the chunks meet end to start
    doc, chunks, config = chunked(text, bytelevel, max_tokens=20, overlap=overlap)
    check_invariants(doc, chunks, bytelevel, config)
    assert len(chunks) > 3
    for a, b in zip(chunks, chunks[1:]):
        shared = doc.text[b.start:a.end] if b.start < a.end else ""
        assert len(bytelevel(shared, add_special_tokens=False)["input_ids"]) <= overlap


@pytest.mark.parametrize("text", ["aGVsbG8gd29ybGQgdGhpcyBpcyBhIGJhc2U2NCBibG9i" * 2, "患者有胸痛头晕恶心呕吐" * 9])
def test_overlap_holds_in_a_run_without_any_break(text):
    tokenizer = wordpiece_tokenizer([text], whole_words=False)  # one token per character
    doc, chunks, config = chunked(text, tokenizer, max_tokens=16, overlap=4)
    check_invariants(doc, chunks, tokenizer, config)
    assert len(chunks) > 3 and all(b.start < a.end for a, b in zip(chunks, chunks[1:]))


def test_spans_project_back_through_chunks_cut_inside_characters(bytelevel):
    text = "患者有胸痛" * 12
    spans = [Span(5 * i, 5 * i + 2, "PERSON") for i in range(12)] + [Span(7, 23, "LONG")]
    doc = Document("d1", text, spans=spans)
    chunks = list(chunk_documents([doc], ChunkConfig(tokenizer="test", max_tokens=20, overlap=2), bytelevel))
    assert len(chunks) > 3
    assert any(s.attrs.get("cut") for c in chunks for s in c.spans)  # some span is cut by a boundary
    assert project_spans(chunks)["d1"] == sorted(spans, key=lambda s: (s.start, s.end, s.label))
