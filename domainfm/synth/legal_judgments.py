"""Synthetic court judgments in four styles: European Court of Human Rights, US district court,
Indian High Court and England and Wales Court of Appeal.

Parties, witnesses, case numbers and addresses are DIRECT identifiers; dates, nationalities,
occupations, ages and amounts are QUASI identifiers; court names and public bodies are NO_MASK,
following the Text Anonymization Benchmark's guidelines.
"""

from __future__ import annotations

import string
from datetime import date, timedelta

from domainfm.corpus.document import Document
from domainfm.synth.builder import TextBuilder
from domainfm.synth.legal import GENERATOR_VERSION, NATIONALITIES, LegalFakes, ent

STYLES = ("echr", "us", "india", "uk")
COUNTRIES = ("Turkey", "Poland", "Romania", "Italy", "Ukraine", "the United Kingdom", "France", "Bulgaria")
OCCUPATIONS = ("shop assistant", "civil engineer", "journalist", "taxi driver", "accountant", "nurse",
               "software developer", "farmer", "teacher", "warehouse supervisor", "restaurant owner")

# Facts per area of law: sentences with entity fields; {P} and {D} are the parties' names.
FACTS = {
    "contract_dispute": (
        "On {date}, {P} and {D} concluded a written agreement for the delivery of industrial equipment for a price of {amount}.",
        "{P} alleged that the goods delivered on {date} were defective and refused to pay the outstanding invoice of {amount}.",
        "By letter of {date}, {D} gave notice of termination, citing repeated breach of the payment terms.",
        "The witness {W}, a {occ} employed by {D}, testified that the shipment left the warehouse at {addr} in good condition.",
        "{P} claimed damages of {amount} for lost profits and the cost of substitute performance.",
    ),
    "employment": (
        "{P}, a {nat} national born in {year_of_birth}, worked as a {occ} for {D} from {date} until dismissal on {date2}.",
        "{P} alleged that the dismissal was motivated by a complaint about unpaid overtime amounting to {amount}.",
        "The employer stated that the post had become redundant following a restructuring announced on {date}.",
        "The witness {W}, a former colleague, stated that {P} had been told at a meeting on {date} that older staff would be replaced.",
        "{P}, then aged {age}, claimed compensation for unfair dismissal and age discrimination.",
    ),
    "criminal": (
        "On the night of {date}, the police arrested {P} near {addr} on suspicion of robbery.",
        "{P}, a {nat} national and a {occ} by profession, denied the charges and stated that {P_short} had been at home.",
        "The prosecution relied on the testimony of {W}, who identified {P} at a line-up held on {date}.",
        "A sum of {amount} in cash was seized from the vehicle registered under number {plate}.",
        "The trial court convicted {P} and sentenced {P_short} to {term} of imprisonment on {date2}.",
    ),
    "privacy": (
        "On {date}, officers of {body} obtained {P}'s telephone records covering the number {phone} without a judicial warrant.",
        "{P}, a {occ} of {nat} nationality living at {addr}, learned of the surveillance from a newspaper article published on {date}.",
        "A daily newspaper published photographs of {P} and details of {P_short} medical treatment on {date2}.",
        "{P} lodged a complaint with {body}, which was dismissed on {date} as manifestly ill-founded.",
        "The witness {W}, a journalist, confirmed that the information had been supplied by an unnamed official.",
    ),
    "tax": (
        "By an assessment of {date}, {body} claimed additional income tax of {amount} from {P} for the tax years in question.",
        "{P}, a {occ}, had declared rental income from a property at {addr} but deducted maintenance costs of {amount}.",
        "The assessment was based on bank statements of account number {acct} obtained from a third-party bank.",
        "{P} objected on {date2}, arguing that the deductions were supported by invoices issued by {D}.",
        "Penalties of {amount} and interest were imposed for late filing.",
    ),
}
REASONS = {
    "contract_dispute": ("The court must determine whether the defects were material and whether notice was given within a reasonable time.",
                         "Under the agreement, risk passed on delivery, and the buyer bore the burden of proving the defect existed at that time."),
    "employment": ("The question is whether the reason for dismissal was genuine redundancy or a pretext for discrimination.",
                   "An employer must show that the selection criteria were objective and applied consistently."),
    "criminal": ("The identification evidence was obtained at a line-up conducted without the presence of counsel.",
                 "The standard of proof beyond reasonable doubt was not met in respect of the first count."),
    "privacy": ("The interference with the applicant's right to respect for private life was not in accordance with the law, since the domestic law did not indicate with sufficient clarity the scope of the authorities' discretion.",
                "Publication of medical data is a serious interference that requires a pressing social need."),
    "tax": ("The tax authorities enjoy a wide margin of appreciation in assessing the taxpayer's liability.",
            "The burden of proving deductible expenses lies on the taxpayer, who must keep adequate records."),
}


PROCEDURE = (
    "The {side} was represented by {C}, a lawyer practising in {city}.",
    "On {date} the case was communicated to the other party, which submitted written observations on {date2}.",
    "A hearing took place in public on {date}, at which the Court heard the submissions of both parties.",
    "The file was transferred to the present bench by an order dated {date}.",
    "The parties filed further documents and written submissions in reply, which have been taken into account.",
)
ARGUMENTS = (
    "The {side} submitted that the lower court had failed to consider material evidence, in particular the statement of {W}.",
    "The {side} argued that the claim was time-barred, the limitation period having expired on {date}.",
    "In reply, it was contended that the relevant facts only became known on {date2}, so that the claim was brought in time.",
    "Counsel for the {side} relied on the authorities collected in the written submissions and emphasised the absence of any contemporaneous record.",
    "The {side} maintained that any interference was proportionate and pursued a legitimate aim.",
    "It was further submitted that the amount of {amount} claimed was excessive and not causally linked to the alleged breach.",
)


class JudgmentWriter:
    """Renders one judgment; see :func:`write_judgment`."""

    def __init__(self, fk: LegalFakes, area: str, long: bool):
        self.fk, self.area, self.long = fk, area, long
        self.rng = fk.rng
        self.b = TextBuilder()
        self.style = STYLES[self.rng.randrange(len(STYLES))] if area != "privacy" else self.rng.choice(("echr", "echr", "us", "uk"))
        self.year = self.rng.randint(1998, 2023)
        self.decided = fk.date_between(date(self.year, 1, 10), date(self.year, 12, 20))
        first, last = fk.person()
        self.p_name, self.p_short = f"{first} {last}", ("her" if fk.chance(0.5) else "his")
        company_defendant = area in ("contract_dispute", "employment") or (area == "tax" and fk.chance(0.3))
        self.d_name = fk.company() if company_defendant else None
        self.witnesses = [" ".join(fk.person()) for _ in range(self.rng.randint(1, 3))]
        self.para = 0
        self.currency = {"echr": "EUR ", "us": "$", "india": "Rs. ", "uk": "£"}[self.style]
        self.outcomes: list[str] = []

    def when(self, back_days: int = 2000) -> object:
        d = self.decided - timedelta(days=self.rng.randint(30, back_days))
        return ent(self.fk.full_date(d, self.rng.choice((3, 6, 0, 1))), "DATETIME", "QUASI")

    def slot(self, name: str):
        fk, r = self.fk, self.rng
        makers = {
            "P": lambda: ent(self.p_name, "PERSON", "DIRECT", "party"),
            "P_short": lambda: self.p_short,
            "D": lambda: (ent(self.d_name, "ORG", "DIRECT", "party") if self.d_name else
                          ent(fk.company(), "ORG", "QUASI")),
            "W": lambda: ent(r.choice(self.witnesses), "PERSON", "DIRECT", "witness"),
            "date": self.when, "date2": lambda: self.when(400),
            "amount": lambda: ent(self.currency + f"{r.randint(2, 900) * 1000:,}", "QUANTITY", "QUASI"),
            "occ": lambda: ent(fk.pick(OCCUPATIONS), "DEM", "QUASI"),
            "nat": lambda: ent(fk.pick(NATIONALITIES), "DEM", "QUASI"),
            "age": lambda: ent(str(r.randint(24, 68)), "DEM", "QUASI"),
            "year_of_birth": lambda: ent(str(r.randint(1940, 1995)), "DATETIME", "QUASI"),
            "addr": lambda: [ent(fk.us.street_address(), "LOC", "DIRECT"), ", ", ent(fk.us.city(), "LOC", "QUASI")],
            "plate": lambda: ent(fk.us.license_plate(), "CODE", "DIRECT"),
            "phone": lambda: ent(fk.phone(), "CODE", "DIRECT"),
            "acct": lambda: ent(fk.digits(12), "CODE", "DIRECT"),
            "term": lambda: ent(fk.pick(("three years", "eighteen months", "seven years", "five years")), "DATETIME", "QUASI"),
            "C": lambda: ent(" ".join(fk.person()), "PERSON", "DIRECT", "counsel"),
            "city": lambda: ent(fk.us.city(), "LOC", "QUASI"),
            "body": lambda: ent(fk.pick(("the Internal Revenue Service", "the National Police", "the Revenue Department",
                                         "the Data Protection Authority", "the Ministry of the Interior")), "ORG", "NO_MASK"),
        }
        return makers[name]()

    def paragraph(self, template: str) -> None:
        self.para += 1
        # Ordered, not a set: slot values draw from the seeded stream in a fixed order.
        names = dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(template) if f)
        self.b.add(f"{self.para}. ")
        self.b.fmt(template, **{n: self.slot(n) for n in names})
        self.b.add("\n\n")

    def court(self) -> str:
        fk = self.fk
        return {
            "echr": f"EUROPEAN COURT OF HUMAN RIGHTS, {fk.pick(('FIRST', 'SECOND', 'THIRD', 'FOURTH', 'FIFTH'))} SECTION",
            "us": f"UNITED STATES DISTRICT COURT FOR THE {fk.pick(('WESTERN', 'EASTERN', 'NORTHERN', 'SOUTHERN'))} DISTRICT OF {fk.us.state().upper()}",
            "india": f"IN THE HIGH COURT OF {fk.pick(('DELHI AT NEW DELHI', 'JUDICATURE AT BOMBAY', 'KARNATAKA AT BENGALURU', 'MADRAS'))}",
            "uk": "IN THE COURT OF APPEAL (CIVIL DIVISION)" if self.area != "criminal" else "IN THE COURT OF APPEAL (CRIMINAL DIVISION)",
        }[self.style]

    def case_number(self) -> str:
        fk, r, y = self.fk, self.rng, self.year
        return {
            "echr": f"Application no. {r.randint(1000, 79999)}/{(y - r.randint(2, 6)) % 100:02d}",
            "us": f"Case No. {r.randint(1, 4)}:{(y - 1) % 100:02d}-{fk.pick(('cv', 'cr'))}-{fk.digits(5)}",
            "india": f"{fk.pick(('CRL.A.', 'W.P.(C)', 'RFA', 'ITA'))} {r.randint(100, 9999)}/{y - r.randint(1, 5)}",
            "uk": f"Case No: {fk.pick(('A2', 'A3', 'C1'))}/{y - 1}/{fk.digits(4)}",
        }[self.style]

    def judge(self) -> list:
        first, last = self.fk.person()
        prefix = {"echr": "", "us": "Hon. ", "india": "Hon. Justice ", "uk": "Lord Justice "}[self.style]
        return [prefix, ent(f"{first} {last}" if self.style != "uk" else last, "PERSON", "NO_MASK", "judge")]

    def write(self, doc_id: str) -> Document:
        b, r, fk = self.b, self.rng, self.fk
        party_word = {"echr": ("applicant", "Government"), "us": ("plaintiff", "defendant"),
                      "india": ("appellant", "respondent"), "uk": ("appellant", "respondent")}[self.style]
        if self.area == "criminal" and self.style == "us":
            party_word = ("defendant", "United States")
        b.line("{c}", c=ent(self.court(), "ORG", "NO_MASK", "court"))
        b.add("\n")
        if self.style == "echr":
            b.line("CASE OF {p} v. {s}", p=ent(self.p_name.upper(), "PERSON", "DIRECT", "party"),
                   s=ent(fk.pick(COUNTRIES).upper(), "LOC", "NO_MASK"))
        else:
            other = self.d_name or {"india": "STATE OF " + fk.us.state().upper(), "uk": "HM REVENUE AND CUSTOMS"}.get(self.style, "UNITED STATES")
            b.line("{p}, {pw}, v. {d}, {dw}.", p=ent(self.p_name.upper(), "PERSON", "DIRECT", "party"), pw=party_word[0].capitalize(),
                   d=ent(other.upper(), "ORG", "DIRECT" if self.d_name else "NO_MASK", "party"), dw=party_word[1].capitalize())
        b.line("{n}", n=ent(self.case_number(), "CODE", "DIRECT"))
        b.line("JUDGMENT delivered on {d}", d=ent(fk.full_date(self.decided, r.choice((3, 6))), "DATETIME", "QUASI"))
        b.add("\n")
        judges = [self.judge() for _ in range(3 if self.style in ("echr", "uk") else r.randint(1, 2))]
        b.add("Before: ")
        for i, j in enumerate(judges):
            b.fmt("{j}{sep}", j=j, sep=", " if i < len(judges) - 1 else "\n")
        for side in party_word:
            first, last = fk.person()
            b.fmt("{t} {c}, {role} for the {side}\n", t=fk.pick(("Mr.", "Ms.", "Mrs.")), c=ent(f"{first} {last}" if r.random() < 0.5 else last, "PERSON", "DIRECT", "counsel"),
                  role=fk.pick(("counsel", "Advocate", "Agent", "QC")), side=side)
        b.add("\n")
        sections = {"echr": ("PROCEDURE", "THE FACTS", "THE LAW", "FOR THESE REASONS, THE COURT"),
                    "us": ("I. BACKGROUND", "II. LEGAL STANDARD", "III. DISCUSSION", "IV. CONCLUSION"),
                    "india": ("FACTS", "SUBMISSIONS", "REASONS", "DECISION"),
                    "uk": ("Introduction", "The facts", "Discussion", "Disposal")}[self.style]
        b.add(sections[0] + "\n\n")
        self.paragraph(fk.pick((
            "The case originated in an application lodged on {date} by {P}, a {nat} national.",
            "This matter comes before the Court on the motion filed on {date} by {P}.",
            "This appeal is directed against the judgment dated {date2} passed by the trial court.",
        )))
        for template in r.sample(PROCEDURE, r.randint(2, len(PROCEDURE))):
            self.paragraph(template.replace("{side}", fk.pick(party_word)))
        if r.random() < 0.7:
            self.paragraph("{P} was born in {year_of_birth} and lives in {addr}. {P_cap} works as a {occ}.".replace(
                "{P_cap}", "She" if self.p_short == "her" else "He"))
        b.add(sections[1] + "\n\n")
        facts = list(FACTS[self.area])
        repeats = 12 if self.long else r.randint(2, 4)
        for _ in range(repeats):
            for template in r.sample(facts, r.randint(3, len(facts))):
                self.paragraph(template)
        b.add(sections[2] + "\n\n")
        for template in r.sample(ARGUMENTS, r.randint(3, len(ARGUMENTS))):
            self.paragraph(template.replace("{side}", fk.pick(party_word)))
        for _ in range(repeats):
            for reason in r.sample(REASONS[self.area], len(REASONS[self.area])):
                self.paragraph(reason)
            self.paragraph(fk.pick((
                "Having regard to the evidence of {W} and the documents produced on {date}, the Court is not persuaded by the {side}'s submissions.",
                "The {side} relied on the decision of {date} but that case is distinguishable on its facts.",
                "The amount of {amount} claimed is not supported by the record.",
            )).replace("{side}", fk.pick(party_word)))
        b.add(sections[3] + "\n\n")
        self.decision()
        for j in judges[:1]:
            b.fmt("\n{j}\n", j=j)
        meta = {"doc_type": "judgment", "jurisdiction": {"echr": "ECHR", "us": "US", "india": "IN", "uk": "UK"}[self.style],
                "year": self.year, "court_style": self.style, "source": "synthetic", "generator_version": GENERATOR_VERSION}
        return b.document(doc_id, meta=meta, label=self.area, labels=sorted(set(self.outcomes)))

    def decision(self) -> None:
        r = self.rng
        win = r.random() < 0.5
        if self.style == "echr":
            article = {"privacy": "Article 8", "criminal": "Article 6 § 1", "employment": "Article 14 taken with Article 8",
                       "tax": "Article 1 of Protocol No. 1", "contract_dispute": "Article 6 § 1"}[self.area]
            self.outcomes.append("violation" if win else "no_violation")
            self.paragraph(f"Holds that there has {'been a' if win else 'been no'} violation of {article} of the Convention;")
            if win:
                self.outcomes.append("damages_awarded")
                self.paragraph("Holds that the respondent State is to pay the applicant, within three months, {amount} in respect of non-pecuniary damage;")
        elif self.style == "us":
            self.outcomes.append("motion_granted" if win else "motion_denied")
            self.paragraph(f"For the foregoing reasons, the motion is {'GRANTED' if win else 'DENIED'}. The Clerk is directed to enter judgment on {{date2}}.")
        else:
            self.outcomes.append("appeal_allowed" if win else "appeal_dismissed")
            self.paragraph(f"For the reasons given, the appeal is {'allowed' if win else 'dismissed'}." +
                           (" The respondent shall pay costs of {amount}." if win and r.random() < 0.6 else ""))


def write_judgment(fk: LegalFakes, doc_id: str, area: str, *, long: bool = False) -> Document:
    """One synthetic judgment in area of law ``area`` (see :data:`~domainfm.synth.legal.JUDGMENT_AREAS`)."""
    return JudgmentWriter(fk, area, long).write(doc_id)
