"""Any Hugging Face token-classification model as the learned PHI model: save_pretrained folders
with IOB2, BIOES, BILOU and bare (IO) tags decode into the right spans, entity types map onto
canonical labels through shipped or user label maps, long texts are windowed, batches are
length-sorted without mixing up texts, and int8 quantisation keeps the spans.

The models are plain ``BertForTokenClassification`` built from a config (no ``domainfm`` file),
wired so that each chosen word gets a chosen tag: the encoder's residual branches are zeroed,
so a token's last hidden state is the layer norm of its own embedding (a one-hot per chosen
word), and the classifier reads the tag off that one-hot. What the tagger must return is known
exactly."""

from __future__ import annotations

import re

import pytest
import torch

from domainfm.deid import DeidConfig, PhiDetector
from domainfm.deid.learned import LEARNED, LearnedPhiTagger, model_kind
from domainfm.deid.tagger_labels import decode_tags, parse_label_map_option, parse_tag, resolve_label_map
from domainfm.errors import ConfigError, ModelResolutionError

# words of the tiny tokenizer's vocabulary standing in for a name, a ward, a date
SENTENCE = "the patient court agreement seen in state york on article convention ."


def _tagger_folder(folder, tokenizer, tags: list[str], word_tags: dict[str, str], max_positions: int = 128):
    """A tagger giving each word of ``word_tags`` its tag (read off the word's first sub-token)
    and every other word O."""
    token_tags = {}
    for word, tag in word_tags.items():
        first = tokenizer(word, add_special_tokens=False)["input_ids"][0]
        assert first not in token_tags, f"{word} shares its first sub-token with another test word"
        token_tags[first] = tag
    return _wired_tagger(folder, tokenizer, tags, token_tags, max_positions)


def _wired_tagger(folder, tokenizer, tags: list[str], token_tags: dict[int, str], max_positions: int = 128):
    """A saved ``BertForTokenClassification`` that tags each token id of ``token_tags`` with its
    tag and every other token O: tag i's tokens embed as a one-hot on dimension i + 1."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=max_positions,
                        id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)})
    torch.manual_seed(0)
    model = BertForTokenClassification(config)
    with torch.no_grad():
        emb = model.bert.embeddings
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.word_embeddings.weight.zero_()
        emb.word_embeddings.weight[:, 0] = 1.0
        for token, tag in token_tags.items():
            emb.word_embeddings.weight[token].zero_()
            emb.word_embeddings.weight[token, 1 + tags.index(tag)] = 1.0
        for layer in model.bert.encoder.layer:
            for dense in (layer.attention.output.dense, layer.output.dense):
                dense.weight.zero_()
                dense.bias.zero_()
        weight = torch.zeros(len(tags), 32)
        for d in range(32):
            weight[d - 1 if 1 <= d <= len(tags) else tags.index("O"), d] = 10.0
        model.classifier.weight.copy_(weight - weight.mean(dim=1, keepdim=True))
        model.classifier.bias.zero_()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _tags(scheme: str, types: list[str]) -> list[str]:
    if scheme == "io":
        return ["O", *types]
    return ["O", *[f"{p}-{t}" for t in types for p in scheme]]


def _span_text(text, detections):
    return [(text[d.start:d.end], d.label) for d in detections]


# scheme -> (tag prefixes, entity types, word -> tag, expected (text, canonical label) spans)
SCHEMES = {
    "iob2": ("BI", ["PATIENT", "DOCTOR", "DATE"],
             {"court": "B-PATIENT", "agreement": "I-PATIENT", "york": "B-DOCTOR", "convention": "B-DATE"},
             [("court agreement", "PATIENT"), ("york", "DOCTOR"), ("convention", "DATE")]),
    "bioes": ("BIES", ["PATIENT", "LOCATION-OTHER", "IDNUM"],
              {"court": "B-PATIENT", "agreement": "E-PATIENT", "state": "S-LOCATION-OTHER",
               "york": "S-LOCATION-OTHER", "article": "S-IDNUM"},
              [("court agreement", "PATIENT"), ("state", "LOCATION"), ("york", "LOCATION"), ("article", "ID")]),
    "bilou": ("BILU", ["PATIENT", "STAFF", "HOSP", "OTHERPHI"],
              {"court": "B-PATIENT", "agreement": "L-PATIENT", "state": "B-HOSP", "york": "L-HOSP",
               "article": "U-STAFF", "convention": "U-OTHERPHI"},
              [("court agreement", "PATIENT"), ("state york", "HOSPITAL"), ("article", "DOCTOR"),
               ("convention", "ID")]),
    "io": ("io", ["PATIENT", "HCW", "VENDOR"],
           {"court": "PATIENT", "agreement": "PATIENT", "article": "HCW", "convention": "VENDOR"},
           [("court agreement", "PATIENT"), ("article", "DOCTOR"), ("convention", "ORG")]),
}


@pytest.fixture(scope="module")
def scheme_models(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("hf-taggers")
    return {name: _tagger_folder(root / name, tiny_tokenizer, _tags(prefixes, types), words)
            for name, (prefixes, types, words, _) in SCHEMES.items()}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_each_tag_scheme_decodes_into_canonical_spans(scheme, scheme_models):
    tagger = LearnedPhiTagger(scheme_models[scheme], device="cpu")
    assert tagger.kind == "hf-folder"
    [found] = tagger.detect([SENTENCE])
    assert _span_text(SENTENCE, found) == SCHEMES[scheme][3]
    assert all(d.recognizer == LEARNED and d.score > 0.99 for d in found)


def test_long_texts_are_windowed_and_batches_keep_their_texts(tmp_path, tiny_tokenizer):
    prefixes, types, words, expected = SCHEMES["bilou"]
    folder = _tagger_folder(tmp_path / "short", tiny_tokenizer, _tags(prefixes, types), words, max_positions=24)
    tagger = LearnedPhiTagger(folder, device="cpu", batch_size=3)
    assert tagger._tagger.max_length == 22  # windows of 22 tokens; a note is several of them
    texts = [" ".join([SENTENCE] * n) for n in (5, 1, 3, 0, 2)]
    found = tagger.detect(texts)
    step = len(SENTENCE) + 1
    within = [(SENTENCE.index(t), SENTENCE.index(t) + len(t)) for t, _ in expected]
    for text, spans in zip(texts, found):
        n = text.count(SENTENCE)
        assert _span_text(text, spans) == expected * n
        assert [(d.start, d.end) for d in spans] == [(k * step + a, k * step + b) for k in range(n) for a, b in within]
    one_by_one = [LearnedPhiTagger(folder, device="cpu", batch_size=1).detect([t])[0] for t in texts]
    assert found == one_by_one


def test_int8_quantisation_keeps_the_spans(scheme_models):
    full = LearnedPhiTagger(scheme_models["iob2"], device="cpu")
    small = LearnedPhiTagger(scheme_models["iob2"], device="cpu", quantize="int8")
    assert small.quantized and not full.quantized
    assert "quantized" in type(small._tagger.model.classifier).__module__
    # one scale per output row: one per matrix let a matrix's largest weight coarsen every row
    assert small._tagger.model.classifier.weight().qscheme() == torch.per_channel_affine
    texts = [SENTENCE, "nothing here .", " ".join([SENTENCE] * 3)]
    a, b = full.detect(texts), small.detect(texts)
    assert [[(d.start, d.end, d.label) for d in x] for x in a] == [[(d.start, d.end, d.label) for d in x] for x in b]
    # one window a forward pass: int8 activations are quantised per pass, so a note's spans
    # would otherwise depend on the notes batched with it
    assert small.batch_size == 1 and full.batch_size == 32
    assert [small.detect([t])[0] for t in texts] == b
    with pytest.raises(ConfigError, match="ner_quantize must be one of"):
        LearnedPhiTagger(scheme_models["iob2"], quantize="int4")


def test_a_hf_model_beside_the_rules(scheme_models):
    # the shape checks would drop "court agreement" (lower-case English called a name): this test
    # is about the label maps, so every learned span is kept
    detector = PhiDetector(DeidConfig(profile="clinical", ner_model=str(scheme_models["bilou"]),
                                      ner_quantize="auto", ner_shape_checks=False))
    found = detector.detect_text(SENTENCE)
    learned = [(SENTENCE[d.start:d.end], d.label) for d in found if d.recognizer == LEARNED]
    assert ("court agreement", "PATIENT") in learned and ("convention", "ID") in learned


def test_label_maps(tmp_path, tiny_tokenizer):
    words = {"court": "B-PATIENT", "agreement": "I-PATIENT", "york": "B-DISEASE", "convention": "B-DATE"}
    folder = _tagger_folder(tmp_path / "odd", tiny_tokenizer, _tags("BI", ["PATIENT", "DISEASE", "DATE"]), words)
    with pytest.raises(ConfigError, match="entity type 'DISEASE' maps to no PHI label: add it to ner_label_map"):
        LearnedPhiTagger(folder)
    ignored = LearnedPhiTagger(folder, label_map={"DISEASE": None})
    assert _span_text(SENTENCE, ignored.detect([SENTENCE])[0]) == [("court agreement", "PATIENT"), ("convention", "DATE")]
    renamed = LearnedPhiTagger(folder, label_map={"DISEASE": "ID", "PATIENT": "NAME"})
    assert _span_text(SENTENCE, renamed.detect([SENTENCE])[0]) == [
        ("court agreement", "NAME"), ("york", "ID"), ("convention", "DATE")]
    with pytest.raises(ConfigError, match="names 'DISEAS'.*does not predict"):
        LearnedPhiTagger(folder, label_map={"DISEAS": None})
    with pytest.raises(ConfigError, match="'DISEASE' maps to 'ILLNESS', which is no PHI label"):
        DeidConfig(ner_label_map={"DISEASE": "ILLNESS"})
    with pytest.raises(ConfigError, match="unknown label map 'i2b3'.*did you mean 'i2b2'"):
        DeidConfig(ner_label_map="i2b3")


def test_shipped_maps_and_tag_parsing():
    assert resolve_label_map(["PATIENT", "DOCTOR", "LOCATION-OTHER", "MEDICALRECORD", "HEALTHPLAN", "PROFESSION"]) \
        == {"PATIENT": "PATIENT", "DOCTOR": "DOCTOR", "LOCATION-OTHER": "LOCATION", "MEDICALRECORD": "MRN",
            "HEALTHPLAN": "HEALTH_PLAN", "PROFESSION": "OCCUPATION"}
    assert resolve_label_map(["LOCATION_OTHER", "HCW", "PER", "HCPName"]) == {
        "LOCATION_OTHER": "LOCATION", "HCW": "DOCTOR", "PER": "NAME", "HCPName": "DOCTOR"}
    assert resolve_label_map(["MISC"], "conll") == {"MISC": None}
    assert resolve_label_map(["MISC"]) == {"MISC": "MISC"}
    assert parse_tag("O") == ("O", None) and parse_tag("B_DATE") == ("B", "DATE")
    assert parse_tag("PATIENT") == ("I", "PATIENT") and parse_tag("U-LOCATION-OTHER") == ("U", "LOCATION-OTHER")
    # lenient: an I- without a B- starts a span, a type change splits, E-/L- close
    assert decode_tags(["I-A", "I-A", "I-B", "O", "B-A", "E-A", "I-A"]) == [
        (0, 2, "A", 1.0), (2, 3, "B", 1.0), (4, 6, "A", 1.0), (6, 7, "A", 1.0)]
    assert parse_label_map_option("obi") == "obi"
    assert parse_label_map_option("STAFF=DOCTOR, MISC=null") == {"STAFF": "DOCTOR", "MISC": None}
    with pytest.raises(ConfigError, match="is not TYPE=LABEL"):
        parse_label_map_option("STAFF=DOCTOR,MISC")


def test_a_label_map_file_that_is_not_utf8_and_a_model_without_its_vocabulary_are_errors(tmp_path, scheme_models):
    import shutil

    (tmp_path / "map.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"--ner-label-map: cannot read .*map.yaml: not UTF-8 text"):
        parse_label_map_option(str(tmp_path / "map.yaml"))
    bare = tmp_path / "bare"
    shutil.copytree(scheme_models["io"], bare)
    for name in ("tokenizer.json", "vocab.txt"):
        (bare / name).unlink(missing_ok=True)
    with pytest.raises(ModelResolutionError, match="tokenizer has \\d+ entries for a model of \\d+"):
        LearnedPhiTagger(str(bare))


def test_model_sources(tmp_path, scheme_models, monkeypatch):
    assert model_kind(scheme_models["io"]) == "hf-folder"
    assert model_kind("some-org/deid-tagger") == "hub"  # checked when loaded, not when configured
    assert DeidConfig(ner_model="some-org/deid-tagger").ner_model == "some-org/deid-tagger"
    with pytest.raises(ModelResolutionError, match="cannot load the token-classification model 'some-org/deid-tagger'"):
        LearnedPhiTagger("some-org/deid-tagger", hub={"local_files_only": True})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no model"):
        DeidConfig(ner_model=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="does not exist"):
        DeidConfig(ner_model=str(tmp_path / "missing"))
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):  # a typo in a local path is not sent to the Hub
        model_kind("runs/deid-nerr")
    seq = tmp_path / "seq"
    seq.mkdir()
    (seq / "config.json").write_text('{"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}')
    with pytest.raises(ConfigError, match="not a token-classification model"):
        DeidConfig(ner_model=str(seq))


def test_cli_deid_with_a_hf_model_and_a_label_map(tmp_path, tiny_tokenizer, cli):
    from domainfm.corpus import Document, write_documents

    words = {"court": "B-PATIENT", "agreement": "I-PATIENT", "york": "B-DISEASE"}
    folder = _tagger_folder(tmp_path / "m", tiny_tokenizer, _tags("BI", ["PATIENT", "DISEASE"]), words)
    write_documents(tmp_path / "in.jsonl", [Document("n0", SENTENCE)])
    bad = cli("deid", tmp_path / "in.jsonl", "-o", tmp_path / "x.jsonl", "--ner-model", folder)
    assert bad.exit_code == 2 and "DISEASE" in bad.output and "ner_label_map" in bad.output
    ok = cli("deid", tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--operator", "tag", "--ner-model", folder,
             "--ner-label-map", "DISEASE=null", "--ner-quantize", "int8",
             "--no-ner-shape-checks")  # "court agreement" is lower-case English: the checks would drop it
    assert ok.exit_code == 0, ok.output
    text = (tmp_path / "out.jsonl").read_text()
    assert "court agreement" not in text and "[PATIENT]" in text and "york" in text
    assert not re.search(r"court|agreement", text)


def test_detection_workers_split_the_cores_between_their_torch_thread_pools(scheme_models, monkeypatch):
    import torch

    from domainfm.deid import runner

    before = torch.get_num_threads()
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    try:
        runner._init_worker(DeidConfig(ner_model=str(scheme_models["io"]), workers=4))
        assert torch.get_num_threads() == 2 and runner._WORKER_DETECTOR.learned is not None
        runner._init_worker(DeidConfig(ner_model=str(scheme_models["io"]), workers=16))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        runner._WORKER_DETECTOR = None


def test_words_cut_by_a_window_edge_are_tagged_whole(tmp_path):
    """A window edge can fall inside a word, each window then holding some of its sub-tokens.
    The span ended where the first window did ("agree" of "agreement"), so the rest of the word
    stayed in the output. Here every word is spelled in single-letter sub-tokens and tagged B-:
    each learned span must be one whole word, once, whatever the windows, batches, int8 or order."""
    from string import ascii_lowercase

    from conftest import TINY_TEXTS, wordpiece_tokenizer

    spelled = wordpiece_tokenizer(TINY_TEXTS, alphabet=ascii_lowercase, whole_words=False)
    tags = ["O", "B-PATIENT", "I-PATIENT"]
    token_tags = {i: "B-PATIENT" if token.isalpha() else "I-PATIENT" for token, i in spelled.get_vocab().items()
                  if token.lstrip("#").isalpha() and token not in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    folder = _wired_tagger(tmp_path / "spelled", spelled, tags, token_tags, max_positions=24)
    texts = [" ".join([SENTENCE] * 3), "", "zoë and naïve çava " * 6, "agreement", " ".join([SENTENCE] * 5)]
    full = LearnedPhiTagger(folder, device="cpu", batch_size=3)
    found = full.detect(texts)
    for text, spans in zip(texts, found):
        words = [(m.start(), m.end()) for m in re.finditer(r"[^\W\d_]+", text)]
        assert [(d.start, d.end) for d in spans] == words, [text[d.start:d.end] for d in spans]
    assert len(texts[0]) > 3 * 22  # several windows of 22 tokens
    backwards = full.detect(texts[::-1])[::-1]
    small = LearnedPhiTagger(folder, device="cpu", quantize="int8").detect(texts)
    assert backwards == found
    assert [[(d.start, d.end, d.label) for d in x] for x in small] == [[(d.start, d.end, d.label) for d in x]
                                                                        for x in found]


def test_a_folder_without_a_trained_tagging_head_is_refused(tmp_path, tiny_tokenizer):
    """A bare encoder saved under a config that names tags (no architectures) loaded with a
    randomly initialised head, silently (the load report is quiet), and tagged noise as PHI."""
    import json

    from transformers import BertConfig, BertModel

    tags = ["O", "B-PATIENT", "I-PATIENT"]
    config = BertConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64, id2label=dict(enumerate(tags)),
                        label2id={t: i for i, t in enumerate(tags)})
    BertModel(config).save_pretrained(tmp_path / "encoder")
    tiny_tokenizer.save_pretrained(tmp_path / "encoder")
    saved = json.loads((tmp_path / "encoder" / "config.json").read_text())
    saved.pop("architectures", None)
    (tmp_path / "encoder" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"is not a trained token-classification model: its weights have no "
                                          r"classifier\.bias, classifier\.weight \(the tagging head\)"):
        PhiDetector(DeidConfig(ner_model=str(tmp_path / "encoder")))


def test_an_id2label_that_skips_an_id_is_a_config_error(tmp_path, scheme_models):
    """An id2label of {0, 2} raised a bare KeyError: 1 when the tags were read."""
    import json
    import shutil

    gap = tmp_path / "gap"
    shutil.copytree(scheme_models["io"], gap)
    config = json.loads((gap / "config.json").read_text())
    config["id2label"] = {"0": "O", "2": "PATIENT"}
    config["label2id"] = {"O": 0, "PATIENT": 2}
    (gap / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"gap/config\.json: id2label must number the model's 2 tags 0 to 1, "
                                          r"got ids 0, 2"):
        DeidConfig(ner_model=str(gap))


def test_lower_case_tags_decode_like_upper_case_ones():
    """"b-per"/"i-per" were read as two bare types named "b-per" and "i-per": each word its own
    span, and no label map knew them."""
    assert parse_tag("b-per") == ("B", "per") and parse_tag("u_loc") == ("U", "loc") and parse_tag("o") == ("O", None)
    assert decode_tags(["b-per", "i-per", "o", "l-loc"]) == [(0, 2, "per", 1.0), (3, 4, "loc", 1.0)]
    assert resolve_label_map(["per", "loc"]) == {"per": "NAME", "loc": "LOCATION"}
