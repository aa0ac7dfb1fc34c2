"""Synthetic clinical notes with gold PHI spans, a diagnosis-group label and problem tags.

Patients are generated first (identity, demographics, identifiers, family, diagnosis), then
1-4 notes are written per patient, so several notes share ``meta.patient_id`` and the same PHI
values: a de-identifier can be tested for consistent surrogates across one patient's notes.
Everything is fake; no real patient data is used or derived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from domainfm.corpus.document import Document
from domainfm.synth import clinical_data as data
from domainfm.synth.fakes import Fakes

GENERATOR_VERSION = "1.0"

# Coarse HIPAA Safe Harbor category of each PHI label, stored on every span.
PHI_CATEGORY = {
    "PATIENT": "NAME", "RELATIVE": "NAME", "DOCTOR": "NAME", "DATE": "DATE", "AGE": "AGE",
    "PHONE": "CONTACT", "FAX": "CONTACT", "EMAIL": "CONTACT", "URL": "WEB", "IP": "WEB",
    "SSN": "ID", "MRN": "ID", "HEALTH_PLAN": "ID", "ACCOUNT": "ID", "LICENSE": "ID",
    "VEHICLE": "ID", "DEVICE": "ID", "STREET": "LOCATION", "CITY": "LOCATION",
    "STATE": "LOCATION", "ZIP": "LOCATION", "HOSPITAL": "LOCATION",
}
PHI_LABELS = tuple(PHI_CATEGORY)

NOTE_TYPES = (("admission_hp", 26), ("progress_note", 22), ("discharge_summary", 20),
              ("clinic_visit", 17), ("nursing_note", 15))


@dataclass
class Clinician:
    first: str
    last: str
    credential: str
    npi: str
    dea: str
    phone: str
    fax: str


@dataclass
class Relative:
    relation: str
    first: str
    last: str
    phone: str


@dataclass
class Patient:
    """One synthetic patient: every note about them reuses these values."""

    pid: str
    first: str
    middle: str
    last: str
    sex: str
    age: int
    race: str
    dob: date
    admit: date
    mrn: str
    ssn: str
    plan: tuple[str, str]
    account: str
    licence: str
    plate: str
    vin: str
    device: tuple[str, str] | None
    street: str
    city: str
    state: str
    zip: str
    phone: str
    email: str
    url: str
    ip: str
    occupation: str
    dx: data.Dx
    second: data.Dx | None
    comorbid: list[str]
    history: list[data.Dx] = field(default_factory=list)
    relatives: list[Relative] = field(default_factory=list)
    pcp: Clinician | None = None
    attending: Clinician | None = None
    hospital: str = ""
    facility: str = ""


def _clinicians(fk: Fakes, n: int) -> list[Clinician]:
    out = []
    for _ in range(n):
        first, last = fk.person()
        credential = fk.rng.choices(("MD", "DO", "NP", "PA-C"), (70, 10, 12, 8))[0]
        out.append(Clinician(first, last, credential, fk.digits(10), fk.letters(2) + fk.digits(7),
                             fk.phone(), fk.phone()))
    return out


def _hospitals(fk: Fakes, n: int) -> list[str]:
    saints = ("Mary", "Joseph", "Luke", "Francis", "Vincent", "Anne", "Elizabeth", "Jude")
    out: list[str] = []
    while len(out) < n:
        city, last = fk.us.city(), fk.us.last_name()
        name = fk.pick((
            f"{city} General Hospital", f"St. {fk.pick(saints)}'s Medical Center",
            f"{last.upper()} HOSPITAL", f"{last} Memorial Hospital", f"{city} Regional Medical Center",
            f"{city} Community Hospital", f"University of {fk.us.state()} Medical Center",
        ))
        if name not in out:
            out.append(name)
    return out


def _facilities(fk: Fakes, n: int) -> list[str]:
    return [fk.pick((f"{fk.us.last_name()} Nursing Home", f"{fk.us.city()} Rehabilitation Center",
                     f"{fk.us.last_name()} Family Clinic", f"{fk.us.city()} Skilled Nursing Facility",
                     f"{fk.us.last_name()} Assisted Living"))
            for _ in range(n)]


def _make_patient(fk: Fakes, index: int, group_offset: int, clinicians, hospitals, facilities) -> Patient:
    rng = fk.rng
    sex = rng.choice("FM")
    first, last = fk.person(sex)
    middle = fk.letters(1)
    # A sixth of patients are over 89, so AGE spans are frequent enough to evaluate.
    age = rng.randint(90, 104) if rng.random() < 0.17 else rng.randint(19, 89)
    admit = fk.date_between(date(2014, 1, 1), date(2023, 12, 31))
    dob = admit - timedelta(days=age * 365 + rng.randint(5, 360))
    race = rng.choices([r for r, _ in data.RACE_ETHNICITY], [w for _, w in data.RACE_ETHNICITY])[0]
    # Groups rotate so the label classes stay balanced at any corpus size.
    group = data.GROUPS[(index + group_offset) % len(data.GROUPS)]
    dx = rng.choice([d for d in data.DIAGNOSES if d.group == group])
    second = None
    if rng.random() < 0.35:
        second = rng.choice([d for d in data.DIAGNOSES if d.group != dx.group])
    # Past episodes of other groups' diagnoses, as real problem lists accumulate them.
    history = rng.sample([d for d in data.DIAGNOSES if d.group != dx.group], rng.choice((0, 0, 1, 2)))
    comorbid = rng.sample(sorted(data.COMORBIDITIES), rng.randint(1, 5))
    state = fk.us.state_abbr(include_territories=False) if rng.random() < 0.7 else fk.us.state()
    plan_name = fk.pick(("Medicare", "Medicaid", "BCBS", "Aetna", "UnitedHealthcare", "Cigna", "Humana"))
    plan_id = (f"{rng.randint(1, 9)}{fk.letters(2)}{rng.randint(1, 9)}-{fk.letters(2)}{rng.randint(1, 9)}-"
               f"{fk.letters(2)}{fk.digits(2)}" if plan_name == "Medicare" else fk.letters(3) + fk.digits(9))
    has_device = dx.group == "cardiology" and rng.random() < 0.5 or rng.random() < 0.12
    device = (fk.pick(data.PACEMAKERS), fk.letters(3) + fk.digits(6) + fk.letters(1)) if has_device else None
    relatives = []
    for _ in range(rng.randint(1, 3)):
        relation = rng.choice(("daughter", "son", "sister", "brother", "niece", "grandson",
                               "granddaughter", "spouse", "spouse"))
        rsex = {"daughter": "F", "sister": "F", "niece": "F", "granddaughter": "F",
                "spouse": "M" if sex == "F" else "F"}.get(relation, "M")
        if relation == "spouse":
            relation = "husband" if rsex == "M" else "wife"
        rfirst, rlast = fk.person(rsex)
        if relation in ("husband", "wife", "son", "daughter") and rng.random() < 0.6:
            rlast = last
        relatives.append(Relative(relation, rfirst, rlast, fk.phone()))
    return Patient(
        pid=f"P{index:04d}", first=first, middle=middle, last=last, sex=sex, age=age, race=race,
        dob=dob, admit=admit, mrn=fk.pick(("", "00", "MR")) + fk.digits(rng.choice((7, 8))),
        ssn=fk.us.ssn(), plan=(plan_name, plan_id), account=fk.digits(rng.choice((8, 10))),
        licence=fk.letters(1) + fk.digits(3) + "-" + fk.digits(4) + "-" + fk.digits(4),
        plate=fk.us.license_plate(), vin=fk.us.vin(), device=device,
        street=fk.us.street_address(), city=fk.us.city(), state=state,
        zip=fk.us.zipcode_plus4() if rng.random() < 0.2 else fk.us.zipcode(),
        phone=fk.phone(), email=fk.us.email(), url=fk.pick(("https://", "http://", "www.", "")) + fk.us.domain_name(2) + fk.pick(("/portal", "/mychart/login", "/patient", "")),
        ip=fk.us.ipv4_public() if rng.random() < 0.8 else fk.us.ipv4_private(),
        occupation=fk.pick(data.OCCUPATIONS), dx=dx, second=second, comorbid=comorbid, history=history,
        relatives=relatives, pcp=rng.choice(clinicians), attending=rng.choice(clinicians),
        hospital=rng.choice(hospitals), facility=rng.choice(facilities),
    )


def _note_counts(rng, n: int) -> list[int]:
    """1-4 notes per patient summing to ``n``, about 120 patients for 320 notes."""
    n_patients = max(1, min(n, round(n * 120 / 320)))
    counts = [1] * n_patients
    remaining = n - n_patients
    while remaining > 0:
        i = rng.randrange(n_patients)
        if counts[i] < 4 or all(c >= 4 for c in counts):
            counts[i] += 1
            remaining -= 1
    return counts


def generate_clinical(n: int, seed: int) -> list[Document]:
    """Generate ``n`` synthetic clinical notes.

    Args:
        n: number of notes (about ``n * 120 / 320`` patients, 1-4 notes each).
        seed: the same seed gives identical documents.

    Returns:
        Validated documents with PHI spans (labels in :data:`PHI_LABELS`), ``label`` the
        diagnosis group and ``labels`` the problem tags mentioned in the note.

    Example:
        >>> docs = generate_clinical(3, seed=1)
        >>> len(docs), docs[0].meta["source"]
        (3, 'synthetic')
    """
    from domainfm.synth.clinical_notes import NoteWriter

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    fk = Fakes(seed)
    clinicians = _clinicians(fk, 45)
    hospitals = _hospitals(fk, 18)
    facilities = _facilities(fk, 12)
    docs: list[Document] = []
    types = [t for t, _ in NOTE_TYPES]
    weights = [w for _, w in NOTE_TYPES]
    group_offset = fk.rng.randrange(len(data.GROUPS))
    for index, count in enumerate(_note_counts(fk.rng, n) if n else []):
        patient = _make_patient(fk, index + 1, group_offset, clinicians, hospitals, facilities)
        note_types = fk.rng.choices(types, weights, k=count)
        for k, note_type in enumerate(sorted(note_types, key=types.index)):
            writer = NoteWriter(fk, patient, note_type, clinicians, day=k)
            docs.append(writer.write(f"clin-{seed}-{patient.pid}-{k + 1}"))
    return docs
