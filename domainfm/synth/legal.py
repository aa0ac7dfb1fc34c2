"""Synthetic contracts and court judgments with entity spans in the Text Anonymization Benchmark
scheme (PERSON, ORG, LOC, DATETIME, CODE, DEM, QUANTITY, MISC) and, for contracts, CLAUSE spans.

Every entity span carries ``identifier_type`` (DIRECT / QUASI / NO_MASK, as in TAB: who must be
masked) and ``role`` (party, judge, counsel, witness, signatory, court, other). All parties,
courts' case numbers and facts are invented.
"""

from __future__ import annotations

from dataclasses import dataclass

from domainfm.corpus.document import Document
from domainfm.synth.builder import Ent
from domainfm.synth.fakes import Fakes

GENERATOR_VERSION = "1.0"
ENTITY_LABELS = ("PERSON", "ORG", "LOC", "DATETIME", "CODE", "DEM", "QUANTITY", "MISC")
CONTRACT_TYPES = ("nda", "services_agreement", "lease", "employment_agreement", "license_agreement",
                  "supply_agreement")
JUDGMENT_AREAS = ("contract_dispute", "employment", "criminal", "privacy", "tax")

NATIONALITIES = ("American", "British", "Polish", "Turkish", "Indian", "Nigerian", "Brazilian", "German",
                 "Romanian", "Italian", "Mexican", "Irish", "Ukrainian", "French", "Pakistani")
COMPANY_SUFFIX = ("Inc.", "LLC", "Ltd.", "Corp.", "L.P.", "Holdings, Inc.", "GmbH", "plc")


def ent(text: str, label: str, identifier_type: str, role: str = "other") -> Ent:
    """A TAB-style entity piece for :class:`~domainfm.synth.builder.TextBuilder`."""
    return Ent(text, label, {"identifier_type": identifier_type, "role": role})


@dataclass
class Party:
    """A company or person appearing in a contract or a case."""

    name: str
    is_company: bool
    street: str
    city: str
    region: str
    postcode: str
    reg_no: str
    email: str
    signatory: str = ""
    title: str = ""


class LegalFakes(Fakes):
    """:class:`Fakes` plus legal-domain values (companies, parties, money)."""

    def company(self) -> str:
        base = self.us.last_name() if self.chance(0.4) else self.us.company().split(",")[0].split(" and ")[0]
        base = base.replace(" Inc", "").replace(" LLC", "").replace(" Ltd", "").replace(" PLC", "")
        return f"{base} {self.pick(COMPANY_SUFFIX)}"

    def party(self, is_company: bool = True) -> Party:
        first, last = self.person()
        sig_first, sig_last = self.person()
        name = self.company() if is_company else f"{first} {last}"
        domain = self.us.domain_name()
        return Party(
            name=name, is_company=is_company, street=self.us.street_address(), city=self.us.city(),
            region=self.us.state(), postcode=self.us.zipcode(),
            reg_no=self.pick(("", "No. ", "EIN ")) + self.digits(2) + "-" + self.digits(7),
            email=f"{self.pick(('legal', 'notices', 'contracts', sig_first.lower()))}@{domain}",
            signatory=f"{sig_first} {sig_last}" if is_company else name,
            title=self.pick(("Chief Executive Officer", "General Counsel", "President", "Managing Director",
                             "Chief Financial Officer", "VP, Operations")) if is_company else "",
        )

    def money(self, lo: int, hi: int) -> str:
        value = self.rng.randint(lo, hi) * self.pick((1, 10, 100))
        return self.pick((f"${value:,}", f"USD {value:,}", f"${value:,}.00", f"{value:,} US dollars"))


def generate_legal(n: int, seed: int) -> list[Document]:
    """Generate ``n`` synthetic legal documents: about 5/8 contracts, 3/8 court judgments.

    Args:
        n: number of documents.
        seed: the same seed gives identical documents.

    Returns:
        Validated documents; ``label`` is the contract type or the judgment's area of law,
        ``labels`` the clause types present (contracts) or the outcome tags (judgments).

    Example:
        >>> docs = generate_legal(4, seed=1)
        >>> sorted({d.meta["doc_type"] for d in docs})
        ['contract', 'judgment']
    """
    from domainfm.synth.legal_contracts import write_contract
    from domainfm.synth.legal_judgments import write_judgment

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    fk = LegalFakes(seed)
    n_contracts = round(n * 75 / 120)
    docs = []
    for i in range(n):
        long = fk.chance(0.05)
        if i < n_contracts:
            kind = CONTRACT_TYPES[i % len(CONTRACT_TYPES)]
            docs.append(write_contract(fk, f"legal-{seed}-c{i + 1:03d}", kind, long=long))
        else:
            area = JUDGMENT_AREAS[(i - n_contracts) % len(JUDGMENT_AREAS)]
            docs.append(write_judgment(fk, f"legal-{seed}-j{i - n_contracts + 1:03d}", area, long=long))
    order = list(range(len(docs)))
    fk.rng.shuffle(order)  # contracts and judgments interleaved, as in a mixed legal corpus
    return [docs[i] for i in order]
