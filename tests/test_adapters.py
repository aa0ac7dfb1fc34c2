"""domainfm inside other libraries' interfaces: the chunker as a LangChain TextSplitter and the
surrogates as a Presidio anonymizer Operator."""

from __future__ import annotations

import pytest

from domainfm.chunk.config import ChunkConfig


@pytest.fixture(scope="module")
def splitter():
    from domainfm.chunk.langchain import DomainTextSplitter

    return DomainTextSplitter(ChunkConfig(max_tokens=48, overlap=8, profile="clinical"))


NOTE = ("HISTORY OF PRESENT ILLNESS: The patient reports chest pain. The pain began two days ago. "
        "It is worse on exertion. " * 6 + "\n\nMEDICATIONS: aspirin 81 mg daily. The pain began two days ago. "
        "ASSESSMENT AND PLAN: stable angina; stress test. The pain began two days ago.")


def test_langchain_splitter_gives_exact_offsets_and_never_overflows(splitter):
    from langchain_text_splitters import TextSplitter

    assert isinstance(splitter, TextSplitter)
    docs = splitter.create_documents([NOTE, "Short note."], [{"source": "a"}, {"source": "b"}])
    first = [d for d in docs if d.metadata["source"] == "a"]
    assert len(first) > 3  # really split
    for doc in first:
        start, end = doc.metadata["start_index"], doc.metadata["end_index"]
        assert NOTE[start:end] == doc.page_content  # exact, even for the repeated sentences
        assert splitter.chunker.count_tokens([doc.page_content])[0] <= 48
        assert doc.metadata["n_tokens"] <= 48
    starts = [d.metadata["start_index"] for d in first]
    assert starts == sorted(starts) and starts[0] == 0
    assert [d.page_content for d in docs if d.metadata["source"] == "b"] == ["Short note."]
    assert splitter.split_text(NOTE) == [d.page_content for d in first]
    # the LangChain Document interface: split_documents keeps the metadata
    again = splitter.split_documents(first[:1])
    assert again[0].metadata["source"] == "a"


def test_langchain_splitter_rejects_a_bad_budget():
    from domainfm.chunk.langchain import DomainTextSplitter
    from domainfm.errors import ConfigError

    with pytest.raises(ConfigError, match="overlap"):
        DomainTextSplitter(ChunkConfig(max_tokens=32, overlap=31))


def test_presidio_operator_gives_domainfm_surrogates():
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import InvalidParamError, OperatorConfig, RecognizerResult

    from domainfm.deid.presidio_operator import SurrogateOperator
    from domainfm.deid.surrogates import SurrogateGenerator

    generator = SurrogateGenerator(b"k" * 32)
    engine = AnonymizerEngine()
    engine.add_anonymizer(SurrogateOperator)
    text = "Zorbla Quintavius called 555-201-3344 on 03/04/2019."
    results = [RecognizerResult("PERSON", 0, 17, 0.9), RecognizerResult("PHONE_NUMBER", 25, 37, 0.9),
               RecognizerResult("DATE_TIME", 41, 51, 0.9)]
    config = {"DEFAULT": OperatorConfig(SurrogateOperator.NAME, {"generator": generator, "scope": "patient:7"})}
    out = engine.anonymize(text, results, operators=config).text
    for original in ("Zorbla", "Quintavius", "555-201-3344", "03/04/2019"):
        assert original not in out
    # the same surrogates domainfm deid would write for this patient
    assert generator.surrogate("Zorbla Quintavius", "PERSON", "patient:7") in out
    assert generator.surrogate("03/04/2019", "DATE", "patient:7") in out
    # deterministic across engines and calls
    assert engine.anonymize(text, results, operators=config).text == out
    other = engine.anonymize(text, results, operators={
        "DEFAULT": OperatorConfig(SurrogateOperator.NAME, {"generator": generator, "scope": "patient:8"})}).text
    assert other != out  # another patient, other surrogates
    with pytest.raises(InvalidParamError, match="scope"):
        engine.anonymize(text, results, operators={
            "DEFAULT": OperatorConfig(SurrogateOperator.NAME, {"generator": generator, "scope": ""})})
