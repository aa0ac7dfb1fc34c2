"""Drive a running Label Studio through label-studio-sdk (run with Label Studio's own Python:
the SDK's pins live in that environment). Prints one JSON object with what it observed.

    python ls_client.py LS_URL TOKEN BACKEND_URL TASKS.json
"""

import json
import sys
import time

from label_studio_sdk import LabelStudio

url, token, backend_url, tasks_file = sys.argv[1:5]
tasks = json.load(open(tasks_file, encoding="utf-8"))
config = open(tasks_file + ".config.xml", encoding="utf-8").read()
ls = LabelStudio(base_url=url, api_key=token)
project = ls.projects.create(title="domainfm-test", label_config=config)
ls.projects.import_tasks(id=project.id, request=[{"data": t["data"]} for t in tasks])
ml = ls.ml.create(url=backend_url, project=project.id, title="domainfm", is_interactive=False)
listed = list(ls.tasks.list(project=project.id))
ls.actions.create(id="retrieve_tasks_predictions", project=project.id)
predictions = []
for task in listed:
    predictions.extend(p.dict() if hasattr(p, "dict") else dict(p) for p in ls.predictions.list(task=task.id))
# the annotator marks the spans of the first task, as the tests' data says, then corrects it to its
# first span only (ANNOTATION_UPDATED); on the second task one annotation is deleted
# (ANNOTATIONS_DELETED) and one skipped (was_cancelled); then "Start training" (START_TRAINING)
first = tasks[0]
region = first["annotations"][0]["result"]
ann = ls.annotations.create(id=listed[0].id, result=region, was_cancelled=False)
ls.annotations.update(id=ann.id, result=region[:1])
removed = ls.annotations.create(id=listed[1].id, result=[], was_cancelled=False)
ls.annotations.delete(id=removed.id)
skipped = ls.annotations.create(id=listed[1].id, result=[], was_cancelled=True)
versions = ls.ml.list_model_versions(id=ml.id)
ls.ml.train(id=ml.id)
time.sleep(2)  # webhooks are sent after each change is saved
out = {"project": project.id, "ml_backend": ml.id, "tasks": len(listed),
       "predictions": [{"task": p.get("task"), "model_version": p.get("model_version"), "score": p.get("score"),
                        "result": p.get("result")} for p in predictions],
       "annotation": ann.id, "deleted": removed.id, "skipped": skipped.id,
       "versions": versions.dict() if hasattr(versions, "dict") else dict(versions)}
print(json.dumps(out, default=str))
