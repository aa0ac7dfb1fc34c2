"""Writes one clinical note of a given type for a synthetic patient, section by section.

Each PHI value is appended through :class:`~domainfm.synth.builder.TextBuilder` as an entity,
so its gold span is exact. Names are spanned without titles or credentials ("Dr. [Lee]",
"[Maria Gonzalez], NP"), following the i2b2 de-identification convention; ages are spanned only
above 89, as Safe Harbor requires.
"""

from __future__ import annotations

from datetime import date, timedelta

from domainfm.corpus.document import Document
from domainfm.synth import clinical_data as data
from domainfm.synth.builder import Ent, TextBuilder
from domainfm.synth.clinical import GENERATOR_VERSION, PHI_CATEGORY, Clinician, Patient
from domainfm.synth.fakes import Fakes

_SYSTEM_WORDS = (
    ("LUNGS", ("crackle", "wheez", "rales", "rhonchi", "air movement", "egophony", "expiratory",
               "accessory", "SpO2", "tachypneic", "phrases")),
    ("CV", ("murmur", "S3", "S4", "JVD", "rhythm", "tachycardic", "gallop", "RRR", "hypotensive")),
    ("ABD", ("abdom", "epigastric", "bowel", "ascites", "melena", "CVA", "guarding")),
    ("EXT", ("edema", "calf", "erythema", "shin", "clubbing", "palmar", "fluctuance", "tender")),
    ("NEURO", ("drift", "aphasia", "droop", "NIHSS", "oriented", "tremor", "rigidity", "gait",
               "facies", "deficit", "asterixis", "confus", "Kernig", "nuchal", "meningismus",
               "somnolent", "photophobic", "postictal", "lid lag")),
)
_NORMAL_EXAM = {
    "GEN": ("NAD, alert", "well-appearing", "comfortable, conversant", "ill-appearing"),
    "HEENT": ("NC/AT, PERRL, MMM", "anicteric sclerae, oropharynx clear"),
    "NECK": ("supple, no LAD", "no JVD, no thyromegaly"),
    "CV": ("RRR, no m/r/g", "regular rate and rhythm, normal S1 S2"),
    "LUNGS": ("CTAB", "clear to auscultation bilaterally", "good air movement, no wheezes"),
    "ABD": ("soft, NT/ND, +BS", "soft, nontender, nondistended"),
    "EXT": ("no edema, 2+ DP pulses", "warm, well perfused, no c/c/e"),
    "NEURO": ("A&Ox3, CN II-XII intact, strength 5/5", "nonfocal", "alert, moves all extremities"),
}


# Group-neutral HPI sentences: length and realism without label signal.
_HPI_EXTRA = (
    "{She} reports good adherence to {her} medications, though {she} ran out of some last week.",
    "No recent travel or sick contacts.",
    "{She} has had decreased oral intake for the past few days.",
    "{She} was recently started on a new medication by {her} PCP but cannot recall the name.",
    "Symptoms are worse with exertion and improve somewhat with rest.",
    "{She} tried over-the-counter remedies without relief.",
    "{She} notes poor sleep and generalized weakness.",
    "{Her} family noticed {she} has been less active than usual.",
    "No recent hospitalizations; last seen in clinic several months ago.",
    "{She} denies recent falls or trauma.",
    "Reports unintentional weight loss of about 5 lb over the past month.",
    "{She} is vaccinated against influenza and COVID-19.",
)
_ROS = {
    "CONST": ["fevers", "chills", "night sweats", "weight change"],
    "EYES": ["vision change", "eye pain"],
    "ENT": ["sore throat", "rhinorrhea", "ear pain"],
    "CV": ["palpitations", "orthopnea", "syncope"],
    "RESP": ["hemoptysis", "wheezing", "cough"],
    "GI": ["hematochezia", "constipation", "diarrhea"],
    "GU": ["hematuria", "dysuria", "frequency"],
    "MSK": ["joint swelling", "myalgias"],
    "SKIN": ["rash", "pruritus"],
    "NEURO": ["numbness", "focal weakness", "seizures"],
    "PSYCH": ["depressed mood", "SI/HI"],
}
_DAILY_EVENTS = (
    "Afebrile overnight; ambulated with PT.", "Brief episode of agitation overnight, redirected.",
    "Tolerating diet; IV fluids stopped.", "Required 1 dose of PRN analgesia.", "Foley removed, voiding.",
    "Case management met with family regarding placement.", "Weight down 1.2 kg.",
    "Hypokalemia repleted.", "Sleeping poorly; melatonin added.", "No events; continues to improve.",
)
_HOUSEKEEPING = (
    "FEN: regular diet, replete lytes PRN", "PPx: heparin SQ", "PPx: SCDs, pantoprazole",
    "Code status: full code (confirmed with patient)", "Code: DNR/DNI per discussion with family",
    "Dispo: anticipate discharge in 2-3 days", "Access: PIV x2", "Lines: PIV",
    "Dispo: PT/OT evaluation, likely home with services",
)


def phi(text: str, label: str) -> Ent:
    return Ent(text, label, {"phi": True, "category": PHI_CATEGORY[label]})


class NoteWriter:
    """Renders one note; :meth:`write` returns the validated :class:`Document`.

    Args:
        fk: the corpus-wide seeded fakes.
        p: the patient.
        note_type: one of :data:`~domainfm.synth.clinical.NOTE_TYPES`.
        clinicians: provider pool for consultants and nurses.
        day: index of the note within the patient's notes (later notes are later in the stay).
    """

    def __init__(self, fk: Fakes, p: Patient, note_type: str, clinicians: list[Clinician], day: int):
        self.fk, self.p, self.note_type, self.clinicians = fk, p, note_type, clinicians
        self.rng = fk.rng
        self.upper = note_type == "nursing_note" and self.rng.random() < 0.5
        self.b = TextBuilder(upper=self.upper)
        self.date = p.admit + timedelta(days=day * self.rng.randint(1, 3))
        self.she, self.her = ("She", "her") if p.sex == "F" else ("He", "his")
        self.tags = {p.dx.tag, *p.comorbid}
        self.secondary_mentioned = False

    # ---- entity helpers -------------------------------------------------------------------

    def name(self, form: str | None = None) -> list:
        p = self.p
        form = form or self.fk.pick(("full", "full", "title", "caps", "last_first", "first_last"))
        if form == "title":
            return [("Ms. " if p.sex == "F" else "Mr. ") if self.rng.random() < 0.8 else
                    ("Mrs. " if p.sex == "F" else "Mr. "), phi(p.last, "PATIENT")]
        text = {
            "full": f"{p.first} {p.middle}. {p.last}",
            "first_last": f"{p.first} {p.last}",
            "caps": f"{p.last.upper()}, {p.first.upper()}",
            "last_first": f"{p.last}, {p.first} {p.middle}.",
            "first": p.first,
        }[form]
        return [phi(text, "PATIENT")]

    def doctor(self, c: Clinician | None = None, form: str | None = None) -> list:
        c = c or self.rng.choice(self.clinicians)
        physician = c.credential in ("MD", "DO")
        forms = ("dr_last", "dr_full", "full_cred", "initials", "caps") if physician else ("full_cred", "caps")
        form = form or self.fk.pick(forms)
        if form == "dr_last" and physician:
            return ["Dr. ", phi(c.last, "DOCTOR")]
        if form == "dr_full" and physician:
            return ["Dr. ", phi(f"{c.first} {c.last}", "DOCTOR")]
        if form == "initials":
            return [phi(f"{c.first[0]}.{self.fk.letters(1)}. {c.last}", "DOCTOR"), f" {c.credential}"]
        if form == "caps":
            return [phi(f"{c.last.upper()}, {c.first.upper()}", "DOCTOR"), f" {c.credential}"]
        return [phi(f"{c.first} {c.last}", "DOCTOR"), f", {c.credential}"]

    def relative(self, rel=None) -> list:
        rel = rel or self.rng.choice(self.p.relatives)
        name = rel.first if self.rng.random() < 0.6 else f"{rel.first} {rel.last}"
        return [f"{rel.relation} ", phi(name, "RELATIVE")]

    def when(self, d: date, full: bool | None = None) -> Ent:
        full = self.rng.random() < 0.6 if full is None else full
        return phi(self.fk.full_date(d) if full else self.fk.short_date(d), "DATE")

    def age(self, style: str | None = None):
        a = self.p.age
        style = style or self.fk.pick(("adj", "adj", "adj", "yo", "y/o"))
        text = {"adj": f"{a}-year-old", "yo": f"{a} yo", "y/o": f"{a} y/o", "age": f"age {a}"}[style]
        return phi(text, "AGE") if a > 89 else text

    def sex_word(self) -> str:
        f = self.p.sex == "F"
        return self.fk.pick(("woman", "female", "lady") if f else ("man", "male", "gentleman"))

    def address(self) -> list:
        p = self.p
        return [phi(p.street, "STREET"), ", ", phi(p.city, "CITY"), ", ", phi(p.state, "STATE"), " ",
                phi(p.zip, "ZIP")]

    def hospital(self, name: str | None = None) -> Ent:
        return phi(name or self.p.hospital, "HOSPITAL")

    # ---- clinical content -----------------------------------------------------------------

    def comorbid_text(self) -> str:
        items = [self.fk.pick(data.COMORBIDITIES[t][0]) for t in self.p.comorbid]
        items += [f"prior {self.fk.pick(d.names)}" for d in self.p.history]
        return ", ".join(items)

    def symptoms(self, k: int = 3) -> list[str]:
        dx = self.p.dx
        picked = self.rng.sample(dx.symptoms, min(k, len(dx.symptoms)))
        if self.p.second and self.rng.random() < 0.6:
            picked.append(self.fk.pick(self.p.second.symptoms))
        if self.rng.random() < 0.5:
            # Symptoms shared with other groups keep the label from being keyword-separable.
            extra = self.fk.pick(data.ALL_SYMPTOMS)
            if extra not in picked:
                picked.append(extra)
        return picked

    def dx_phrase(self, dx: data.Dx | None = None) -> str:
        dx = dx or self.p.dx
        return self.fk.pick(dx.implied) if self.rng.random() < 0.3 else self.fk.pick(dx.names)

    def differential(self) -> str:
        """Diagnoses of other groups that share a presenting symptom, as a clinician would list
        them; they put other groups' vocabulary into every note."""
        dx = self.p.dx
        pool = [d for d in data.DIAGNOSES if d.group != dx.group and set(d.symptoms) & set(dx.symptoms)]
        picked = self.rng.sample(pool, min(len(pool), self.rng.randint(1, 3)))
        names = [self.fk.pick(d.names) for d in picked]
        return self.fk.pick((
            "Ddx includes {o} vs {p}.", "Differential: {o}; favor {p}.", "Considered {o}, less likely.",
            "{O} ruled out; {p} most likely.", "Doubt {o}.",
        )).format(o=", ".join(names), O=", ".join(names).capitalize(), p=self.fk.pick(dx.names))

    def lab_value(self, lo: float, hi: float) -> str:
        v = self.rng.uniform(lo, hi)
        if hi < 0.1:
            return f"{v:.3f}"
        if hi < 10:
            return f"{v:.1f}" if hi >= 3 else f"{v:.2f}"
        return f"{v:.0f}"

    def labs(self) -> list[str]:
        aliases = {"Sodium": "Na", "Potassium": "K"}
        panel = {k: self.lab_value(lo, hi) for k, (lo, hi, _) in data.NORMAL_LABS.items()}
        extra = []
        for dx in (self.p.dx, self.p.second):
            if dx is None:
                continue
            for lab, (lo, hi, unit) in dx.labs.items():
                key = aliases.get(lab, lab)
                if key in panel:
                    panel[key] = self.lab_value(lo, hi)
                else:
                    extra.append(f"{lab} {self.lab_value(lo, hi)} {unit}".rstrip())
        lines = ["  ".join(f"{k} {v}" for k, v in list(panel.items())[:7]),
                 "  ".join(f"{k} {v}" for k, v in list(panel.items())[7:])]
        r = self.rng
        if r.random() < 0.6:
            lines.append(f"AST {r.randint(12, 60)}  ALT {r.randint(8, 70)}  Alk phos {r.randint(40, 160)}  "
                         f"T bili {r.uniform(0.2, 1.4):.1f}  Albumin {r.uniform(2.6, 4.6):.1f}")
        if r.random() < 0.4:
            lines.append(f"PT {r.uniform(10.5, 14.5):.1f}  INR {r.uniform(0.9, 1.3):.1f}  PTT {r.randint(24, 38)}")
        if r.random() < 0.3:
            lines.append(f"Mg {r.uniform(1.6, 2.6):.1f}  Phos {r.uniform(2.4, 4.6):.1f}  Ca {r.uniform(8.4, 10.2):.1f}")
        return lines + extra

    def vitals(self) -> str:
        r = self.rng
        infectious = self.p.dx.group == "infectious_disease" or r.random() < 0.15
        temp = r.uniform(38.1, 39.6) if infectious else r.uniform(36.3, 37.6)
        hr = r.randint(95, 135) if r.random() < 0.5 else r.randint(60, 96)
        return self.fk.pick((
            f"T {temp:.1f}  HR {hr}  BP {r.randint(95, 170)}/{r.randint(50, 98)}  RR {r.randint(12, 28)}  SpO2 {r.randint(86, 100)}% {self.fk.pick(('RA', '2L NC', '4L NC'))}",
            f"Vitals: Temp {temp * 9 / 5 + 32:.1f}F, pulse {hr}, BP {r.randint(95, 170)}/{r.randint(50, 98)}, resp {r.randint(12, 28)}, O2 sat {r.randint(86, 100)}%",
            f"VS: {temp:.1f} {hr} {r.randint(95, 170)}/{r.randint(50, 98)} {r.randint(12, 28)} {r.randint(86, 100)}%RA",
        ))

    def exam_lines(self) -> list[str]:
        systems = {k: self.fk.pick(v) for k, v in _NORMAL_EXAM.items()}
        findings = list(self.p.dx.exam)
        if self.p.second:
            findings += self.rng.sample(self.p.second.exam, 2)
        for finding in self.rng.sample(findings, min(len(findings), self.rng.randint(2, 4))):
            system = next((s for s, words in _SYSTEM_WORDS if any(w in finding for w in words)), "GEN")
            systems[system] = finding if self.rng.random() < 0.5 else f"{systems[system]}; {finding}"
        return [f"{k}: {v}" for k, v in systems.items() if k not in ("HEENT", "NECK") or self.rng.random() < 0.6]

    def meds_list(self) -> list[str]:
        meds = [m for t in self.p.comorbid for m in data.COMORBIDITIES[t][1][: self.rng.randint(1, 2)]]
        meds += self.rng.sample(("multivitamin daily", "vitamin D 1000 IU daily", "docusate 100 mg BID",
                                 "melatonin 3 mg qHS", "tamsulosin 0.4 mg qHS", "gabapentin 300 mg TID"),
                                self.rng.randint(0, 3))
        self.rng.shuffle(meds)
        return meds

    # ---- sections -------------------------------------------------------------------------

    def header(self, title: str, glued: bool = False) -> None:
        """A section header; ``glued`` writes the MTSamples style ``SUBJECTIVE:,  text``."""
        self.b.add(f"\n{title},  " if glued else f"\n{title}\n")

    def pick_header(self, key: str) -> str:
        return self.fk.pick(data.HEADERS[key])

    def registration(self, p_each: float = 0.55) -> None:
        b, p, r = self.b, self.p, self.rng
        b.line("Patient: {n}    MRN: {mrn}", n=self.name(self.fk.pick(("caps", "last_first", "full"))),
               mrn=phi(p.mrn, "MRN"))
        b.line("DOB: {dob}    Sex: {sex}", dob=self.when(p.dob, full=True), sex=p.sex)
        if r.random() < p_each:
            b.line("SSN: {ssn}", ssn=phi(p.ssn, "SSN"))
        if r.random() < p_each:
            b.line(self.fk.pick(("Acct #: {a}", "Account No.: {a}", "Visit/Billing #: {a}")), a=phi(p.account, "ACCOUNT"))
        if r.random() < p_each:
            b.line("Insurance: {plan} ID {pid}", plan=p.plan[0], pid=phi(p.plan[1], "HEALTH_PLAN"))
        if r.random() < p_each:
            b.line("Address: {addr}", addr=self.address())
        if r.random() < p_each:
            b.line("Phone: {ph}", ph=phi(p.phone, "PHONE"))
        if r.random() < p_each * 0.7:
            b.line("Email: {e}", e=phi(p.email, "EMAIL"))
        if r.random() < p_each * 0.5:
            b.line("Driver's license: {lic} ({st})", lic=phi(p.licence, "LICENSE"), st=phi(p.state, "STATE"))
        if r.random() < 0.4:
            rel = r.choice(p.relatives)
            b.line("Emergency contact: {rel}, {ph}", rel=self.relative(rel), ph=phi(rel.phone, "PHONE"))

    def hpi_opening(self) -> None:
        p, b = self.p, self.b
        race = data.RACE_WORDS[p.race]
        race = f"{race} " if race and self.rng.random() < 0.5 else ""
        sx = self.symptoms()
        template = self.fk.pick((
            "{n} is a {age} {race}{sex} with a history of {pmh} who presents with {sx}.",
            "{age} {race}{sex} with PMH significant for {pmh}, presenting with {sx} for {dur}.",
            "This is a {age} {sex} ({pmh}) who comes in complaining of {sx}.",
            "Patient is a {age} {race}{sex}. {She} has {pmh}. {She} reports {sx} x {dur}.",
        ))
        b.fmt(template, n=self.name(), age=self.age(), race=race, sex=self.sex_word(), pmh=self.comorbid_text(),
              sx=", ".join(sx[:-1]) + f" and {sx[-1]}" if len(sx) > 1 else sx[0],
              dur=self.fk.pick(("2 days", "3 days", "1 week", "several hours", "2 weeks")), She=self.she)

    def hpi(self, ed: bool = True) -> None:
        b, p, r = self.b, self.p, self.rng
        self.hpi_opening()
        onset = self.date - timedelta(days=r.randint(1, 6))
        b.fmt(" {She} was in {her} usual state of health until {d}, when {she} noted {sx}.",
              She=self.she, her=self.her, she=self.she.lower(), d=self.when(onset), sx=self.fk.pick(p.dx.symptoms))
        if r.random() < 0.5:
            b.fmt(" {She} was seen at {h} on {d} and {out}.", She=self.she, h=self.hospital(r.choice(self.all_sites())),
                  d=self.when(onset + timedelta(days=1)),
                  out=self.fk.pick(("sent home with supportive care", "transferred for higher level of care",
                                    "told to follow up with {} PCP".format(self.her))))
        b.fmt(" Denies {neg}.", neg=", ".join(r.sample([s for s in data.ALL_SYMPTOMS if s not in p.dx.symptoms], 3)))
        for sentence in r.sample(_HPI_EXTRA, r.randint(1, 4)):
            b.add(" " + sentence.format(She=self.she, she=self.she.lower(), her=self.her, Her=self.her.capitalize()))
        if r.random() < 0.3:
            b.add(" " + self.differential())
        if ed and r.random() < 0.6:
            b.add("\n\n")
            b.fmt("History obtained from the patient and {her} {rel}, who {how}.", her=self.her, rel=self.relative(),
                  how=self.fk.pick(("accompanies the patient", "was reached by phone", "is the health care proxy")))
            b.fmt(" In the ED, {v}. {st}. Started on {plan}.", v=self.vitals(),
                  st=self.fk.pick(p.dx.studies) if p.dx.studies else "Initial labs notable as below",
                  plan=self.fk.pick(p.dx.plan))
        if p.age > 89 and r.random() < 0.5:
            b.fmt(" Of note, at {age} {she} lives independently.", age=self.age("age"), she=self.she.lower())
        b.add("\n")

    def all_sites(self) -> list[str]:
        return [self.p.hospital, self.p.facility]

    def pmh(self) -> None:
        b, p, r = self.b, self.p, self.rng
        self.header(self.pick_header("pmh"))
        for i, tag in enumerate(p.comorbid, 1):
            text = self.fk.pick(data.COMORBIDITIES[tag][0])
            if r.random() < 0.3:
                b.line("{i}. {t}, diagnosed {y}", i=i, t=text, y=r.randint(1985, p.admit.year))
            elif r.random() < 0.3:
                b.line("{i}. {t} (dx {d})", i=i, t=text, d=self.when(p.admit - timedelta(days=r.randint(200, 5000)), full=False))
            else:
                b.line("{i}. {t}", i=i, t=text)
        for d in p.history:
            b.line("- h/o {t} ({y})", t=self.fk.pick(d.names), y=r.randint(2000, p.admit.year))
        if p.device:
            b.line("{i}. s/p {m} pacemaker, serial {sn}, implanted {d}", i=len(p.comorbid) + 1, m=p.device[0],
                   sn=phi(p.device[1], "DEVICE"), d=self.when(p.admit - timedelta(days=r.randint(300, 3000))))

    def psh(self) -> None:
        self.header(self.pick_header("psh"))
        for s in self.rng.sample(data.SURGERIES, self.rng.randint(1, 3)):
            self.b.line("- {s} ({y})", s=s, y=self.rng.randint(1970, self.p.admit.year))

    def meds(self, key: str = "meds") -> None:
        self.header(self.pick_header(key))
        for i, m in enumerate(self.meds_list(), 1):
            self.b.line("{i}. {m}", i=i, m=m)

    def allergies(self) -> None:
        self.header(self.pick_header("allergies"))
        r = self.rng.random()
        self.b.line("NKDA" if r < 0.5 else "No known drug allergies" if r < 0.6 else
                    ", ".join(self.rng.sample(data.ALLERGENS, self.rng.randint(1, 2))))

    def family_history(self) -> None:
        b, r = self.b, self.rng
        self.header(self.pick_header("fh"))
        b.fmt("Mother with {a}. ", a=self.fk.pick(("HTN", "breast cancer", "DM2", "stroke", "dementia")))
        father_age = r.randint(55, 99)
        died = f"age {father_age}" if father_age <= 89 else phi(f"age {father_age}", "AGE")
        b.line("Father died at {a} of {c}.", a=died, c=self.fk.pick(("MI", "lung cancer", "stroke", "old age")))
        if r.random() < 0.4:
            b.line("{rel} has {c}.", rel=self.fam_rel(),
                   c=self.fk.pick(("type 1 diabetes", "epilepsy", "lupus", "CAD")))

    def fam_rel(self) -> list:
        rel = self.rng.choice(self.p.relatives)
        return [f"{self.her.capitalize()} {rel.relation} ", phi(rel.first, "RELATIVE")]

    def social_history(self) -> None:
        b, p, r = self.b, self.p, self.rng
        self.header(self.pick_header("sh"))
        rel = r.choice(p.relatives)
        if r.random() < 0.5:
            b.fmt("Lives at {addr} with {her} {rel}. ", addr=self.address(), her=self.her, rel=self.relative(rel))
        else:
            b.fmt("Lives in {city}, {st} with {rel}. ", city=phi(p.city, "CITY"), st=phi(p.state, "STATE"),
                  rel=self.relative(rel))
        b.fmt("Works as a {occ}. ", occ=p.occupation) if p.age < 66 else b.fmt("Retired ({occ}). ", occ=p.occupation)
        b.fmt("{t}. {a}. Denies illicit drugs.", t="Current smoker, 1 ppd" if "tobacco_use" in p.comorbid else
              self.fk.pick(("Never smoker", "Former smoker, quit 10 years ago")),
              a="Drinks 6-8 beers daily" if "alcohol_use" in p.comorbid else self.fk.pick(("Rare EtOH", "No alcohol")))
        if r.random() < 0.3:
            b.fmt(" Still drives; vehicle plate {pl}.", pl=phi(p.plate, "VEHICLE"))
        elif r.random() < 0.1:
            b.fmt(" Involved in a minor MVC last year (vehicle VIN {v}).", v=phi(p.vin, "VEHICLE"))
        b.add("\n")

    def ros(self) -> None:
        self.header(self.pick_header("ros"))
        pos = ", ".join(self.symptoms(2))
        if self.rng.random() < 0.4:
            self.b.line("Positive for {pos}. All other systems reviewed and negative.", pos=pos)
            return
        self.b.line("Positive: {pos}.", pos=pos)
        for system, negatives in _ROS.items():
            self.b.line("{s}: denies {n}.", s=system, n=", ".join(self.rng.sample(negatives, min(3, len(negatives)))))

    def exam(self) -> None:
        self.header(self.pick_header("exam"))
        self.b.line(self.vitals())
        for line in self.exam_lines():
            self.b.line(line)

    def data_section(self) -> None:
        p, b, r = self.p, self.b, self.rng
        self.header(self.pick_header("labs"))
        b.line("Labs {d}:", d=self.when(self.date, full=r.random() < 0.5))
        for line in self.labs():
            b.line(line)
        studies = list(p.dx.studies) + (list(p.second.studies) if p.second else [])
        for study in r.sample(studies, min(len(studies), r.randint(1, 3))):
            b.line(study)
        if p.device and r.random() < 0.6:
            b.line("Device interrogation ({m}, SN {sn}): normal function, no events.", m=p.device[0],
                   sn=phi(p.device[1], "DEVICE"))

    def assessment_plan(self, split: bool = False) -> None:
        b, p, r = self.b, self.p, self.rng
        if split:
            self.header("Assessment:")
        else:
            self.header(self.pick_header("ap"))
        verb = "seen for" if self.note_type == "clinic_visit" else self.fk.pick(("admitted with", "presenting with", "here with"))
        b.fmt("{age} {sex} with {pmh} {verb} {dx}.", age=self.age(), sex=self.p.sex if r.random() < 0.5 else self.sex_word(),
              pmh=self.comorbid_text(), verb=verb, dx=self.dx_phrase())
        if r.random() < 0.35:
            b.add(" " + self.differential())
        if split:
            b.add("\n")
            self.header("Plan:")
        else:
            b.add("\n\n")
        plan = p.dx.plan
        if r.random() < 0.5:
            plan = plan + (f"{data.SPECIALTY[p.dx.group].lower()} {self.fk.pick(('following', 'consulted', 'recs appreciated'))}",)
        problems = [(self.dx_phrase(), plan)]
        if p.second and r.random() < 0.8:
            problems.append((self.dx_phrase(p.second), p.second.plan))
            self.secondary_mentioned = True
        for tag in r.sample(p.comorbid, min(len(p.comorbid), 2)):
            meds = data.COMORBIDITIES[tag][1]
            problems.append((self.fk.pick(data.COMORBIDITIES[tag][0]),
                             (f"continue home {self.fk.pick(meds)}" if meds else "diet counseling", "monitor")))
        for i, (problem, plan) in enumerate(problems, 1):
            steps = r.sample(plan, min(len(plan), r.randint(2, 4)))
            if r.random() < 0.5:
                b.line("{i}. {pr}:", i=i, pr=problem)
                for s in steps:
                    b.line("   - {s}", s=s)
            else:
                b.line("#{i} {pr} - {s}.", i=i, pr=problem, s="; ".join(steps))
        if self.note_type != "clinic_visit" and r.random() < 0.7:
            for item in r.sample(_HOUSEKEEPING, r.randint(2, 4)):
                b.line(item)

    def signature(self, c: Clinician | None = None) -> None:
        b, r = self.b, self.rng
        c = c or self.p.attending
        when = self.when(self.date, full=True)
        b.add("\n")
        b.line(self.fk.pick(("Electronically signed by {d} on {w} {t}", "{d}\n{w} {t}", "Attending: {d}  Date: {w}")),
               d=self.doctor(c), w=when, t=f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}")
        if r.random() < 0.45:
            b.line(self.fk.pick(("NPI: {x}", "DEA# {x}", "Lic. No. {x}")),
                   x=phi(self.fk.pick((c.npi, c.dea, f"MD{self.fk.digits(6)}")), "LICENSE"))
        if r.random() < 0.25:
            b.line("Pager {ph}  Fax {fx}", ph=phi(c.phone, "PHONE"), fx=phi(c.fax, "FAX"))

    def portal(self) -> None:
        p = self.p
        self.b.line(self.fk.pick((
            "Patient portal message received {d} via {u} (login from IP {ip}); reviewed and answered.",
            "Portal audit: accessed {d} from IP address {ip}, {u}",
        )), d=self.when(self.date - timedelta(days=self.rng.randint(1, 20))), u=phi(p.url, "URL"), ip=phi(p.ip, "IP"))

    # ---- note types -----------------------------------------------------------------------

    def admission_hp(self) -> None:
        b, r = self.b, self.rng
        b.line(self.fk.pick(("ADMISSION HISTORY AND PHYSICAL", "History & Physical", "ADMISSION H&P", "H&P")))
        b.line("{h}", h=self.hospital())
        if r.random() < 0.8:
            self.registration()
        b.line("Date of admission: {d}", d=self.when(self.p.admit, full=True))
        if r.random() < 0.6:
            b.line("PCP: {d}", d=self.doctor(self.p.pcp))
        self.header(self.pick_header("cc"))
        b.line("{sx}", sx=self.fk.pick(self.p.dx.symptoms).capitalize())
        self.header(self.pick_header("hpi"))
        self.hpi()
        blocks = [self.pmh, self.psh, self.meds, self.allergies, self.family_history, self.social_history]
        blocks = [f for f in blocks if f in (self.pmh, self.meds) or r.random() < 0.8]
        if r.random() < 0.3:
            r.shuffle(blocks)
        for f in blocks:
            f()
        if r.random() < 0.8:
            self.ros()
        self.exam()
        self.data_section()
        self.assessment_plan(split=r.random() < 0.3)
        self.signature()

    def progress_note(self) -> None:
        b, p, r = self.b, self.p, self.rng
        b.line(self.fk.pick(("PROGRESS NOTE", "Daily Progress Note", "{svc} Progress Note")).format(
            svc=data.SPECIALTY[p.dx.group]))
        b.line("{n}  MRN {m}  {d}", n=self.name(), m=phi(p.mrn, "MRN"), d=self.when(self.date, full=True))
        if r.random() < 0.25:
            self.registration(0.4)
        b.line("Hospital day #{k}", k=(self.date - p.admit).days + 1)
        self.header("SUBJECTIVE:")
        self.hpi_opening()
        b.fmt(" Overnight {ev}. {She} reports {fx}.", ev=self.fk.pick(("no acute events", "required PRN analgesia",
              "had one episode of emesis", "was briefly hypotensive, responded to fluids")), She=self.she,
              fx=self.fk.pick(("feeling somewhat better", "persistent " + self.fk.pick(p.dx.symptoms), "poor sleep")))
        if r.random() < 0.5:
            b.fmt(" Spoke with {rel} at {ph}; updated on plan.", rel=self.relative(), ph=phi(r.choice(p.relatives).phone, "PHONE"))
        b.add("\n")
        self.header("OBJECTIVE:")
        self.exam_section_inline()
        self.data_section()
        if r.random() < 0.35:
            self.portal()
        self.assessment_plan(split=r.random() < 0.4)
        self.signature(r.choice(self.clinicians) if r.random() < 0.5 else None)

    def exam_section_inline(self) -> None:
        self.b.line(self.vitals())
        for line in self.exam_lines():
            self.b.line(line)

    def discharge_summary(self) -> None:
        b, p, r = self.b, self.p, self.rng
        b.line(self.fk.pick(("DISCHARGE SUMMARY", "Discharge Summary", "HOSPITAL DISCHARGE SUMMARY")))
        b.line("{h}", h=self.hospital())
        if r.random() < 0.8:
            self.registration()
        long_course = r.random() < 0.12
        discharge = self.date + timedelta(days=r.randint(10, 14) if long_course else r.randint(1, 7))
        b.line("Admission Date: {a}    Discharge Date: {d}", a=self.when(p.admit, full=True), d=self.when(discharge, full=True))
        b.line("Attending: {d}", d=self.doctor(p.attending))
        self.header(self.fk.pick(("DISCHARGE DIAGNOSES:", "Discharge Diagnosis:", "PRINCIPAL DIAGNOSIS:")))
        b.line("1. {dx}", dx=self.fk.pick(p.dx.names) if r.random() < 0.7 else self.fk.pick(p.dx.implied))
        if p.second:
            b.line("2. {dx}", dx=self.fk.pick(p.second.names))
            self.secondary_mentioned = True
        self.header(self.pick_header("hpi"))
        self.hpi()
        if r.random() < 0.7:
            self.pmh()
        self.header(self.pick_header("course"))
        b.fmt("# {dx}: ", dx=self.dx_phrase())
        b.line("{st}. Treated with {pl}. {out}", st=self.fk.pick(p.dx.studies) if p.dx.studies else "Workup as above",
               pl=", ".join(r.sample(p.dx.plan, min(3, len(p.dx.plan)))),
               out=self.fk.pick(("Symptoms improved steadily.", "Slow improvement; stable for discharge.",
                                 "Course complicated by delirium, resolved.")))
        if p.second:
            b.add("\n")
            b.line("# {dx}: managed with {pl}.", dx=self.dx_phrase(p.second), pl=", ".join(p.second.plan[:2]))
        if long_course:
            self.daily_course(discharge)
        for tag in p.comorbid[:3]:
            b.add("\n")
            b.line("# {c}: stable, home regimen continued.", c=self.fk.pick(data.COMORBIDITIES[tag][0]))
        if r.random() < 0.5:
            self.data_section()
        self.meds("dc_meds")
        self.header(self.pick_header("dc_instr"))
        b.fmt("Return to the ED for {w}. ", w=", ".join(r.sample(p.dx.symptoms, min(2, len(p.dx.symptoms)))))
        if r.random() < 0.6:
            b.fmt("Education materials: {u}. ", u=phi(p.url, "URL"))
        b.line("Disposition: {d}.", d=self.fk.pick((["home with ", *self.relative()],
                                                   ["discharged to ", self.hospital(p.facility)], "home with services")))
        self.header(self.pick_header("followup"))
        pcp = p.pcp
        b.line("{doc} on {d}, phone {ph}, fax {fx}", doc=self.doctor(pcp), d=self.when(discharge + timedelta(days=r.randint(5, 21))),
               ph=phi(pcp.phone, "PHONE"), fx=phi(pcp.fax, "FAX"))
        self.signature()

    def daily_course(self, discharge: date) -> None:
        """Day-by-day hospital course: the few very long notes of the corpus."""
        b, p, r = self.b, self.p, self.rng
        b.add("\n")
        day = p.admit
        k = 1
        while day <= discharge:
            b.fmt("HD#{k} ({d}): ", k=k, d=self.when(day, full=False))
            plan = self.fk.pick(p.dx.plan)
            b.line("{v}. {e}. {pl}.", v=self.vitals(), e=self.fk.pick(self.exam_lines()), pl=plan[0].upper() + plan[1:])
            b.line("  Labs: {lab}; {lab2}.", lab=self.fk.pick(self.labs()), lab2=self.fk.pick(self.labs()))
            b.line("  {ev} Discussed with {rel} by phone.", ev=self.fk.pick(_DAILY_EVENTS).format(she=self.she.lower()),
                   rel=self.relative())
            day += timedelta(days=1)
            k += 1

    def clinic_visit(self) -> None:
        b, p, r = self.b, self.p, self.rng
        glued = r.random() < 0.35
        b.line("{h} - {svc} Clinic", h=self.hospital(self.fk.pick(self.all_sites())), svc=data.SPECIALTY[p.dx.group])
        if r.random() < 0.7:
            self.registration(0.5)
        b.line("Visit date: {d}", d=self.when(self.date, full=True))
        b.line("Referring provider: {d}", d=self.doctor(p.pcp))
        if glued:
            self.header("SUBJECTIVE:", glued=True)
            self.hpi_opening()
            b.fmt(" Symptoms began around {d}.", d=self.when(self.date - timedelta(days=r.randint(10, 90)), full=False))
            self.header("PAST MEDICAL HISTORY:", glued=True)
            b.add(self.comorbid_text() + ".")
            self.header("MEDICATIONS:", glued=True)
            b.add(", ".join(self.meds_list()) + ".")
            self.header("ALLERGIES:", glued=True)
            b.add("NKDA.")
            self.header("PHYSICAL EXAMINATION:", glued=True)
            b.add(self.vitals() + ". " + ". ".join(self.exam_lines()) + ".")
            self.header("ASSESSMENT:", glued=True)
            b.add(self.dx_phrase() + ".")
            if p.second:
                b.add(" Also " + self.dx_phrase(p.second) + ".")
                self.secondary_mentioned = True
            self.header("PLAN:", glued=True)
            b.add("; ".join(r.sample(p.dx.plan, min(3, len(p.dx.plan)))) + ".\n")
        else:
            self.header(self.pick_header("cc"))
            b.line("{sx}", sx=self.fk.pick(p.dx.symptoms).capitalize())
            self.header(self.pick_header("hpi"))
            self.hpi(ed=False)
            self.pmh()
            self.meds()
            self.allergies()
            if r.random() < 0.6:
                self.social_history()
            self.exam()
            if r.random() < 0.7:
                self.data_section()
            self.assessment_plan(split=r.random() < 0.5)
        if r.random() < 0.5:
            self.portal()
        if r.random() < 0.5:
            b.line("Copy faxed to {d} at {fx}.", d=self.doctor(p.pcp, "dr_full" if p.pcp.credential in ("MD", "DO") else None),
                   fx=phi(p.pcp.fax, "FAX"))
        b.fmt("Return visit {d}.", d=self.when(self.date + timedelta(days=r.randint(14, 120)), full=False))
        b.add("\n")
        self.signature()

    def nursing_note(self) -> None:
        b, p, r = self.b, self.p, self.rng
        nurse = r.choice(self.clinicians)
        b.line("{t} {s}", t=self.fk.pick(("NURSING NOTE", "Nursing Progress Note", "RN NOTE")),
               s=self.fk.pick(("0700-1900", "1900-0700", "")))
        b.line("{d}", d=self.when(self.date, full=r.random() < 0.5))
        b.fmt("{n} is a {age} {sex} admitted {d} w/ {sx}", n=self.name("first") if r.random() < 0.6 else self.name(),
              age=self.age(self.fk.pick(("yo", "y/o", "adj"))), sex=self.p.sex, d=self.when(p.admit, full=False),
              sx=", ".join(self.symptoms(2)))
        if r.random() < 0.35:
            b.fmt(", being treated for {dx}", dx=self.dx_phrase())
        b.fmt(". Hx {pmh}.\n", pmh=self.comorbid_text())
        if p.second and r.random() < 0.6:
            b.line("Also being managed for {dx}.", dx=self.fk.pick(p.second.names))
            self.secondary_mentioned = True
        for line in self.exam_lines():
            b.line(line)
        b.line(self.vitals())
        if p.device and r.random() < 0.5:
            b.line("Pacemaker in place ({m} SN {sn}), paced rhythm on tele.", m=p.device[0], sn=phi(p.device[1], "DEVICE"))
        meds = [m for m in p.dx.plan if any(w in m for w in (" mg", " g ", "drip", "nebs", "insulin", "fluids"))]
        if meds:
            b.line("MEDS: {m} given as ordered.", m=", ".join(r.sample(meds, min(2, len(meds)))))
        rel = r.choice(p.relatives)
        first = rel.first
        b.line(self.fk.pick((
            "SOCIAL: Pt's {rel} {name} called x2, updated on plan of care. Call back # {ph}.",
            "SOCIAL: {rel} {name} at bedside this evening, questions answered. Contact {ph}.",
            "SOCIAL: Pt's {rel} {name} called asking about discharge; told MD will call {ph}.",
        )), rel=rel.relation, name=phi(first, "RELATIVE"), ph=phi(rel.phone, "PHONE"))
        if r.random() < 0.2:
            b.line("{rel} moved pt's car from the ED lot (plate {pl}).", rel=rel.relation.capitalize(),
                   pl=phi(p.plate, "VEHICLE"))
        if r.random() < 0.3:
            b.line("Transfer to {f} being arranged by case mgmt.", f=self.hospital(p.facility))
        b.line("PLAN: {pl}. Will continue to monitor.", pl=self.fk.pick(("fall precautions", "strict I/O",
               "q4h neuro checks", "ambulate TID", "tele monitoring")))
        b.line("{n}", n=[phi(nurse.first if r.random() < 0.5 else f"{nurse.first} {nurse.last}", "DOCTOR"), ", RN"])

    # ---- assembly -------------------------------------------------------------------------

    def write(self, doc_id: str) -> Document:
        getattr(self, self.note_type)()
        p = self.p
        tags = set(self.tags)
        if p.second and self.secondary_mentioned:
            tags.add(p.second.tag)
        meta = {
            "patient_id": p.pid, "note_type": self.note_type, "age": p.age, "sex": p.sex,
            "race_ethnicity": p.race, "specialty": data.SPECIALTY[p.dx.group],
            "note_date": self.date.isoformat(), "all_caps": self.upper,
            "source": "synthetic", "generator_version": GENERATOR_VERSION,
        }
        return self.b.document(doc_id, meta=meta, label=p.dx.group, labels=sorted(tags))
