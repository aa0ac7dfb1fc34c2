"""Importers from the common clinical/legal formats into the domainfm document model."""

from domainfm.corpus.importers import (brat, conll, csv, datasets, jsonl, labelstudio, physionet,  # noqa: F401
                                      prodigy, tab, textdir)  # (register)
from domainfm.corpus.importers.base import IMPORTERS, Importer, get_importer, register

__all__ = ["IMPORTERS", "Importer", "get_importer", "register"]
