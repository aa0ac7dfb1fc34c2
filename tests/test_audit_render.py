"""The audit report in a real browser: headless Chromium (Debian ``chromium``) driven by
playwright opens ``index.html`` offline, with no console errors, every main section visible,
document text with non-ASCII characters and a ``<script>`` shown as text (not run), and a
screenshot saved. Skips when chromium or playwright is not installed (``.ci/run`` installs
chromium with apt when it can)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

SECTIONS = ("summary", "data", "performance", "fairness", "calibration", "explanations", "robustness", "privacy")


def _chromium() -> str | None:
    for candidate in (os.environ.get("DOMAINFM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no browser download needed)")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium executable (Debian: apt-get install -y chromium)")
    return sync_playwright, exe


@pytest.fixture(scope="module")
def tiny_task_model(tiny_tokenizer, tiny_bert_config):
    """A 2-layer BERT classifier with a fresh head, loaded as a domainfm TaskModel."""
    import torch
    from transformers import BertForSequenceClassification

    from domainfm.finetune.config import LongDocumentsSection
    from domainfm.finetune.data import LabelMap
    from domainfm.inference.predict import TaskModel

    labels = ["cardiology", "neurology", "pulmonology"]
    cfg = tiny_bert_config.__class__(**{**tiny_bert_config.to_dict(), "num_labels": len(labels),
                                        "id2label": dict(enumerate(labels)),
                                        "label2id": {l: i for i, l in enumerate(labels)}})
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg).eval()
    return TaskModel(model, tiny_tokenizer, "classification", LabelMap("classification", labels), 64,
                     LongDocumentsSection(strategy="chunk", overlap=8, profile="clinical"))


def _documents():
    from domainfm.corpus.document import Document

    rng = random.Random(4)
    words = ["chest pain", "seizure", "cough", "fever", "palpitations", "headache"]
    docs = []
    for i in range(24):
        sex = rng.choice(["F", "M"])
        pron = "She" if sex == "F" else "He"
        # every document carries markup and non-ASCII text, so whichever ones are explained show it
        text = (f"{pron} reports {rng.choice(words)} and {rng.choice(words)}. <script>alert('x')</script> "
                f"Café au lait spots; naïve to β-blockers. {pron} is a Black patient.")
        meta = {"sex": sex, "age": rng.choice([30, 55, 72])} if i % 6 else {}
        docs.append(Document(id=f"r{i}", text=text, meta=meta, label=rng.choice(["cardiology", "neurology", "pulmonology"])))
    docs[1] = Document(id="inject", meta={"sex": "<img src=x onerror=alert(1)>", "age": 63}, label="neurology",
                       text="He reports a seizure.</div><script>document.title='pwned'</script> Ünïcode ok.")
    return docs


def test_report_renders_in_headless_chromium(tiny_task_model, tmp_path):
    sync_playwright, exe = _browser()
    from domainfm.audit import AuditConfig, audit

    cfg = AuditConfig(group_by=["meta.sex", "meta.age_band"], explain=2, max_evals=20, n_bootstrap=30,
                      min_group_size=5, counterfactuals=["gender", "race"],
                      data_note="sex and age are made up for this test (provenance: test fixture)")
    # written by 'domainfm deid' (its manifest hashes the file), so the examples are quoted as they
    # are: this test is about rendering any text safely, not about masking what is not de-identified
    from domainfm.corpus.io import write_documents
    from domainfm.manifest import write_manifest

    docs = _documents()
    data = tmp_path / "deid.jsonl"
    write_documents(data, docs)
    write_manifest(data, stage="deid", config={}, outputs=[data])
    result = audit(tiny_task_model, docs, tmp_path / "report", cfg, data_files=[data])
    assert len(result.report["explanations"]["examples"]) == 2

    errors: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(result.html.resolve().as_uri(), wait_until="load")
            for section in SECTIONS:
                loc = page.locator(f"section#{section}").first
                assert loc.is_visible(), f"section {section} is not visible"
                assert loc.locator("h2").first.inner_text().strip(), f"section {section} has no heading"
            # every embedded plot decoded (a broken data URI has naturalWidth 0)
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            assert widths and min(widths) > 0
            assert page.eval_on_selector_all("script", "s => s.length") == 0
            assert page.title() == "domainfm audit report"
            text = page.locator("section#explanations").inner_text()
            assert "<script>alert('x')</script>" in text and "Café au lait" in text and "β-blockers" in text
            assert page.locator("section#explanations div.doc").count() == 2  # the closing </div> stayed text
            data_text = page.locator("section#data").inner_text()
            assert "<img src=x onerror=alert(1)>" in data_text and "provenance: test fixture" in data_text
            shot = tmp_path / "audit-report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not dialogs, dialogs
    assert shot.stat().st_size > 10_000
