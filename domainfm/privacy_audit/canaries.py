"""Canaries: made-up, PHI-shaped secrets planted in the training stream to measure memorisation.

A canary is a sentence ``prefix + secret + suffix``; the secret follows a format (a 7-digit
record number, a US phone number, a name with a birth date). Its *exposure* (Carlini et al.,
"The Secret Sharer", 2019) is how far up the model ranks the secret among reference secrets of
the same format: ``log2(number of candidates) - log2(rank)``.

Canaries live in the training run's ``manifest.json`` (``canaries``) and nowhere else: not in
logs, progress output, reports or error messages.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable

from domainfm.errors import ConfigError

_FIRST = ("Avery", "Blake", "Carmen", "Dorian", "Elise", "Felix", "Greta", "Hollis", "Imogen", "Jasper",
          "Kendra", "Lionel", "Marisol", "Nolan", "Odette", "Porter", "Quinn", "Rosalind", "Silas", "Tamsin",
          "Ulric", "Vera", "Wendell", "Xenia", "Yara", "Zane", "Bettina", "Cyrus", "Delphine", "Emmett")
_LAST = ("Ashdown", "Brackley", "Calloway", "Dunmore", "Ellery", "Fairbanks", "Galloway", "Hartwell",
         "Ingram", "Jessop", "Kimball", "Lockridge", "Merriweather", "Northcott", "Oakley", "Pemberton",
         "Quimby", "Rutledge", "Stanhope", "Thackeray", "Underhill", "Vance", "Whitlock", "Yardley",
         "Ambrose", "Bellamy", "Corwin", "Draycott", "Everhart", "Fenwick")

# Several sentences per format, so canaries of one format do not share their context.
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "mrn": (("The medical record number on file is ", "."),
            ("Registration confirmed record number ", " for this admission."),
            ("Please attach labels with chart number ", " to every specimen."),
            ("The discharge summary was filed under record ", " today.")),
    "phone": (("Please call the patient's daughter at ", " after discharge."),
              ("The pharmacy can be reached at ", " for refills."),
              ("Her husband asked to be called at ", " with results."),
              ("The home health nurse left the number ", " for questions.")),
    "name_date": (("Patient ", " was seen in clinic today."),
                  ("Consent was signed by ", " before the procedure."),
                  ("Follow-up was arranged for ", " in two weeks."),
                  ("Imaging was reviewed with ", " and the family.")),
}


def _mrn(rng: random.Random) -> str:
    return str(rng.randint(1_000_000, 9_999_999))


def _phone(rng: random.Random) -> str:
    return f"({rng.randint(201, 989)}) {rng.randint(201, 989)}-{rng.randint(0, 9999):04d}"


def _name_date(rng: random.Random) -> str:
    return (f"{rng.choice(_FIRST)} {rng.choice(_LAST)}, born "
            f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(1930, 2005)}")


#: format -> secret generator
GENERATORS: dict[str, Callable[[random.Random], str]] = {"mrn": _mrn, "phone": _phone, "name_date": _name_date}


@dataclass(frozen=True)
class Canary:
    """One planted secret: ``text = prefix + secret + suffix``, inserted ``repeats`` times."""

    id: str
    format: str
    repeats: int
    prefix: str
    secret: str
    suffix: str

    @property
    def text(self) -> str:
        return self.prefix + self.secret + self.suffix

    @property
    def span(self) -> tuple[int, int]:
        """Character range of the secret in :attr:`text`."""
        return len(self.prefix), len(self.prefix) + len(self.secret)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Canary:
        try:
            canary = cls(**{k: data[k] for k in ("id", "format", "repeats", "prefix", "secret", "suffix")})
        except (KeyError, TypeError):
            raise ConfigError("a canary record in the manifest lacks one of id, format, repeats, prefix, "
                              "secret, suffix") from None
        if canary.format not in GENERATORS:
            raise ConfigError(f"canary {canary.id}: unknown format {canary.format!r}")
        return canary


def make_canaries(config, seed: int) -> list[Canary]:
    """The canaries a :class:`~domainfm.privacy_audit.config.CanaryConfig` asks for, seeded."""
    rng = random.Random(f"domainfm-canaries:{config.seed if config.seed is not None else seed}")
    canaries, used = [], set()
    for fmt in config.formats:
        k = 0
        for repeats in config.repeats:
            for _ in range(config.per_repeat):
                secret = GENERATORS[fmt](rng)
                while secret in used:
                    secret = GENERATORS[fmt](rng)
                used.add(secret)
                prefix, suffix = TEMPLATES[fmt][k % len(TEMPLATES[fmt])]
                canaries.append(Canary(f"{fmt}-{k}", fmt, repeats, prefix, secret, suffix))
                k += 1
    return canaries


def insertion_texts(canaries: list[Canary], seed: int) -> list[str]:
    """Every inserted copy (``repeats`` per canary), in a seeded random order."""
    texts = [c.text for c in canaries for _ in range(c.repeats)]
    random.Random(f"domainfm-canary-order:{seed}").shuffle(texts)
    return texts


def reference_secrets(canary: Canary, n: int, rng: random.Random, accept: Callable[[str], bool],
                      max_draws: int | None = None) -> list[str]:
    """Up to ``n`` distinct secrets of the canary's format, other than its own, that ``accept``
    (e.g. "has the same number of tokens")."""
    gen = GENERATORS[canary.format]
    out: list[str] = []
    seen = {canary.secret}
    draws = 0
    limit = max_draws or 50 * n
    while len(out) < n and draws < limit:
        draws += 1
        secret = gen(rng)
        if secret in seen:
            continue
        seen.add(secret)
        if accept(secret):
            out.append(secret)
    return out
