"""The chunk stage: exact offsets, the token limit as a guarantee, sections, spans, reassembly."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import byte_level_bpe

from domainfm.chunk import (
    Chunk,
    ChunkConfig,
    Chunker,
    aggregate_predictions,
    chunk_documents,
    chunk_file,
    load_chunk_tokenizer,
    merge_char_attributions,
    merge_token_attributions,
    project_spans,
    sectionize,
)
from domainfm.corpus import Document, Span
from domainfm.errors import ConfigError, ModelResolutionError, RecordError

CLINICAL_NOTE = """CHIEF COMPLAINT: Chest pain radiating to the left arm.

HISTORY OF PRESENT ILLNESS: Mrs. Jane Doe is a 67-year-old woman with hypertension and type 2
diabetes who presents with two hours of substernal chest pressure. The pain began at rest. She
took one nitroglycerin with partial relief. She denies fever, cough or shortness of breath.
She was seen by Dr. Lee in clinic last week and her metformin dose was increased.

PAST MEDICAL HISTORY: Hypertension. Type 2 diabetes mellitus. Hyperlipidemia.

MEDICATIONS:
1. Metformin 1000 mg twice daily.
2. Lisinopril 20 mg daily.
3. Atorvastatin 40 mg nightly.

ALLERGIES: NKDA.

SOCIAL HISTORY: Former smoker, quit 10 years ago. No alcohol use.

PHYSICAL EXAM
Vitals: BP 158/92, HR 96, RR 18, SpO2 97% on room air.
HEENT: Normocephalic, atraumatic.
Lungs: Clear to auscultation bilaterally.
Heart: Regular rate and rhythm, no murmurs.

LABS: Troponin I 0.42 ng/mL (elevated). Creatinine 1.1 mg/dL. Potassium 4.2 mmol/L.

ASSESSMENT AND PLAN:
1. NSTEMI - aspirin 325 mg now, then 81 mg daily; heparin drip per protocol; cardiology consult
for catheterization. Continue atorvastatin at high intensity.
2. Hypertension - continue lisinopril, add metoprolol 25 mg twice daily as tolerated.
3. Diabetes - hold metformin before contrast; insulin sliding scale.

DISCHARGE INSTRUCTIONS: Return to the emergency department for recurrent chest pain.
"""

CONTRACT = """MASTER SERVICES AGREEMENT

This Master Services Agreement (the "Agreement") is entered into as of March 1, 2021 by and
between Acme Corp., a Delaware corporation ("Provider"), and Beta LLC ("Customer").

RECITALS

WHEREAS, Provider offers hosted data services; and
WHEREAS, Customer wishes to obtain such services on the terms set out below.

ARTICLE 1 DEFINITIONS
1.1 "Confidential Information" means any non-public information disclosed by a party.
1.2 "Services" means the services described in Exhibit A.

ARTICLE 7 TERMINATION
7.1 Term. This Agreement commences on the Effective Date and continues for three years.
7.2 Termination for Cause. Either party may terminate this Agreement on thirty days' written
notice if the other party materially breaches this Agreement and fails to cure the breach,
including without limitation any failure to pay fees when due, any breach of the
confidentiality obligations, or any violation of applicable law, within the notice period.
(a) Upon termination, Customer shall pay all fees accrued through the termination date;
(b) each party shall return or destroy the other party's Confidential Information; and
(c) Sections 1, 7 and 9 survive termination.
7.3 Effect. Termination does not relieve either party of obligations accrued before it.

ARTICLE 9 GOVERNING LAW
9.1 This Agreement is governed by the laws of the State of New York.

EXHIBIT A - SERVICES
1. Hosting. Provider hosts the Customer data in a secure facility.
"""

SCHEMA = ["id", "doc_id", "start", "end", "text", "n_tokens", "section", "spans", "meta", "label", "labels"]


@pytest.fixture(scope="module")
def minilm():
    from domainfm.models import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def bytelevel_tokenizer():
    """A byte-level BPE tokenizer (GPT-2 style): an emoji is 4 tokens that share one character."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = byte_level_bpe(["the patient was seen", "either party may terminate"], ["<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def check_invariants(doc: Document, chunks: list[Chunk], tokenizer, config: ChunkConfig) -> None:
    """What every chunking must satisfy, whatever the text."""
    covered = bytearray(len(doc.text))
    last_start = -1
    for i, chunk in enumerate(chunks):
        assert chunk.id == f"{doc.id}#{i}" and chunk.doc_id == doc.id
        assert chunk.text == doc.text[chunk.start:chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.start > last_start
        last_start = chunk.start
        recount = len(tokenizer(chunk.text)["input_ids"])
        assert chunk.n_tokens == recount <= config.max_tokens
        covered[chunk.start:chunk.end] = b"\1" * (chunk.end - chunk.start)
    uncovered = [i for i, ch in enumerate(doc.text) if not covered[i] and not ch.isspace()]
    assert uncovered == []


def chunked(text: str, tokenizer, **kwargs) -> tuple[Document, list[Chunk], ChunkConfig]:
    config = ChunkConfig(**{"tokenizer": "test", **kwargs})
    doc = Document(id="d1", text=text)
    return doc, list(chunk_documents([doc], config, tokenizer)), config


# ------------------------------------------------------------------------------- config

@pytest.mark.parametrize("kwargs, message", [
    ({"max_tokens": 512, "overlap": 512}, "'overlap' (512) must be smaller than 'max_tokens' (512); try --overlap 64"),
    ({"max_tokens": 128, "overlap": 300}, "must be smaller than 'max_tokens' (128)"),
    ({"max_tokens": 0}, "The 'max_tokens' parameter must be an int in [4, 1048576]. Got 0 instead"),
    ({"overlap": -1}, "The 'overlap' parameter must be an int >= 0"),
    ({"profile": "legl"}, "unknown profile 'legl' (did you mean 'legal'?); available: clinical, generic, legal"),
    ({"tokenizer": ""}, "'tokenizer' must be a tokenizer name or path"),
])
def test_bad_config_is_a_named_error(kwargs, message):
    with pytest.raises(ConfigError) as err:
        ChunkConfig(**kwargs)
    assert message in str(err.value)


def test_config_round_trips_through_dict():
    from domainfm.config import from_dict, to_dict

    config = ChunkConfig(tokenizer="minilm", max_tokens=256, overlap=32, profile="legal")
    assert from_dict(ChunkConfig, to_dict(config)) == config


def test_overlap_must_fit_the_budget_left_by_special_tokens(tiny_tokenizer):
    with pytest.raises(ConfigError, match=r"'overlap' \(15\) must be smaller than the text budget 14"):
        Chunker(ChunkConfig(max_tokens=16, overlap=15), tiny_tokenizer)


def test_max_tokens_over_the_model_limit_is_refused(minilm):
    with pytest.raises(ConfigError, match=r"exceeds the model's maximum sequence length \(512\)"):
        Chunker(ChunkConfig(max_tokens=1024, overlap=64), minilm)


@pytest.mark.parametrize("name", ["no-such-tokenizer", "./missing/folder"])
def test_unloadable_tokenizer_is_one_clear_line(name):
    with pytest.raises(ModelResolutionError) as err:
        Chunker(ChunkConfig(tokenizer=name))
    assert "\n" not in str(err.value) and name in str(err.value)


def test_tokenizer_folder_without_vocabulary_is_refused(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    with pytest.raises(ModelResolutionError, match="has no vocabulary"):
        load_chunk_tokenizer(str(tmp_path))


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(ConfigError, match="slow tokenizer without character offsets"):
        Chunker(ChunkConfig(), Slow())


# ---------------------------------------------------------------------- core invariants

@pytest.mark.parametrize("profile, text", [("clinical", CLINICAL_NOTE), ("legal", CONTRACT), ("generic", CONTRACT)])
@pytest.mark.parametrize("max_tokens, overlap", [(32, 0), (48, 8), (96, 16), (512, 64)])
def test_invariants_on_realistic_documents(minilm, profile, text, max_tokens, overlap):
    doc, chunks, config = chunked(text * 2, minilm, max_tokens=max_tokens, overlap=overlap, profile=profile)
    check_invariants(doc, chunks, minilm, config)


def test_invariants_with_the_tiny_tokenizer(tiny_tokenizer):
    doc, chunks, config = chunked(CLINICAL_NOTE, tiny_tokenizer, max_tokens=40, overlap=6, profile="clinical")
    assert len(chunks) > 3
    check_invariants(doc, chunks, tiny_tokenizer, config)


def test_whole_short_document_is_one_chunk(minilm):
    doc, chunks, _ = chunked("  Seen by Dr. Lee.  \n", minilm, max_tokens=64, overlap=8)
    assert [(c.start, c.end, c.text, c.n_tokens) for c in chunks] == [(2, 18, "Seen by Dr. Lee.", 8)]


def test_overlap_is_measured_in_tokens(minilm):
    words = "patient record review plan note result"
    text = " ".join(words.split()[i % 6] for i in range(600))  # one token per word, no sentences
    doc, chunks, config = chunked(text, minilm, max_tokens=66, overlap=10)
    assert len(chunks) > 5
    for prev, nxt in zip(chunks, chunks[1:]):
        shared = doc.text[nxt.start:prev.end]
        assert len(minilm(shared, add_special_tokens=False)["input_ids"]) == 10
    check_invariants(doc, chunks, minilm, config)


def test_overlap_snaps_to_a_sentence_start(minilm):
    text = " ".join(f"Sentence number {i} has exactly eight tokens." for i in range(60))
    doc, chunks, _ = chunked(text, minilm, max_tokens=66, overlap=20)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.text.startswith("Sentence number")
        assert prev.text.endswith(".")
        assert 0 < len(minilm(doc.text[nxt.start:prev.end], add_special_tokens=False)["input_ids"]) <= 20


def test_chunks_end_at_paragraphs_before_sentences_before_words(minilm):
    para = "The patient was seen today. She reports mild pain in the knee. " * 3
    text = "\n\n".join(para.strip() for _ in range(8))
    doc, chunks, _ = chunked(text, minilm, max_tokens=80, overlap=0)
    for chunk in chunks[:-1]:
        after = doc.text[chunk.end:chunk.end + 2]
        assert chunk.text.endswith(".") and (after == "\n\n" or after.startswith(" "))
    assert sum(doc.text[c.end:c.end + 2] == "\n\n" for c in chunks[:-1]) >= len(chunks) // 2


def test_shrinks_until_the_reencoded_chunk_fits(minilm, monkeypatch):
    """A substring may tokenize longer than its slice of the full text: then the chunk shrinks."""
    real = Chunker.count_tokens
    monkeypatch.setattr(Chunker, "count_tokens", lambda self, texts: [n + 7 for n in real(self, texts)])
    doc, chunks, config = chunked(CLINICAL_NOTE, minilm, max_tokens=40, overlap=6, profile="clinical")
    assert chunks and all(c.n_tokens <= 40 for c in chunks)
    assert all(c.n_tokens == len(minilm(c.text)["input_ids"]) + 7 for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())


# ------------------------------------------------------------------------------ sections

def test_clinical_sections_in_their_written_variants():
    text = ("CC: cough.\nHPI: 3 days.\nPast Medical History: asthma.\nMeds: albuterol.\nALLERGIES: NKDA.\n"
            "FH: none.\nSH: no smoking.\nROS: negative.\nPHYSICAL EXAM\nLungs: wheeze.\nLabs: normal.\n"
            "Assessment: asthma exacerbation.\nPlan: prednisone.\nDischarge Instructions: return if worse.\n")
    titles = [s.label for s in sectionize(text, "clinical")]
    assert titles == ["CC", "HPI", "Past Medical History", "Meds", "ALLERGIES", "FH", "SH", "ROS",
                      "PHYSICAL EXAM", "PHYSICAL EXAM > Lungs", "Labs", "Assessment", "Plan",
                      "Discharge Instructions"]


def test_clinical_sections_glued_with_commas():
    text = ("SUBJECTIVE:,  This 23-year-old female presents with allergies.,MEDICATIONS: , Allegra.,"
            "OBJECTIVE:,Vitals:  Weight 130.,HEENT:  Throat red.,ASSESSMENT:,  Allergic rhinitis.,PLAN:,1.  Zyrtec.")
    sections = sectionize(text, "clinical")
    assert [s.label for s in sections] == ["SUBJECTIVE", "MEDICATIONS", "OBJECTIVE", "OBJECTIVE > Vitals",
                                           "OBJECTIVE > HEENT", "ASSESSMENT", "PLAN"]
    assert all(text[s.start:].startswith(s.title.split()[0]) for s in sections)


def test_legal_section_paths():
    labels = {s.label for s in sectionize(CONTRACT, "legal")}
    assert {"Recitals", "Article 1 > 1.1", "Article 7 > 7.2", "Article 7 > 7.2 > (a)",
            "Article 9 > 9.1", "Exhibit A", "Exhibit A > 1"} <= labels


def test_legal_clause_levels_without_articles():
    text = "1. Definitions.\n(a) \"Fees\" means fees.\n(i) monthly; and\n(ii) yearly.\n2. Term.\n2.1 Renewal. Renews.\n"
    assert [(s.label, s.top) for s in sectionize(text, "legal")] == [
        ("1", True), ("1 > (a)", False), ("1 > (a) > (i)", False), ("1 > (a) > (ii)", False),
        ("2", True), ("2 > 2.1", False)]


def test_chunk_section_paths_on_a_note(minilm):
    doc, chunks, _ = chunked(CLINICAL_NOTE, minilm, max_tokens=64, overlap=8, profile="clinical")
    sections = [c.section for c in chunks]
    assert any(s.startswith("ASSESSMENT AND PLAN") for s in sections)
    assert any("HISTORY OF PRESENT ILLNESS" in s for s in sections)
    plan = next(c for c in chunks if c.section.startswith("ASSESSMENT AND PLAN"))
    assert plan.text.startswith("ASSESSMENT AND PLAN:")


def test_chunks_never_cross_a_top_level_section(minilm):
    doc, chunks, _ = chunked(CONTRACT, minilm, max_tokens=48, overlap=8, profile="legal")
    tops = [s.start for s in sectionize(CONTRACT, "legal") if s.top]
    for chunk in chunks:
        crossed = [t for t in tops if chunk.start < t < chunk.end]
        # Only whole small sections are packed together, and then the section names them all.
        assert not crossed or (chunk.start in tops and "; " in chunk.section)
    assert any(c.section.startswith("Article 7 > 7.2") and c.text.startswith("7.2") for c in chunks)


def test_small_whole_sections_are_packed_together(minilm):
    doc, chunks, _ = chunked(CLINICAL_NOTE, minilm, max_tokens=512, overlap=64, profile="clinical")
    assert len(chunks) == 1
    assert chunks[0].section.startswith("CHIEF COMPLAINT; HISTORY OF PRESENT ILLNESS; PAST MEDICAL HISTORY")


# --------------------------------------------------------------------- spans + reassembly

def note_with_spans() -> Document:
    spans = []
    for needle, label in (("Jane Doe", "PATIENT"), ("Dr. Lee", "DOCTOR"), ("67-year-old", "AGE"),
                          ("hypertension and type 2\ndiabetes", "PROBLEM"), ("metoprolol", "DRUG")):
        start = CLINICAL_NOTE.index(needle)
        spans.append(Span(start, start + len(needle), label, {"source": "gold"}))
    start = CLINICAL_NOTE.index("HISTORY OF PRESENT")
    end = CLINICAL_NOTE.index("was increased.") + len("was increased.")
    spans.append(Span(start, end, "SECTION_TEXT"))  # longer than a chunk
    return Document(id="n1", text=CLINICAL_NOTE, meta={"site": "A"}, label="cardiology", spans=spans)


def test_spans_are_projected_and_cut_spans_reported(minilm):
    doc = note_with_spans()
    config = ChunkConfig(max_tokens=40, overlap=8, profile="clinical")
    chunks = list(chunk_documents([doc], config, minilm))
    check_invariants(doc, chunks, minilm, config)
    seen = set()
    for chunk in chunks:
        assert chunk.meta == {"site": "A"} and chunk.label == "cardiology" and chunk.labels is None
        for span in chunk.spans:
            assert 0 <= span.start < span.end <= len(chunk.text)
            cut = span.attrs.get("cut")
            original = Span(span.attrs.get("doc_start", chunk.start + span.start),
                            span.attrs.get("doc_end", chunk.start + span.end), span.label)
            if cut is None:
                assert chunk.text[span.start:span.end] == doc.text[original.start:original.end]
            else:
                assert cut in ("start", "end", "both")
                assert (cut in ("start", "both")) == (span.start == 0 and original.start < chunk.start)
            seen.add(original.key)
    assert seen == {s.key for s in doc.spans}  # no span silently dropped
    section_pieces = [s for c in chunks for s in c.spans if s.label == "SECTION_TEXT"]
    assert len(section_pieces) >= 2 and {s.attrs["cut"] for s in section_pieces} >= {"end", "start"}


@pytest.mark.parametrize("merge", ["exact", "union"])
def test_reassembly_round_trip(minilm, merge):
    doc = note_with_spans()
    chunks = list(chunk_documents([doc], ChunkConfig(max_tokens=40, overlap=8, profile="clinical"), minilm))
    restored = project_spans(chunks, merge=merge)["n1"]
    assert restored == sorted(doc.spans, key=lambda s: (s.start, s.end, s.label))


def test_predicted_spans_from_overlapping_chunks_are_merged():
    a = Chunk("d#0", "d", 0, 50, "x" * 50, 10, "")
    b = Chunk("d#1", "d", 40, 90, "x" * 50, 10, "")
    # Both chunks see the entity at doc [42, 55); the first only up to its end.
    predictions = [[Span(42, 50, "DRUG"), Span(5, 9, "DRUG"), Span(6, 8, "DRUG")], [Span(2, 15, "DRUG")]]
    merged = project_spans([a, b], predictions)["d"]
    assert [s.key for s in merged] == [(5, 9, "DRUG"), (6, 8, "DRUG"), (42, 55, "DRUG")]
    exact = project_spans([a, b], predictions, merge="exact")["d"]
    assert [s.key for s in exact] == [(5, 9, "DRUG"), (6, 8, "DRUG"), (42, 50, "DRUG"), (42, 55, "DRUG")]


def test_aggregate_predictions_mean_weighted_by_length_and_max():
    chunks = [Chunk("a#0", "a", 0, 300, "x" * 300, 60, ""), Chunk("a#1", "a", 280, 380, "x" * 100, 20, ""),
              Chunk("b#0", "b", 0, 10, "x" * 10, 4, "")]
    probs = [{"pos": 0.8, "neg": 0.2}, {"pos": 0.0, "neg": 1.0}, {"pos": 0.5, "neg": 0.5}]
    mean = aggregate_predictions(chunks, probs)
    assert mean["a"] == pytest.approx({"pos": 0.6, "neg": 0.4}) and mean["b"] == pytest.approx({"pos": 0.5, "neg": 0.5})
    assert aggregate_predictions(chunks, probs, how="max")["a"] == pytest.approx({"pos": 0.8, "neg": 1.0})
    vectors = aggregate_predictions(chunks, [np.array(list(p.values())) for p in probs], weight="none")
    assert vectors["a"] == pytest.approx([0.4, 0.6])
    with pytest.raises(ConfigError, match="got 2 predictions for 3 chunks"):
        aggregate_predictions(chunks, probs[:2])


def test_attributions_are_averaged_where_chunks_overlap():
    chunks = [Chunk("d#0", "d", 0, 6, "abcdef", 4, ""), Chunk("d#1", "d", 4, 10, "efghij", 4, "")]
    chars = merge_char_attributions(chunks, [np.ones(6), np.full(6, 3.0)], doc_lengths={"d": 12})
    assert chars["d"].tolist() == [1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 0, 0]
    tokens = merge_token_attributions(chunks, [[(0, 3, 0.5), (4, 6, 1.0)], [(0, 2, 3.0), (2, 6, 0.2)]])
    assert tokens["d"] == [(0, 3, 0.5), (4, 6, 2.0), (6, 10, 0.2)]
    with pytest.raises(ConfigError, match="expected 6 character scores"):
        merge_char_attributions(chunks, [np.ones(5), np.ones(6)])


# ------------------------------------------------------------------------------ bad input

def test_empty_and_whitespace_documents_give_no_chunks(minilm):
    config = ChunkConfig(max_tokens=64, overlap=8)
    docs = [Document("e1", ""), Document("e2", " \n\t \n")]
    assert list(chunk_documents(docs, config, minilm)) == []


def test_text_the_tokenizer_drops_entirely_is_still_covered(minilm):
    doc, chunks, config = chunked("\x00\x01\x02", minilm, max_tokens=16, overlap=0)
    assert [(c.start, c.end, c.n_tokens) for c in chunks] == [(0, 3, 2)]


@pytest.mark.parametrize("text", [
    "a" * 200_000,  # one 200k-character word
    "".join("abcdefghij,;.-"[(i * 7919) % 14] for i in range(200_000)),  # no whitespace, many tokens
])
def test_one_long_line_without_whitespace_is_fast_and_fits(minilm, text):
    t0 = time.perf_counter()
    doc, chunks, config = chunked(text, minilm, max_tokens=512, overlap=64)
    assert time.perf_counter() - t0 < 10
    assert all(c.n_tokens <= 512 and c.text == text[c.start:c.end] for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(b.start <= a.end for a, b in zip(chunks, chunks[1:]))  # contiguous: nothing skipped


def test_cjk_text_with_many_tokens(minilm):
    text = "".join(chr(0x4E00 + (i * 37) % 20000) for i in range(3000)) + "。患者有胸痛。" * 200
    doc, chunks, config = chunked(text, minilm, max_tokens=128, overlap=16)
    check_invariants(doc, chunks, minilm, config)


@pytest.mark.parametrize("text", ["\U0001F600" * 5000, "Hi 😀😀 there. 中文字。" * 400, "é😀" * 3000])
def test_characters_worth_several_tokens_are_never_split(bytelevel_tokenizer, text):
    doc, chunks, config = chunked(text, bytelevel_tokenizer, max_tokens=24, overlap=5)
    assert len(chunks) > 10
    check_invariants(doc, chunks, bytelevel_tokenizer, config)


def test_a_character_longer_than_the_budget_is_a_clear_error(bytelevel_tokenizer):
    config = ChunkConfig(max_tokens=5, overlap=0)  # 3 positions of text; an emoji needs 4
    with pytest.raises(RecordError, match=r"cannot be split further and need 6 model positions"):
        list(chunk_documents([Document("x", "ok 😀 ok")], config, bytelevel_tokenizer))


_ALPHABET = st.sampled_from(
    list("abcdefghij klmnop qrst ABC XYZ 0123 .,;:!?()-\n\n\t") + ["é", "中", "😀", "\u200b", "\x00"])
_PIECES = st.one_of(st.text(_ALPHABET, max_size=60), st.sampled_from(
    ["\nHPI: ", "\nPLAN:\n", "ARTICLE 2\n", "\n7.2 Term. ", "\n(a) ", "WHEREAS, ", "\n\n", ". The ", "word" * 30]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# From 8 positions up: below that, a word piece that re-tokenizes longer on its own than inside
# its word can leave no way to cut at token boundaries, and the chunker raises a RecordError.
@given(pieces=st.lists(_PIECES, max_size=25), max_tokens=st.integers(8, 40), overlap_share=st.floats(0, 0.9),
       profile=st.sampled_from(["clinical", "legal", "generic"]))
def test_property_invariants_hold_on_random_text(tiny_tokenizer, pieces, max_tokens, overlap_share, profile):
    text = "".join(pieces)
    overlap = int(overlap_share * (max_tokens - 2 - 1))
    doc, chunks, config = chunked(text, tiny_tokenizer, max_tokens=max_tokens, overlap=overlap, profile=profile)
    check_invariants(doc, chunks, tiny_tokenizer, config)


# ----------------------------------------------------------------------- file stage + CLI

def write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")


def test_chunk_file_writes_chunks_rejects_and_manifest(minilm, tmp_path, bytelevel_tokenizer):
    src, out = tmp_path / "docs.jsonl", tmp_path / "chunks.jsonl"
    write_jsonl(src, [note_with_spans().to_dict(), {"id": "empty", "text": ""}, "{broken json",
                      {"id": "c1", "text": CONTRACT, "labels": ["msa"]}, {"id": "bad", "text": 3}])
    result = chunk_file(src, out, ChunkConfig(max_tokens=64, overlap=8, profile="clinical"), tokenizer=minilm)
    assert result.counts.to_dict()["reconciles"]
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (5, 2, 3)
    assert result.empty_documents == 0 and result.chunks > 4
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(list(r) == SCHEMA for r in records)
    assert {r["doc_id"] for r in records} == {"n1", "c1"}
    assert all(r["labels"] == ["msa"] for r in records if r["doc_id"] == "c1")
    rejects = [json.loads(line) for line in result.rejects.read_text().splitlines()]
    assert {r["id"] for r in rejects} == {None, "bad", "empty"}
    manifest = json.loads(result.manifest.read_text())
    assert manifest["stage"] == "chunk" and manifest["config"]["max_tokens"] == 64
    assert manifest["counts"]["empty_documents"] == 0 and manifest["counts"]["chunks"] == result.chunks
    assert manifest["counts"]["max_chunk_tokens"] <= 64
    round_trip = [Chunk.from_dict(r) for r in records]
    assert project_spans(round_trip)["n1"] == sorted(note_with_spans().spans, key=lambda s: (s.start, s.end, s.label))


def test_a_document_that_cannot_fit_goes_to_the_reject_file(tmp_path, bytelevel_tokenizer):
    src, out = tmp_path / "docs.jsonl", tmp_path / "chunks.jsonl"
    write_jsonl(src, [{"id": "ok", "text": "the patient"}, {"id": "emoji", "text": "😀"}])
    result = chunk_file(src, out, ChunkConfig(max_tokens=5, overlap=0), tokenizer=bytelevel_tokenizer)
    assert (result.counts.written, result.counts.rejected) == (1, 1)
    assert "cannot be split further" in result.first_rejects[0] and "id='emoji'" in result.first_rejects[0]


def test_cli_chunk(cli, tmp_path):
    src, out = tmp_path / "docs.jsonl", tmp_path / "chunks.jsonl"
    write_jsonl(src, [{"id": "c1", "text": CONTRACT}, {"id": "n1", "text": CLINICAL_NOTE}])
    result = cli("chunk", src, "-o", out, "--tokenizer", "minilm", "--max-tokens", 128, "--overlap", 16,
                 "--profile", "legal")
    assert result.exit_code == 0, result.output
    assert "read 2 = written 2 + rejected 0 documents;" in result.stderr
    assert "Jane" not in result.output  # counts only, never document text
    chunks = [json.loads(line) for line in out.read_text().splitlines()]
    assert chunks and all(c["n_tokens"] <= 128 for c in chunks)
    assert (tmp_path / "chunks.manifest.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--max-tokens", "512", "--overlap", "512"],
     "error: 'overlap' (512) must be smaller than 'max_tokens' (512); try --overlap 64"),
    (["--tokenizer", "no-such-tokenizer"], "error: unknown model 'no-such-tokenizer'"),
    (["--profile", "clinic"], "error: unknown profile 'clinic' (did you mean 'clinical'?)"),
])
def test_cli_chunk_errors_are_one_line(cli, tmp_path, args, message):
    src = tmp_path / "docs.jsonl"
    write_jsonl(src, [{"id": "a", "text": "x"}])
    result = cli("chunk", src, "-o", tmp_path / "o.jsonl", *args)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl").exists()


# ----------------------------------------------------------------------------- real data

@pytest.mark.shared_data
def test_a_few_cuad_contracts(shared_data, minilm):
    files = sorted((shared_data / "cuad" / "full_contract_txt").glob("*.txt"))[:3]
    docs = [Document(id=f.stem, text=f.read_text(encoding="utf-8")) for f in files]
    config = ChunkConfig(max_tokens=512, overlap=64, profile="legal")
    chunks = list(chunk_documents(docs, config, minilm))
    for doc in docs:
        check_invariants(doc, [c for c in chunks if c.doc_id == doc.id], minilm, config)


@pytest.mark.slow
@pytest.mark.shared_data
def test_all_cuad_contracts(shared_data, minilm):
    config = ChunkConfig(max_tokens=512, overlap=64, profile="legal")
    for f in sorted((shared_data / "cuad" / "full_contract_txt").glob("*.txt")):
        doc = Document(id=f.stem, text=f.read_text(encoding="utf-8"))
        check_invariants(doc, list(chunk_documents([doc], config, minilm)), minilm, config)


def test_whitespace_span_between_chunks_is_counted_and_the_warning_names_no_document(minilm, caplog):
    para = "The patient was seen today. She reports mild pain in the knee. " * 3
    text = "\n\n".join(para.strip() for _ in range(8))
    probe = Chunker(ChunkConfig(max_tokens=80, overlap=0), minilm)
    first = next(iter(probe.iter_documents([Document(id="x", text=text)]))).chunks[0]
    gap = Span(first.end, first.end + 2, "GAP")
    assert text[gap.start:gap.end] == "\n\n"
    doc = Document(id="MRN-0042", text=text, spans=[gap])
    with caplog.at_level("WARNING", logger="domainfm"):
        result = next(iter(probe.iter_documents([doc])))
    assert result.spans_outside == 1
    assert "between chunks" in caplog.text and "MRN-0042" not in caplog.text
