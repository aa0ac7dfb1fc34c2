"""``domainfm predict``: a JSONL file of documents in, their predictions out, like every stage.

A record that cannot be predicted (broken JSON, a duplicate id, no text) goes to
``<out>.rejects.jsonl`` with the reason instead of stopping the run, the counts reconcile
(``read = written + rejected``) and a manifest beside the output names the model and the input.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from domainfm.corpus.io import (Counts, CountingRejects, JsonlWriter, OutputLock, Rejected, RejectWriter,
                                check_output_path, read_located_documents, rejects_path_for)
from domainfm.errors import RecordError
from domainfm.manifest import write_manifest
from domainfm.stages import StageResult


def predict_file(model_dir: str | os.PathLike, src: str | os.PathLike, out: str | os.PathLike, *,
                 batch_size: int = 64, ner_decoding: str | None = None) -> StageResult:
    """Predict every document of ``src`` with the model in ``model_dir`` into ``out``.

    Raises:
        ConfigError: the model cannot be loaded, or ``out`` would overwrite an input.
    """
    from domainfm.finetune.data import document_text
    from domainfm.inference.predict import load_task_model, predict

    model_dir, src, out = Path(model_dir), Path(src), Path(out)
    check_output_path(out, inputs=[src, model_dir])
    reject_file = rejects_path_for(out)
    counts, first = Counts(), []
    with OutputLock(out):
        task_model = load_task_model(model_dir, ner_decoding=ner_decoding)
        with JsonlWriter(out) as writer, RejectWriter(reject_file) as reject_writer:
            unread = CountingRejects(reject_writer, counts, first)  # lines that never became documents
            read = CountingRejects(reject_writer, counts, first, count_read=False)
            docs = []
            for location, doc in read_located_documents(src, rejects=unread):
                counts.read += 1
                try:  # one empty note must not stop the other predictions (the document model allows it)
                    document_text(doc, task_model.text_field)
                except RecordError as err:
                    read.write(Rejected(err.reason, location=location, record_id=doc.id,
                                        raw=json.dumps(doc.to_dict(), ensure_ascii=False)))
                    continue
                docs.append(doc)
            for record in predict(task_model, docs, batch_size=batch_size) if docs else []:
                writer.write_obj(record)
                counts.written += 1
        manifest = write_manifest(out, stage="predict", config={"model": str(model_dir), "batch_size": batch_size,
                                                                "ner_decoding": ner_decoding},
                                  inputs=[src, model_dir], outputs=[out] + ([reject_file] if counts.rejected else []),
                                  counts=counts.to_dict())
    return StageResult([out], counts.to_dict(), manifest=manifest, rejects=reject_file if counts.rejected else None,
                       first_rejects=first)
