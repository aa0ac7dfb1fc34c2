"""Vocabulary of the synthetic clinical notes: diagnoses by group, comorbidities, labs, headers.

Kept apart from the note generator so the medical content can be reviewed (and extended) without
reading generation code. Symptoms deliberately overlap between groups (chest pain is cardiac and
gastrointestinal, dyspnoea cardiac and pulmonary, fever everywhere) so that the document label
is learnable but not trivially separable by one keyword.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Dx:
    """One primary diagnosis and the findings that support it in a note.

    Args:
        tag: problem tag used in ``Document.labels``.
        group: diagnosis group, the document ``label``.
        names: ways the diagnosis is written in an assessment.
        implied: assessment phrasings that only imply it from findings (no diagnosis term).
        symptoms: presenting complaints (chief complaint and HPI).
        exam: abnormal examination findings.
        labs: abnormal lab ranges, ``name -> (low, high, unit)``.
        studies: imaging/ECG/other study results.
        plan: treatment steps for the plan.
    """

    tag: str
    group: str
    names: tuple[str, ...]
    implied: tuple[str, ...]
    symptoms: tuple[str, ...]
    exam: tuple[str, ...]
    labs: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    studies: tuple[str, ...] = ()
    plan: tuple[str, ...] = ()


GROUPS = ("cardiology", "pulmonology", "gastroenterology", "neurology", "endocrinology",
          "infectious_disease")

DIAGNOSES = (
    # cardiology
    Dx("acute_coronary_syndrome", "cardiology",
       ("NSTEMI", "non-ST elevation myocardial infarction", "acute coronary syndrome", "ACS - NSTEMI",
        "type 1 MI"),
       ("troponin rise with dynamic ST depressions in the lateral leads",
        "chest pressure with rising troponin and new T wave inversions"),
       ("chest pain", "substernal chest pressure", "shortness of breath", "diaphoresis", "nausea",
        "left arm heaviness"),
       ("diaphoretic, uncomfortable", "S4 gallop", "no JVD", "lungs clear"),
       {"Troponin I": (0.3, 6.5, "ng/mL")},
       ("ECG: 1-2 mm ST depressions V4-V6", "ECG: new TWI in I, aVL", "Echo: EF 45%, hypokinesis of the inferolateral wall"),
       ("aspirin 325 mg load then 81 mg daily", "heparin drip per ACS protocol", "atorvastatin 80 mg",
        "metoprolol tartrate 25 mg BID", "cardiology consult for cath", "serial troponins")),
    Dx("heart_failure_exacerbation", "cardiology",
       ("acute on chronic systolic heart failure", "CHF exacerbation", "decompensated HFrEF",
        "acute decompensated heart failure"),
       ("volume overload with elevated BNP and reduced EF", "weight gain, orthopnea and rales with BNP over 1000"),
       ("shortness of breath", "orthopnea", "leg swelling", "weight gain", "fatigue", "PND"),
       ("JVD to the angle of the jaw", "bibasilar crackles", "2+ pitting edema to the knees", "S3"),
       {"BNP": (850, 3500, "pg/mL")},
       ("CXR: cephalization, small bilateral effusions", "Echo: EF 25-30%, global hypokinesis"),
       ("furosemide 40 mg IV BID", "strict I/Os, daily weights", "fluid restriction 1.5 L",
        "continue carvedilol", "resume lisinopril when creatinine stable")),
    Dx("atrial_fibrillation_rvr", "cardiology",
       ("atrial fibrillation with rapid ventricular response", "AF with RVR", "new-onset atrial fibrillation",
        "paroxysmal afib, rate uncontrolled"),
       ("irregularly irregular tachycardia to the 140s without P waves",),
       ("palpitations", "lightheadedness", "shortness of breath", "chest discomfort", "fatigue"),
       ("irregularly irregular rhythm", "tachycardic to 140s", "no murmurs"),
       {"TSH": (0.8, 3.0, "mIU/L")},
       ("ECG: irregularly irregular narrow complex tachycardia, rate 138", "Echo: LA mildly dilated, EF 55%"),
       ("diltiazem 10 mg IV then drip", "metoprolol 25 mg PO q6h", "apixaban 5 mg BID (CHA2DS2-VASc 3)",
        "telemetry")),
    # pulmonology
    Dx("copd_exacerbation", "pulmonology",
       ("acute exacerbation of COPD", "AECOPD", "COPD exacerbation", "acute on chronic hypercapnic respiratory failure from COPD"),
       ("increased sputum and wheeze with CO2 retention in a longtime smoker",),
       ("shortness of breath", "productive cough", "wheezing", "chest tightness", "increased sputum"),
       ("diffuse expiratory wheezes", "prolonged expiratory phase", "accessory muscle use", "decreased air movement"),
       {"pCO2": (52, 72, "mmHg"), "pH": (7.28, 7.34, "")},
       ("CXR: hyperinflation, no focal consolidation", "ABG: 7.31/61/68"),
       ("prednisone 40 mg daily x5 days", "ipratropium-albuterol nebs q4h", "azithromycin 500 mg then 250 mg",
        "BiPAP overnight", "pulmonary rehab referral")),
    Dx("asthma_exacerbation", "pulmonology",
       ("status asthmaticus", "acute asthma exacerbation", "moderate persistent asthma, exacerbation"),
       ("reversible airflow obstruction with peak flow 40% of predicted",),
       ("wheezing", "shortness of breath", "cough", "chest tightness"),
       ("diffuse wheezes", "speaking in short phrases", "tachypneic"),
       {"Peak flow": (150, 260, "L/min")},
       ("CXR: no infiltrate", "Peak flow 210 L/min, 45% predicted"),
       ("albuterol nebs continuous x1h", "methylprednisolone 125 mg IV", "magnesium 2 g IV",
        "step up to ICS/LABA")),
    Dx("pulmonary_embolism", "pulmonology",
       ("acute pulmonary embolism", "bilateral PE", "submassive PE", "segmental pulmonary emboli"),
       ("filling defects in the segmental pulmonary arteries on CTA with RV strain",),
       ("pleuritic chest pain", "shortness of breath", "calf pain", "hemoptysis", "palpitations"),
       ("tachycardic", "right calf swelling", "lungs clear", "SpO2 89% on RA"),
       {"D-dimer": (2.1, 9.8, "mg/L FEU")},
       ("CTA chest: filling defects in the right lower lobe segmental arteries", "LE duplex: right popliteal DVT",
        "Echo: RV dilation"),
       ("enoxaparin 1 mg/kg BID", "transition to apixaban", "hypercoagulable workup as outpatient")),
    Dx("interstitial_lung_disease", "pulmonology",
       ("idiopathic pulmonary fibrosis", "interstitial lung disease", "ILD with hypoxemia"),
       ("basilar reticulation with honeycombing on HRCT",),
       ("progressive dyspnea on exertion", "dry cough", "fatigue"),
       ("fine velcro crackles at both bases", "digital clubbing"),
       {"DLCO": (35, 55, "% predicted")},
       ("HRCT: subpleural reticulation with honeycombing", "PFTs: restrictive pattern, DLCO 42%"),
       ("home oxygen 2 L", "start nintedanib", "pulmonary rehab", "ILD clinic follow-up")),
    # gastroenterology
    Dx("upper_gi_bleed", "gastroenterology",
       ("upper GI bleed", "UGIB", "bleeding duodenal ulcer", "acute blood loss anemia from upper GI source"),
       ("melena with hemoglobin drop and BUN elevation",),
       ("black stools", "coffee-ground emesis", "lightheadedness", "epigastric pain", "fatigue"),
       ("pale", "epigastric tenderness", "melena on rectal exam", "tachycardic"),
       {"Hgb": (6.2, 8.9, "g/dL"), "BUN": (38, 70, "mg/dL")},
       ("EGD: 1.5 cm clean-based duodenal ulcer", "EGD: gastric ulcer with visible vessel, clipped"),
       ("pantoprazole 80 mg IV then 8 mg/h", "transfuse 2 units PRBC", "GI consult for EGD",
        "hold aspirin", "H. pylori serology")),
    Dx("acute_pancreatitis", "gastroenterology",
       ("acute pancreatitis", "gallstone pancreatitis", "alcohol-induced pancreatitis"),
       ("epigastric pain radiating to the back with lipase over 3x the upper limit",),
       ("epigastric pain radiating to the back", "nausea", "vomiting", "abdominal pain"),
       ("epigastric tenderness with guarding", "hypoactive bowel sounds"),
       {"Lipase": (450, 3800, "U/L")},
       ("CT abdomen: peripancreatic fat stranding", "RUQ US: cholelithiasis, CBD 5 mm"),
       ("aggressive IV fluids LR 250 mL/h", "NPO then advance diet", "hydromorphone PRN pain",
        "surgery consult for cholecystectomy")),
    Dx("gerd_esophagitis", "gastroenterology",
       ("erosive esophagitis", "GERD with esophagitis", "reflux esophagitis", "noncardiac chest pain from reflux"),
       ("burning retrosternal pain relieved by antacids with negative troponins",),
       ("chest pain", "heartburn", "burning chest discomfort", "sour taste", "dysphagia"),
       ("mild epigastric tenderness", "lungs clear", "RRR"),
       {"Troponin I": (0.0, 0.02, "ng/mL")},
       ("EGD: LA grade B esophagitis", "ECG: NSR, no ischemic changes"),
       ("omeprazole 40 mg BID x8 weeks", "elevate head of bed", "avoid late meals", "GI follow-up")),
    Dx("cirrhosis_decompensated", "gastroenterology",
       ("decompensated alcoholic cirrhosis", "cirrhosis with ascites", "hepatic encephalopathy",
        "ESLD"),
       ("ascites, asterixis and rising INR in a patient with heavy alcohol use",),
       ("abdominal distension", "confusion", "jaundice", "leg swelling", "fatigue"),
       ("tense ascites", "asterixis", "scleral icterus", "spider angiomata"),
       {"Total bilirubin": (3.1, 8.4, "mg/dL"), "INR": (1.7, 2.8, "")},
       ("Paracentesis: SAAG 1.6, PMN 80", "RUQ US: nodular liver, splenomegaly"),
       ("lactulose 30 mL TID titrate to 3 BM", "rifaximin 550 mg BID", "spironolactone 100 mg + furosemide 40 mg",
        "MELD calculation, hepatology referral")),
    # neurology
    Dx("ischemic_stroke", "neurology",
       ("acute ischemic stroke", "left MCA stroke", "CVA", "cardioembolic stroke"),
       ("new right hemiparesis and aphasia with restricted diffusion on MRI",),
       ("right-sided weakness", "slurred speech", "facial droop", "confusion", "dizziness"),
       ("right pronator drift", "expressive aphasia", "right facial droop", "NIHSS 7"),
       {"LDL": (120, 190, "mg/dL")},
       ("MRI brain: restricted diffusion in the left MCA territory", "CTA head/neck: no LVO",
        "CT head: no hemorrhage"),
       ("tPA not given (outside window)", "aspirin 325 mg then 81 mg", "atorvastatin 80 mg",
        "permissive hypertension", "PT/OT/speech", "neurology stroke service")),
    Dx("seizure", "neurology",
       ("new-onset seizure", "generalized tonic-clonic seizure", "breakthrough seizures", "epilepsy"),
       ("witnessed tonic-clonic activity with postictal confusion and tongue laceration",),
       ("seizure", "confusion", "headache", "fall", "tongue biting"),
       ("postictal, oriented x1", "lateral tongue laceration", "no focal deficits"),
       {"CK": (400, 2400, "U/L"), "Lactate": (2.4, 5.1, "mmol/L")},
       ("EEG: left temporal sharp waves", "MRI brain: no acute process"),
       ("levetiracetam 500 mg BID", "seizure precautions", "no driving per state law", "neurology follow-up")),
    Dx("migraine", "neurology",
       ("migraine without aura", "status migrainosus", "chronic migraine"),
       ("recurrent unilateral throbbing headache with photophobia and normal imaging",),
       ("headache", "nausea", "photophobia", "blurred vision", "dizziness"),
       ("photophobic", "neuro exam nonfocal", "no meningismus"),
       {},
       ("CT head: negative",),
       ("metoclopramide 10 mg IV + diphenhydramine", "ketorolac 30 mg IV", "start topiramate prophylaxis",
        "headache diary")),
    Dx("parkinson_disease", "neurology",
       ("Parkinson's disease", "idiopathic parkinsonism", "PD with motor fluctuations"),
       ("resting tremor, rigidity and bradykinesia responsive to levodopa",),
       ("tremor", "falls", "slow movements", "confusion", "constipation"),
       ("pill-rolling resting tremor", "cogwheel rigidity", "shuffling gait", "masked facies"),
       {},
       ("DaTscan: reduced striatal uptake",),
       ("carbidopa-levodopa 25/100 TID", "PT for gait", "fall precautions", "movement disorders clinic")),
    # endocrinology
    Dx("diabetic_ketoacidosis", "endocrinology",
       ("diabetic ketoacidosis", "DKA", "DKA, moderate severity"),
       ("anion gap metabolic acidosis with glucose over 400 and positive ketones",),
       ("nausea", "vomiting", "abdominal pain", "polyuria", "fatigue", "confusion"),
       ("dry mucous membranes", "Kussmaul respirations", "fruity odor"),
       {"Glucose": (380, 720, "mg/dL"), "HCO3": (7, 15, "mmol/L"), "Beta-hydroxybutyrate": (4.1, 9.2, "mmol/L")},
       ("VBG: pH 7.12",),
       ("insulin drip per DKA protocol", "IV fluids with potassium repletion", "q1h glucose, q4h BMP",
        "transition to glargine when gap closed", "diabetes educator")),
    Dx("hypoglycemia", "endocrinology",
       ("hypoglycemia", "insulin-induced hypoglycemia", "recurrent hypoglycemia on sulfonylurea"),
       ("fingerstick glucose of 38 with neuroglycopenic symptoms resolving with dextrose",),
       ("confusion", "sweating", "tremor", "fall", "palpitations"),
       ("diaphoretic", "confused, improved after D50", "no focal deficits"),
       {"Glucose": (28, 52, "mg/dL")},
       (),
       ("D50 then D10 infusion", "hold glipizide", "reduce basal insulin by 20%", "endocrine follow-up")),
    Dx("thyrotoxicosis", "endocrinology",
       ("thyrotoxicosis", "Graves disease", "hyperthyroidism", "thyroid storm"),
       ("suppressed TSH with elevated free T4 and a diffusely enlarged gland",),
       ("palpitations", "weight loss", "heat intolerance", "tremor", "anxiety", "diarrhea"),
       ("diffuse goiter with bruit", "fine tremor", "lid lag", "tachycardic"),
       {"TSH": (0.003, 0.05, "mIU/L"), "Free T4": (3.2, 6.8, "ng/dL")},
       ("Thyroid uptake scan: diffuse increased uptake 62%",),
       ("methimazole 20 mg daily", "propranolol 20 mg TID", "endocrinology follow-up for RAI")),
    Dx("hyponatremia_siadh", "endocrinology",
       ("hyponatremia", "SIADH", "euvolemic hyponatremia"),
       ("serum sodium of 121 with urine osm 480 in a euvolemic patient",),
       ("confusion", "fatigue", "nausea", "falls", "headache"),
       ("euvolemic", "mild confusion", "no edema"),
       {"Sodium": (116, 127, "mmol/L"), "Urine osm": (380, 640, "mOsm/kg")},
       (),
       ("fluid restriction 1 L", "salt tabs 1 g TID", "Na q6h, correct no more than 8 mEq/24h",
        "review meds (SSRI, thiazide)")),
    Dx("adrenal_insufficiency", "endocrinology",
       ("adrenal insufficiency", "Addison disease", "adrenal crisis"),
       ("low AM cortisol with hyperkalemia and hyponatremia",),
       ("fatigue", "weight loss", "abdominal pain", "lightheadedness", "nausea"),
       ("hyperpigmented palmar creases", "orthostatic"),
       {"AM cortisol": (1.0, 3.5, "mcg/dL"), "Potassium": (5.4, 6.3, "mmol/L")},
       ("Cosyntropin stim: cortisol 6.1 at 60 min",),
       ("hydrocortisone 100 mg IV then taper", "fludrocortisone 0.1 mg", "medic alert bracelet", "stress-dose education")),
    # infectious disease
    Dx("urosepsis", "infectious_disease",
       ("sepsis secondary to UTI", "urosepsis", "acute pyelonephritis with sepsis", "severe sepsis, urinary source"),
       ("fever, leukocytosis and lactate elevation with pyuria and E. coli in blood cultures",),
       ("fever", "chills", "dysuria", "flank pain", "confusion", "nausea"),
       ("febrile to 39.2", "CVA tenderness", "tachycardic", "hypotensive to 88/50"),
       {"WBC": (14.5, 26.0, "K/uL"), "Lactate": (2.3, 4.8, "mmol/L")},
       ("UA: >50 WBC, nitrite positive", "Blood cultures: E. coli 2/2 bottles", "CT A/P: right perinephric stranding"),
       ("ceftriaxone 1 g IV daily", "30 mL/kg crystalloid bolus", "follow cultures", "narrow to PO when afebrile 48h")),
    Dx("cellulitis", "infectious_disease",
       ("cellulitis", "left lower extremity cellulitis", "nonpurulent cellulitis", "abscess with surrounding cellulitis"),
       ("spreading erythema, warmth and tenderness of the leg with fever",),
       ("leg redness", "leg swelling", "fever", "pain", "chills"),
       ("erythema and warmth of the left shin, borders marked", "no fluctuance", "tender"),
       {"WBC": (11.5, 17.0, "K/uL"), "CRP": (45, 180, "mg/L")},
       ("LE duplex: no DVT",),
       ("cefazolin 2 g IV q8h", "vancomycin if MRSA risk", "elevate leg", "mark borders")),
    Dx("community_acquired_pneumonia", "infectious_disease",
       ("community-acquired pneumonia", "CAP", "right lower lobe pneumonia", "multifocal pneumonia"),
       ("fever, productive cough and a new right lower lobe consolidation",),
       ("fever", "productive cough", "shortness of breath", "chills", "pleuritic chest pain"),
       ("rhonchi at the right base", "egophony RLL", "febrile"),
       {"WBC": (13.0, 22.0, "K/uL"), "Procalcitonin": (0.8, 6.5, "ng/mL")},
       ("CXR: RLL consolidation", "Sputum culture: Streptococcus pneumoniae"),
       ("ceftriaxone 1 g + azithromycin 500 mg", "incentive spirometry", "blood and sputum cultures",
        "switch to amoxicillin-clavulanate on discharge")),
    Dx("clostridioides_difficile", "infectious_disease",
       ("C. difficile colitis", "Clostridioides difficile infection", "CDI, severe"),
       ("profuse watery diarrhea after recent antibiotics with positive toxin PCR",),
       ("diarrhea", "abdominal pain", "fever", "nausea", "fatigue"),
       ("diffuse abdominal tenderness", "hyperactive bowel sounds", "dry mucous membranes"),
       {"WBC": (15.0, 28.0, "K/uL")},
       ("C. diff PCR positive, toxin EIA positive",),
       ("oral vancomycin 125 mg QID x10 days", "contact precautions", "stop PPI", "ID consult")),
    Dx("bacterial_meningitis", "infectious_disease",
       ("bacterial meningitis", "acute meningitis", "pneumococcal meningitis"),
       ("fever, neck stiffness and CSF neutrophilic pleocytosis with low glucose",),
       ("headache", "fever", "neck stiffness", "confusion", "photophobia"),
       ("nuchal rigidity", "positive Kernig sign", "febrile", "somnolent"),
       {"CSF WBC": (850, 4200, "cells/uL"), "CSF glucose": (12, 35, "mg/dL")},
       ("LP: opening pressure 32 cm H2O", "CT head: no mass effect"),
       ("dexamethasone 10 mg q6h", "vancomycin + ceftriaxone 2 g q12h", "droplet precautions", "ID consult")),
)

# Comorbidity tag -> (PMH phrasings, typical medications with doses).
COMORBIDITIES = {
    "hypertension": (("HTN", "hypertension", "essential hypertension"),
                     ("lisinopril 20 mg daily", "amlodipine 10 mg daily", "hydrochlorothiazide 25 mg daily")),
    "diabetes": (("DM2", "type 2 diabetes", "diabetes mellitus type II, insulin-requiring", "T2DM"),
                 ("metformin 1000 mg BID", "insulin glargine 24 units qHS", "glipizide 5 mg daily")),
    "hyperlipidemia": (("HLD", "hyperlipidemia", "dyslipidemia"),
                       ("atorvastatin 40 mg daily", "simvastatin 20 mg qHS", "rosuvastatin 10 mg")),
    "cad": (("CAD s/p PCI", "coronary artery disease", "CAD s/p CABG"),
            ("aspirin 81 mg daily", "clopidogrel 75 mg daily", "nitroglycerin 0.4 mg SL PRN")),
    "chf": (("HFrEF (EF 35%)", "CHF", "heart failure with preserved EF"),
            ("carvedilol 12.5 mg BID", "furosemide 40 mg daily", "sacubitril-valsartan 24/26 mg BID")),
    "afib": (("paroxysmal atrial fibrillation", "AF on anticoagulation", "afib"),
             ("apixaban 5 mg BID", "warfarin 5 mg daily", "metoprolol succinate 50 mg daily")),
    "copd": (("COPD", "COPD on 2L home O2", "emphysema"),
             ("tiotropium 18 mcg inhaled daily", "albuterol HFA 2 puffs q4h PRN", "fluticasone-salmeterol 250/50 BID")),
    "asthma": (("asthma", "mild intermittent asthma"), ("albuterol inhaler PRN", "montelukast 10 mg qHS")),
    "ckd": (("CKD stage 3", "chronic kidney disease, baseline Cr 1.8", "CKD IV"),
            ("calcitriol 0.25 mcg daily", "sodium bicarbonate 650 mg BID")),
    "depression": (("depression", "major depressive disorder", "MDD"),
                   ("sertraline 50 mg daily", "escitalopram 10 mg daily", "bupropion XL 150 mg")),
    "anxiety": (("anxiety", "generalized anxiety disorder"), ("buspirone 10 mg BID", "hydroxyzine 25 mg PRN")),
    "hypothyroidism": (("hypothyroidism", "s/p thyroidectomy, on replacement"), ("levothyroxine 75 mcg daily",)),
    "gerd": (("GERD", "reflux"), ("omeprazole 20 mg daily", "famotidine 20 mg BID")),
    "osteoarthritis": (("OA of both knees", "osteoarthritis"), ("acetaminophen 650 mg q6h PRN", "meloxicam 7.5 mg")),
    "obesity": (("obesity (BMI 36)", "morbid obesity"), ()),
    "dementia": (("Alzheimer dementia", "vascular dementia", "mild cognitive impairment"), ("donepezil 10 mg qHS",)),
    "tobacco_use": (("tobacco use, 40 pack-years", "active smoker"), ("nicotine patch 21 mg daily",)),
    "alcohol_use": (("alcohol use disorder", "EtOH abuse"), ("thiamine 100 mg daily", "folic acid 1 mg daily")),
    "epilepsy": (("seizure disorder", "epilepsy"), ("levetiracetam 750 mg BID",)),
    "hiv": (("HIV, undetectable viral load", "HIV on ART"), ("bictegravir/emtricitabine/tenofovir AF daily",)),
}

ALL_SYMPTOMS = sorted({s for dx in DIAGNOSES for s in dx.symptoms})

NORMAL_LABS = {
    "Na": (135, 145, ""), "K": (3.5, 5.0, ""), "Cl": (98, 107, ""), "HCO3": (22, 28, ""),
    "BUN": (8, 22, ""), "Cr": (0.6, 1.2, ""), "Glucose": (80, 160, ""), "WBC": (4.5, 10.5, ""),
    "Hgb": (11.5, 15.8, ""), "Plt": (150, 400, ""),
}

HEADERS = {
    "cc": ("CHIEF COMPLAINT:", "Chief Complaint:", "CC:", "REASON FOR VISIT:", "Reason for admission:"),
    "hpi": ("HISTORY OF PRESENT ILLNESS:", "HPI:", "History of Present Illness:", "HISTORY:"),
    "pmh": ("PAST MEDICAL HISTORY:", "PMH:", "Past Medical History:", "PMHx:"),
    "psh": ("PAST SURGICAL HISTORY:", "PSH:", "Past Surgical History:"),
    "meds": ("MEDICATIONS:", "Current Medications:", "MEDS:", "Medications on Admission:", "Home Medications:"),
    "allergies": ("ALLERGIES:", "Allergies:", "ALL:"),
    "fh": ("FAMILY HISTORY:", "Family History:", "FH:"),
    "sh": ("SOCIAL HISTORY:", "Social History:", "SH:", "SOCIAL HX:"),
    "ros": ("REVIEW OF SYSTEMS:", "ROS:", "Review of Systems:"),
    "exam": ("PHYSICAL EXAMINATION:", "PHYSICAL EXAM:", "Physical Exam:", "EXAM:", "PE:"),
    "labs": ("LABS:", "Data:", "LABORATORY DATA:", "Pertinent Results:", "Labs/Imaging:"),
    "ap": ("ASSESSMENT AND PLAN:", "Assessment and Plan:", "A/P:", "ASSESSMENT/PLAN:", "IMPRESSION AND PLAN:"),
    "course": ("HOSPITAL COURSE:", "Hospital Course:", "BRIEF HOSPITAL COURSE:"),
    "dc_instr": ("DISCHARGE INSTRUCTIONS:", "Discharge Instructions:", "INSTRUCTIONS:"),
    "dc_meds": ("DISCHARGE MEDICATIONS:", "Discharge Medications:"),
    "followup": ("FOLLOW-UP:", "Followup Instructions:", "FOLLOW UP:"),
}

SURGERIES = ("appendectomy", "cholecystectomy", "right total knee replacement", "C-section x2",
             "hernia repair", "tonsillectomy", "CABG x3", "cataract surgery OU", "TURP", "hysterectomy")
ALLERGENS = ("penicillin (rash)", "sulfa (hives)", "codeine (nausea)", "iodinated contrast (anaphylaxis)",
             "latex", "shellfish", "lisinopril (angioedema)", "morphine (itching)")
RACE_ETHNICITY = (("White", 45), ("Black or African American", 18), ("Hispanic or Latino", 17),
                  ("Asian", 8), ("American Indian or Alaska Native", 3), ("Native Hawaiian or Pacific Islander", 2),
                  ("Two or more races", 4), ("Unknown/declined", 3))
RACE_WORDS = {"White": "Caucasian", "Black or African American": "African American",
              "Hispanic or Latino": "Hispanic", "Asian": "Asian", "American Indian or Alaska Native": "Native American",
              "Native Hawaiian or Pacific Islander": "Pacific Islander", "Two or more races": "",
              "Unknown/declined": ""}
SPECIALTY = {"cardiology": "Cardiology", "pulmonology": "Pulmonary", "gastroenterology": "Gastroenterology",
             "neurology": "Neurology", "endocrinology": "Endocrinology", "infectious_disease": "Infectious Disease"}
PACEMAKERS = ("Medtronic Azure XT DR", "Boston Scientific Accolade", "St. Jude Assurity MRI", "Biotronik Edora 8 DR")
OCCUPATIONS = ("retired teacher", "truck driver", "nurse", "construction worker", "accountant",
               "retired machinist", "cashier", "farmer", "software engineer", "homemaker", "veteran, retired",
               "bus driver", "retired postal worker", "hairdresser")
