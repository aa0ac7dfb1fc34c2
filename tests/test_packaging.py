"""The package works outside the checkout: a built wheel carries the demo's task files and the
audit templates, and an install of it finds them without the source tree.

Slow tier: builds a wheel. ``.ci/run`` goes further and runs ``domainfm demo`` and an audit from a
clean non-editable install.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

SHIPPED = ("domainfm/tasks/demo-clinical.yaml", "domainfm/tasks/demo-legal.yaml",
           "domainfm/tasks/demo-clinical-classify.yaml", "domainfm/tasks/pretrain-demo.yaml",
           "domainfm/audit/templates/audit_report.html.j2", "domainfm/audit/templates/model_card.md.j2",
           "domainfm/audit/templates/card.md.j2", "domainfm/audit/cards/demo-cards.yaml",
           "domainfm/audit/cards/schemas/chai-applied-model-card-v0.2.xsd",
           "domainfm/audit/cards/schemas/xmldsig-core-stub.xsd", "domainfm/audit/cards/schemas/CHAI-LICENSE.txt")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (found,) = out.glob("domainfm-*.whl")
    return found


def test_wheel_carries_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in SHIPPED if name not in names]
    assert not missing, missing
    assert not any(name.startswith(("tests/", "corpora/", "reports/")) for name in names)


def test_installed_wheel_runs_without_the_checkout(wheel, tmp_path):
    """A fresh venv with only the wheel installed (its dependencies borrowed from this venv through
    a path entry, which does not activate the editable install of the checkout)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    if install.returncode != 0 and "no such option: --python" in install.stderr:
        pytest.skip("pip too old for --python")
    assert install.returncode == 0, install.stderr[-3000:]
    code = (
        "import domainfm, pathlib, sys\n"
        f"assert not pathlib.Path(domainfm.__file__).resolve().is_relative_to({str(ROOT)!r}), domainfm.__file__\n"
        "from domainfm.demo import demo_pipeline\n"
        "assert list(demo_pipeline('clinical'))[:2] == ['run_dir', 'seed'], demo_pipeline('clinical')\n"
        "from domainfm.finetune import demo_config\n"
        "assert demo_config('notes.jsonl').data.train == 'notes.jsonl'\n"
        "from domainfm.pretrain import demo_config as dapt\n"
        "assert dapt(['a.jsonl']).train.max_steps == 40\n"
        "from domainfm.audit.report import TEMPLATE_DIR\n"
        "assert (TEMPLATE_DIR / 'audit_report.html.j2').is_file()\n"
        "print('ok', domainfm.__file__)\n"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")
