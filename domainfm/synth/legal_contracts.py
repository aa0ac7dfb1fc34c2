"""Synthetic contracts: preamble, recitals, numbered articles and clauses, signatures, schedules.

Each article is a ``CLAUSE`` span (``number`` "7") and each of its numbered sub-clauses a nested
``CLAUSE`` span ("7.2", "7(b)"); entity spans nest inside them. Numbering styles vary across
documents (ARTICLE I / Section 1. / 1. / § 1) as they do in real agreements.
"""

from __future__ import annotations

import string
from datetime import date, timedelta

from domainfm.corpus.document import Document
from domainfm.synth.builder import TextBuilder
from domainfm.synth.legal import GENERATOR_VERSION, LegalFakes, Party, ent

TITLES = {
    "nda": ("MUTUAL NON-DISCLOSURE AGREEMENT", "CONFIDENTIALITY AGREEMENT", "NON-DISCLOSURE AGREEMENT"),
    "services_agreement": ("MASTER SERVICES AGREEMENT", "PROFESSIONAL SERVICES AGREEMENT", "CONSULTING AGREEMENT"),
    "lease": ("COMMERCIAL LEASE AGREEMENT", "OFFICE LEASE", "RESIDENTIAL LEASE AGREEMENT"),
    "employment_agreement": ("EMPLOYMENT AGREEMENT", "EXECUTIVE EMPLOYMENT AGREEMENT"),
    "license_agreement": ("SOFTWARE LICENSE AGREEMENT", "TRADEMARK LICENSE AGREEMENT", "PATENT LICENSE AGREEMENT"),
    "supply_agreement": ("SUPPLY AGREEMENT", "MASTER SUPPLY AGREEMENT", "PURCHASE AND SUPPLY AGREEMENT"),
}
ROLES = {
    "nda": ("Disclosing Party", "Receiving Party"), "services_agreement": ("Client", "Provider"),
    "lease": ("Landlord", "Tenant"), "employment_agreement": ("Company", "Employee"),
    "license_agreement": ("Licensor", "Licensee"), "supply_agreement": ("Buyer", "Supplier"),
}
# Clause types per contract type: (always present, sometimes present).
CLAUSES = {
    "nda": (("definitions", "confidentiality", "term", "governing_law"),
            ("termination", "notices", "assignment", "dispute_resolution", "non_compete")),
    "services_agreement": (("definitions", "scope", "payment", "term", "termination", "governing_law"),
                           ("confidentiality", "limitation_of_liability", "indemnification", "notices",
                            "force_majeure", "assignment", "dispute_resolution")),
    "lease": (("scope", "payment", "term", "security_deposit", "governing_law"),
              ("termination", "indemnification", "notices", "assignment", "force_majeure")),
    "employment_agreement": (("scope", "payment", "term", "confidentiality", "termination", "governing_law"),
                             ("non_compete", "notices", "dispute_resolution", "assignment")),
    "license_agreement": (("definitions", "license_grant", "payment", "term", "governing_law"),
                          ("confidentiality", "limitation_of_liability", "indemnification", "termination",
                           "assignment", "warranty")),
    "supply_agreement": (("definitions", "scope", "payment", "warranty", "termination", "governing_law"),
                         ("limitation_of_liability", "force_majeure", "notices", "dispute_resolution",
                          "indemnification", "term")),
}
HEADINGS = {
    "definitions": "Definitions", "scope": "Scope of Engagement", "license_grant": "Grant of License",
    "payment": "Fees and Payment", "term": "Term", "confidentiality": "Confidentiality",
    "termination": "Termination", "limitation_of_liability": "Limitation of Liability",
    "indemnification": "Indemnification", "governing_law": "Governing Law", "non_compete": "Non-Competition",
    "assignment": "Assignment", "notices": "Notices", "dispute_resolution": "Dispute Resolution",
    "force_majeure": "Force Majeure", "warranty": "Warranties", "security_deposit": "Security Deposit",
}
# Sub-clause templates; {A}/{B} are the parties' defined roles, other fields become entities.
TEXTS = {
    "definitions": (
        '"Confidential Information" means all non-public information disclosed by {A} to {B}, whether oral, written or electronic, including trade secrets, know-how, customer lists and pricing.',
        '"Affiliate" means any entity that directly or indirectly controls, is controlled by, or is under common control with a party, where "control" means ownership of more than fifty percent (50%) of the voting securities.',
        '"Effective Date" means {date}, and "Business Day" means any day other than a Saturday, Sunday or public holiday in {city}.',
        '"Products" means the goods listed in Schedule A, as amended from time to time by written agreement of the parties.',
    ),
    "scope": (
        "{B} shall perform the services described in each statement of work (the \"Services\") in a professional and workmanlike manner and in accordance with industry standards.",
        "The premises located at {address} (the \"Premises\") are leased for general office use only and for no other purpose without the prior written consent of {A}.",
        "{B} shall serve as {job} and shall report to the {title} of {A}, devoting full business time and attention to the business of {A}.",
        "{B} shall supply, and {A} shall purchase, the Products in the quantities set out in purchase orders issued under this Agreement, with a forecast minimum of {qty} units per calendar quarter.",
    ),
    "license_grant": (
        "Subject to the terms of this Agreement, {A} grants to {B} a non-exclusive, non-transferable license to use the software known as {product} within the territory of {country}.",
        "{B} shall not sublicense, reverse engineer, decompile or disassemble {product}, except to the extent such restriction is prohibited by applicable law.",
    ),
    "payment": (
        "{A} shall pay {B} a fee of {amount} per month, payable within thirty (30) days of receipt of a correct invoice.",
        "All payments shall be made by wire transfer to account number {acct}, routing number {routing}, or such other account as {B} may designate in writing.",
        "Late payments shall bear interest at the rate of {pct} per month or the maximum rate permitted by law, whichever is lower.",
        "The base salary shall be {amount} per annum, payable in accordance with the regular payroll practices of the Company, and reviewed annually on or about {date}.",
        "Rent of {amount} shall be due on the first day of each month commencing on {date}.",
        "Royalties equal to {pct} of Net Sales shall be paid quarterly, together with a statement of Net Sales, no later than {date} for the first quarter.",
    ),
    "term": (
        "This Agreement commences on the Effective Date and continues for a period of {years}, unless terminated earlier in accordance with its terms.",
        "The term shall automatically renew for successive periods of {months} unless either party gives written notice of non-renewal at least sixty (60) days before expiry.",
        "The lease term begins on {date} and ends on {date2}.",
    ),
    "confidentiality": (
        "{B} shall hold the Confidential Information in strict confidence and shall not disclose it to any third party without the prior written consent of {A}.",
        "The obligations in this Article survive for {years} after termination or expiry of this Agreement.",
        "The foregoing obligations do not apply to information that (i) is or becomes publicly available through no fault of {B}; (ii) was known to {B} before disclosure; or (iii) is independently developed without use of the Confidential Information.",
        "Upon request, {B} shall promptly return or destroy all Confidential Information and certify destruction in writing.",
    ),
    "termination": (
        "Either party may terminate this Agreement for convenience on {days} prior written notice to the other party.",
        "Either party may terminate this Agreement immediately if the other party (a) materially breaches this Agreement and fails to cure within thirty (30) days of notice, or (b) becomes insolvent or makes an assignment for the benefit of creditors.",
        "Termination shall not affect any rights or liabilities accrued before the date of termination.",
    ),
    "limitation_of_liability": (
        "IN NO EVENT SHALL EITHER PARTY BE LIABLE FOR ANY INDIRECT, INCIDENTAL, SPECIAL OR CONSEQUENTIAL DAMAGES, INCLUDING LOSS OF PROFITS, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGES.",
        "Each party's aggregate liability under this Agreement shall not exceed {amount} or the fees paid in the twelve (12) months preceding the claim, whichever is greater.",
    ),
    "indemnification": (
        "{B} shall indemnify, defend and hold harmless {A} and its officers, directors and employees from any third-party claims arising out of {B}'s negligence or wilful misconduct.",
        "The indemnified party shall give prompt written notice of any claim and allow the indemnifying party to control its defence and settlement.",
    ),
    "governing_law": (
        "This Agreement shall be governed by and construed in accordance with the laws of the State of {law}, without regard to its conflict of laws principles.",
        "The parties submit to the exclusive jurisdiction of the state and federal courts located in {city}, {law}.",
    ),
    "non_compete": (
        "During the term and for {months} thereafter, {B} shall not engage in any business that competes with {A} within a radius of {miles} of any office of {A}.",
        "{B} shall not solicit any employee or customer of {A} for a period of {months} following termination.",
    ),
    "assignment": (
        "Neither party may assign this Agreement without the prior written consent of the other party, except to an Affiliate or a successor to substantially all of its business.",
        "Any purported assignment in violation of this Article shall be null and void.",
    ),
    "notices": (
        "All notices shall be in writing and delivered to {A} at {address_a}, Attention: {person_a}, email: {email_a}.",
        "Notices to {B} shall be delivered to {address_b}, email: {email_b}, or to such other address as {B} may designate by notice.",
    ),
    "dispute_resolution": (
        "Any dispute arising out of this Agreement shall be finally resolved by arbitration administered by the {arb} in {city} under its rules then in effect.",
        "Before commencing arbitration the parties shall attempt in good faith to resolve the dispute through negotiation between senior executives for a period of {days}.",
    ),
    "force_majeure": (
        "Neither party shall be liable for delay or failure to perform caused by events beyond its reasonable control, including acts of God, epidemic, war, strikes or governmental action.",
        "If a force majeure event continues for more than {days}, either party may terminate this Agreement on written notice.",
    ),
    "warranty": (
        "{B} warrants that the Products shall conform to the specifications and be free from defects in material and workmanship for {months} from delivery.",
        "EXCEPT AS EXPRESSLY SET OUT IN THIS AGREEMENT, NO PARTY MAKES ANY WARRANTY, EXPRESS OR IMPLIED, INCLUDING ANY WARRANTY OF MERCHANTABILITY OR FITNESS FOR A PARTICULAR PURPOSE.",
    ),
    "security_deposit": (
        "Upon execution, {B} shall deposit {amount} with {A} as security for the performance of {B}'s obligations.",
        "The deposit, less any lawful deductions, shall be returned within {days} after the end of the term.",
    ),
}
# The scope clause that fits each contract type (index into TEXTS["scope"]).
SCOPE_TEXT = {"services_agreement": TEXTS["scope"][0], "lease": TEXTS["scope"][1],
              "employment_agreement": TEXTS["scope"][2], "supply_agreement": TEXTS["scope"][3],
              "nda": TEXTS["scope"][0], "license_agreement": TEXTS["scope"][0]}
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII", "XIV", "XV",
         "XVI", "XVII", "XVIII", "XIX", "XX")
ARBITRATORS = ("American Arbitration Association", "International Chamber of Commerce", "JAMS",
               "London Court of International Arbitration")
PRODUCTS = ("NimbusLedger", "ClearPath Analytics", "Vantage ERP", "OrbitSync", "Helix Imaging Suite", "TruVault")
WORD_NUMBERS = ("two (2)", "three (3)", "five (5)", "one (1)", "four (4)")


class ContractWriter:
    """Renders one contract; see :func:`write_contract`."""

    def __init__(self, fk: LegalFakes, kind: str, long: bool):
        self.fk, self.kind, self.long = fk, kind, long
        self.rng = fk.rng
        self.b = TextBuilder()
        self.year = self.rng.randint(2008, 2024)
        self.effective = fk.date_between(date(self.year, 1, 1), date(self.year, 12, 28))
        self.law = fk.pick(("New York", "Delaware", "California", "Texas", "Illinois", "Massachusetts",
                            "Washington", "Florida"))
        individual_b = kind in ("employment_agreement",) or (kind == "lease" and fk.chance(0.5))
        self.a = fk.party(True)
        self.b_party = fk.party(not individual_b)
        self.roles = ROLES[kind]
        self.style = self.rng.randrange(4)

    def date_ent(self, d: date | None = None) -> object:
        d = d or self.fk.date_between(self.effective, self.effective + timedelta(days=400))
        return ent(self.fk.full_date(d, self.rng.choice((0, 1, 3, 6))), "DATETIME", "QUASI")

    def address(self, p: Party, identifier_type: str = "DIRECT") -> list:
        return [ent(p.street, "LOC", identifier_type, "party"), ", ", ent(p.city, "LOC", identifier_type, "party"),
                ", ", ent(p.region, "LOC", "QUASI", "party"), " ", ent(p.postcode, "LOC", identifier_type, "party")]

    def slot(self, name: str):
        fk, r = self.fk, self.rng
        a, bp = self.a, self.b_party
        makers = {
            "A": lambda: f"the {self.roles[0]}", "B": lambda: f"the {self.roles[1]}",
            "date": self.date_ent, "date2": lambda: self.date_ent(self.effective + timedelta(days=365 * r.randint(1, 5))),
            "amount": lambda: ent(fk.money(50, 9000), "QUANTITY", "QUASI"),
            "acct": lambda: ent(fk.digits(r.randint(9, 12)), "CODE", "DIRECT"),
            "routing": lambda: ent(fk.digits(9), "CODE", "DIRECT"),
            "pct": lambda: ent(fk.pick(("1.5%", "2%", "8%", "12.5%", "one percent (1%)")), "QUANTITY", "QUASI"),
            "years": lambda: ent(f"{fk.pick(WORD_NUMBERS)} years", "DATETIME", "QUASI"),
            "months": lambda: ent(fk.pick(("twelve (12) months", "six (6) months", "eighteen (18) months",
                                           "twenty-four (24) months")), "DATETIME", "QUASI"),
            "days": lambda: ent(fk.pick(("thirty (30) days", "sixty (60) days", "ninety (90) days", "fifteen (15) days")),
                                "DATETIME", "QUASI"),
            "miles": lambda: ent(fk.pick(("fifty (50) miles", "25 miles", "100 kilometres")), "QUANTITY", "QUASI"),
            "qty": lambda: ent(f"{r.randint(5, 500) * 100:,}", "QUANTITY", "QUASI"),
            "law": lambda: ent(self.law, "LOC", "NO_MASK"),
            "city": lambda: ent(fk.us.city(), "LOC", "QUASI"),
            "country": lambda: ent(fk.pick(("the United States", "Canada", "the European Union", "Mexico")), "LOC", "QUASI"),
            "arb": lambda: ent(fk.pick(ARBITRATORS), "ORG", "NO_MASK"),
            "product": lambda: ent(fk.pick(PRODUCTS), "MISC", "QUASI"),
            "job": lambda: ent(fk.us.job().split(",")[0], "DEM", "QUASI"),
            "title": lambda: ent(a.title, "DEM", "QUASI", "signatory"),
            "address": lambda: self.address(a if self.kind != "lease" else Party(**{**vars(a), "street": fk.us.street_address()})),
            "address_a": lambda: self.address(a), "address_b": lambda: self.address(bp),
            "person_a": lambda: ent(a.signatory, "PERSON", "DIRECT", "signatory"),
            "email_a": lambda: ent(a.email, "CODE", "DIRECT"), "email_b": lambda: ent(bp.email, "CODE", "DIRECT"),
        }
        return makers[name]()

    def fill(self, template: str) -> None:
        # Ordered, not a set: slot values draw from the seeded stream in a fixed order.
        names = dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(template) if f)
        values = {n: self.slot(n) for n in names}
        for role in ("A", "B"):
            if template.startswith("{" + role + "}"):
                # A sentence opens with the defined term, which is then capitalised.
                template = template.replace("{" + role + "}", "The " + values[role][4:], 1)
        self.b.fmt(template, **values)

    def party_intro(self, p: Party, role: str) -> None:
        b = self.b
        if p.is_company:
            b.fmt("{name}, a {law} {form} (registration {reg}) with its principal office at {addr} (the \"{role}\")",
                  name=ent(p.name, "ORG", "DIRECT", "party"), law=ent(self.fk.pick((self.law, p.region)), "LOC", "QUASI"),
                  form=self.fk.pick(("corporation", "limited liability company", "company")),
                  reg=ent(p.reg_no, "CODE", "DIRECT"), addr=self.address(p), role=role)
        else:
            b.fmt("{name}, an individual residing at {addr} (the \"{role}\")", name=ent(p.name, "PERSON", "DIRECT", "party"),
                  addr=self.address(p), role=role)

    def heading(self, n: int, clause_type: str) -> None:
        title = HEADINGS[clause_type]
        self.b.add(("ARTICLE {r} - {T}", "{n}. {t}", "§ {n} {t}", "Section {n}. {t}")[self.style].format(
            r=ROMAN[n - 1] if n <= len(ROMAN) else n, T=title.upper(), n=n, t=title) + "\n")

    def sub_label(self, n: int, k: int) -> tuple[str, str]:
        if self.style == 2:
            letter = string.ascii_lowercase[(k - 1) % 26]
            return f"({letter}) ", f"{n}({letter})"
        prefix = f"Section {n}.{k} " if self.style == 0 else f"{n}.{k} "
        return prefix, f"{n}.{k}"

    def write(self, doc_id: str) -> Document:
        fk, r, b = self.fk, self.rng, self.b
        always, sometimes = CLAUSES[self.kind]
        types = list(always) + [t for t in sometimes if r.random() < 0.6]
        head = [t for t in ("definitions", "scope", "license_grant") if t in types]
        tail = [t for t in types if t not in head]
        r.shuffle(tail)
        types = head + sorted(tail, key=lambda t: t == "governing_law")  # governing law near the end
        b.line(fk.pick(TITLES[self.kind]))
        b.add("\n")
        b.fmt("This {title} (the \"Agreement\") is entered into as of {d} (the \"Effective Date\") by and between ",
              title=self.kind.replace("_", " ").replace("nda", "Agreement").title() if r.random() < 0.5 else "Agreement",
              d=self.date_ent(self.effective))
        self.party_intro(self.a, self.roles[0])
        b.add(" and ")
        self.party_intro(self.b_party, self.roles[1])
        b.add(".\n\nRECITALS\n\n")
        for recital in r.sample(RECITALS[self.kind], min(len(RECITALS[self.kind]), r.randint(2, 3))):
            b.add("WHEREAS, ")
            self.fill(recital)
            b.add(";\n\n")
        b.add("NOW, THEREFORE, in consideration of the mutual covenants set forth herein, the parties agree as follows:\n\n")
        for n, clause_type in enumerate(types, 1):
            outer = b.begin("CLAUSE", clause_type=clause_type, number=str(n))
            self.heading(n, clause_type)
            texts = list(TEXTS[clause_type])
            if clause_type == "scope":
                texts = [SCOPE_TEXT[self.kind]]
            k_max = len(texts) if self.long else r.randint(min(2, len(texts)), len(texts))
            for k, text in enumerate(r.sample(texts, k_max), 1):
                prefix, number = self.sub_label(n, k)
                inner = b.begin("CLAUSE", clause_type=clause_type, number=number)
                b.add(prefix)
                self.fill(text)
                b.end(inner)
                b.add("\n")
            b.end(outer)
            b.add("\n")
        self.signatures()
        if self.long or r.random() < 0.3:
            self.schedule()
        meta = {"doc_type": "contract", "jurisdiction": f"US-{self.law}", "year": self.year,
                "numbering_style": ("article_roman", "decimal", "section_sign", "section")[self.style],
                "source": "synthetic", "generator_version": GENERATOR_VERSION}
        return b.document(doc_id, meta=meta, label=self.kind, labels=sorted(set(types)))

    def signatures(self) -> None:
        b = self.b
        b.add("IN WITNESS WHEREOF, the parties have executed this Agreement as of the Effective Date.\n\n")
        for p, role in ((self.a, self.roles[0]), (self.b_party, self.roles[1])):
            if p.is_company:
                b.line("{name}", name=ent(p.name.upper(), "ORG", "DIRECT", "party"))
                b.line("By: {s}", s=ent(p.signatory, "PERSON", "DIRECT", "signatory"))
                b.line("Title: {t}", t=ent(p.title, "DEM", "QUASI", "signatory"))
            else:
                b.line("{role}: {s}", role=role.upper(), s=ent(p.name, "PERSON", "DIRECT", "party"))
            b.line("Date: {d}", d=self.date_ent(self.effective))
            b.add("\n")
        if self.rng.random() < 0.4:
            first, last = self.fk.person()
            b.line("Witnessed by: {w}, Notary Public, Commission No. {c}", w=ent(f"{first} {last}", "PERSON", "DIRECT", "witness"),
                   c=ent(self.fk.letters(2) + self.fk.digits(6), "CODE", "DIRECT"))

    def schedule(self) -> None:
        b, fk, r = self.b, self.fk, self.rng
        b.add("\nSCHEDULE A - " + fk.pick(("PRICING", "PRODUCTS AND FEES", "RATE CARD")) + "\n\n")
        rows = r.randint(250, 320) if self.long else r.randint(5, 25)
        for i in range(1, rows + 1):
            b.line("{i}. Item {sku} - {desc}: {price} per unit, lead time {days}", i=i,
                   sku=ent(f"{fk.letters(3)}-{fk.digits(5)}", "CODE", "QUASI"),
                   desc=fk.pick(("steel fasteners", "network switches", "nitrile gloves", "consulting hours",
                                 "printed circuit boards", "packaging film", "support tier 2", "lab reagents")),
                   price=ent(fk.money(1, 900), "QUANTITY", "QUASI"), days=f"{r.randint(2, 60)} days")


RECITALS = {
    "nda": ("the parties wish to explore a potential business relationship concerning {product}",
            "in the course of such discussions, {A} may disclose Confidential Information to {B}",
            "the parties entered into a letter of intent dated {date}"),
    "services_agreement": ("{A} desires to engage {B} to provide certain consulting services",
                           "{B} has the expertise and personnel to perform such services",
                           "the parties previously worked together under a pilot arrangement ending {date}"),
    "lease": ("{A} is the owner of the Premises", "{B} wishes to lease the Premises from {A} on the terms herein",
              "the Premises were last inspected on {date}"),
    "employment_agreement": ("{A} desires to employ {B} and {B} desires to be so employed",
                             "{B} has represented that {B} is free to enter into this Agreement",
                             "{B} accepted an offer letter dated {date}"),
    "license_agreement": ("{A} owns all rights in the software known as {product}",
                          "{B} wishes to obtain a license to use {product} in its business",
                          "the parties executed an evaluation agreement on {date}"),
    "supply_agreement": ("{B} manufactures and sells the Products", "{A} wishes to purchase the Products for resale",
                         "the parties have agreed pricing as of {date}"),
}


def write_contract(fk: LegalFakes, doc_id: str, kind: str, *, long: bool = False) -> Document:
    """One synthetic contract of type ``kind`` (see :data:`~domainfm.synth.legal.CONTRACT_TYPES`)."""
    return ContractWriter(fk, kind, long).write(doc_id)
