"""The synthetic MIMIC-III corpus: schema, determinism, code distribution, note shape, evidence, splits."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import icd
from benchmark.io import sha256_file
from benchmark.prepare import SYNTHETIC_MARKER
from benchmark.synthetic import (
    CODE_COLUMNS,
    NOTE_COLUMNS,
    NOTE_WORDS,
    TITLE_COLUMNS,
    evidence_phrases,
    generate_corpus,
)

ADMISSIONS = 300
HEADERS = ("Admission Date:", "Discharge Date:", "Service:", "Chief Complaint:", "History of Present Illness:",
           "Past Medical History:", "Brief Hospital Course:", "Discharge Medications:", "Discharge Diagnosis:",
           "Discharge Condition:", "Discharge Instructions:", "Followup Instructions:")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic")
    return out, generate_corpus(out, ADMISSIONS, seed=0, progress=False)


@pytest.fixture(scope="module")
def tables(corpus: tuple[Path, dict]) -> dict[str, pd.DataFrame]:
    out, _ = corpus
    read = {name: pd.read_csv(out / f"{name}.csv.gz", dtype=str, keep_default_na=False)
            for name in ("NOTEEVENTS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")}
    for name in ("train", "dev", "test"):
        read[name] = pd.read_csv(out / f"{name}_full_hadm_ids.csv", header=None, names=["HADM_ID"], dtype=str)
    return read


@pytest.fixture(scope="module")
def summaries(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Loader-style text per HADM_ID: valid discharge summaries and addenda in chart order."""
    notes = tables["NOTEEVENTS"]
    keep = notes[(notes["CATEGORY"] == "Discharge summary") & (notes["ISERROR"] != "1")]
    keep = keep.assign(row=keep["ROW_ID"].astype(int)).sort_values(["HADM_ID", "CHARTDATE", "row"])
    return keep.groupby("HADM_ID")["TEXT"].agg("\n\n".join)


def _references(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = []
    for name, system in (("DIAGNOSES_ICD", "dx"), ("PROCEDURES_ICD", "px")):
        frame = tables[name]
        parts.append(pd.DataFrame({"HADM_ID": frame["HADM_ID"], "system": system,
                                   "code": [icd.to_dotted(raw, system) for raw in frame["ICD9_CODE"]]}))
    return pd.concat(parts, ignore_index=True)


def test_files_and_columns_are_mimic_iii(corpus: tuple[Path, dict], tables: dict[str, pd.DataFrame]) -> None:
    out, summary = corpus
    assert sorted(p.name for p in out.iterdir()) == sorted(summary["files"])
    assert "NOT real patient data" in (out / SYNTHETIC_MARKER).read_text()  # `bench prepare` reads the marker
    assert list(tables["NOTEEVENTS"].columns) == list(NOTE_COLUMNS)
    for name in ("DIAGNOSES_ICD", "PROCEDURES_ICD"):
        assert list(tables[name].columns) == list(CODE_COLUMNS) == ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM",
                                                                    "ICD9_CODE"]
    for name in ("D_ICD_DIAGNOSES", "D_ICD_PROCEDURES"):
        assert list(tables[name].columns) == list(TITLE_COLUMNS) == ["ROW_ID", "ICD9_CODE", "SHORT_TITLE",
                                                                     "LONG_TITLE"]
    # MIMIC's quoting: quoted header and strings, bare numbers; codes undotted.
    with gzip.open(out / "DIAGNOSES_ICD.csv.gz", "rt") as fh:
        assert fh.readline() == '"ROW_ID","SUBJECT_ID","HADM_ID","SEQ_NUM","ICD9_CODE"\n'
        assert re.fullmatch(r'1,\d+,\d+,1,"[0-9EV]\d{2,4}"\n', fh.readline())
    # Split files: one HADM_ID per line, no header.
    first = (out / "test_full_hadm_ids.csv").read_text().splitlines()[0]
    assert first.isdigit()
    for name, frame in tables.items():
        assert summary["rows"][f"{name}.csv.gz" if name.isupper() else f"{name}_full_hadm_ids.csv"] == len(frame)
    assert all(path.stat().st_mode & 0o444 == 0o444 for path in out.iterdir())  # world-readable, not 0600
    for column in ("ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM"):
        assert tables["DIAGNOSES_ICD"][column].str.fullmatch(r"\d+").all()
    assert tables["NOTEEVENTS"]["ROW_ID"].astype(int).tolist() == list(range(1, len(tables["NOTEEVENTS"]) + 1))


def test_same_seed_same_bytes_other_seed_differs(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = corpus
    again = generate_corpus(tmp_path / "again", ADMISSIONS, seed=0, progress=False)
    assert again == summary
    for name in summary["files"]:
        assert sha256_file(tmp_path / "again" / name) == sha256_file(out / name), name
    generate_corpus(tmp_path / "other", ADMISSIONS, seed=1, progress=False)
    for name in ("NOTEEVENTS.csv.gz", "DIAGNOSES_ICD.csv.gz", "test_full_hadm_ids.csv"):
        assert sha256_file(tmp_path / "other" / name) != sha256_file(out / name), name


def test_codes_per_admission_and_long_tail(tables: dict[str, pd.DataFrame]) -> None:
    refs = _references(tables)
    per_admission = refs.groupby("HADM_ID").size()
    assert 14 <= per_admission.mean() <= 18
    assert (refs.groupby(["HADM_ID", "code"]).size() == 1).all()  # no duplicate code per admission
    assert set(refs["system"]) == {"dx", "px"}
    counts = refs["code"].value_counts()
    assert counts.iloc[0] >= 20 * counts.median()  # Zipf-like: a heavy head and a long tail of rare codes
    assert (counts == 1).sum() > len(counts) / 4
    assert counts.index[0] in {"401.9", "428.0", "427.31"}  # MIMIC's most frequent codes head the ranking
    # SEQ_NUM counts 1..n within each admission and file.
    for name in ("DIAGNOSES_ICD", "PROCEDURES_ICD"):
        frame = tables[name].assign(seq=tables[name]["SEQ_NUM"].astype(int))
        assert (frame.groupby("HADM_ID")["seq"].apply(lambda s: list(s) == list(range(1, len(s) + 1)))).all()


def test_real_codes_with_leading_zeros_and_e_v_codes(tables: dict[str, pd.DataFrame]) -> None:
    dx_raw, px_raw = tables["DIAGNOSES_ICD"]["ICD9_CODE"], tables["PROCEDURES_ICD"]["ICD9_CODE"]
    assert dx_raw.str.startswith("0").any() and px_raw.str.startswith("0").any()
    assert dx_raw.str.startswith("E").any() and dx_raw.str.startswith("V").any()
    for raw, system in ((dx_raw, "dx"), (px_raw, "px")):
        known = set(icd.titles(system)["code"])
        assert {icd.to_dotted(code, system) for code in raw} <= known  # every code is a real CMS v32 code


def test_d_icd_tables_leave_out_a_few_used_codes(corpus: tuple[Path, dict], tables: dict[str, pd.DataFrame]) -> None:
    _, summary = corpus
    missing = set()
    pairs = (("DIAGNOSES_ICD", "D_ICD_DIAGNOSES", "dx"), ("PROCEDURES_ICD", "D_ICD_PROCEDURES", "px"))
    for codes, titles, system in pairs:
        used = set(tables[codes]["ICD9_CODE"])
        listed = set(tables[titles]["ICD9_CODE"])
        missing |= {icd.to_dotted(raw, system) for raw in used - listed}
        assert len(listed) > 0.99 * len(icd.titles(system))
        row = tables[titles].iloc[0]
        assert row["SHORT_TITLE"] and row["LONG_TITLE"]
    assert 1 <= len(missing) <= 10
    assert sorted(missing) == summary["omitted_from_d_icd"]


def test_note_rows_need_filtering(tables: dict[str, pd.DataFrame]) -> None:
    notes = tables["NOTEEVENTS"]
    categories = set(notes["CATEGORY"])
    assert {"Discharge summary", "Nursing/other", "Radiology", "ECG", "Physician "} <= categories
    assert (notes["ISERROR"] == "1").any() and set(notes["ISERROR"]) == {"", "1"}
    assert (notes["HADM_ID"] == "").any()  # outpatient rows without an admission, as in MIMIC
    summaries = notes[notes["CATEGORY"] == "Discharge summary"]
    assert ((summaries["ISERROR"] == "1") & (summaries["DESCRIPTION"] == "Report")).any()
    addenda = summaries[summaries["DESCRIPTION"] == "Addendum"]
    assert len(addenda) >= 10
    reports = summaries[(summaries["DESCRIPTION"] == "Report") & (summaries["ISERROR"] == "")]
    report_date = reports.set_index("HADM_ID")["CHARTDATE"]
    assert (addenda["CHARTDATE"].to_numpy() > report_date.loc[addenda["HADM_ID"]].to_numpy()).all()
    # Rows are interleaved: a discharge summary is not always next to its admission's other notes.
    assert notes["CATEGORY"].ne(notes["CATEGORY"].shift()).mean() > 0.3


def test_discharge_summaries_have_mimic_shape(tables: dict[str, pd.DataFrame]) -> None:
    notes = tables["NOTEEVENTS"]
    reports = notes[(notes["CATEGORY"] == "Discharge summary") & (notes["DESCRIPTION"] == "Report")
                    & (notes["ISERROR"] == "")]["TEXT"]
    words = reports.str.split().str.len()
    assert words.between(*NOTE_WORDS).all(), words.describe()
    for text in reports.head(20):
        for header in HEADERS:
            assert header in text, header
        assert re.search(r"\[\*\*\d{4}-\d{1,2}-\d{1,2}\*\*\]", text)
        assert text.count("[**") == text.count("**]") > 5
        assert not re.search(r"\[\*\*[^\]]*\n", text)  # a bracket never spans a line break
        assert "\n\n" in text
        lines = text.split("\n")
        header_lines = [line for line in lines if line.startswith(("Admission Date:", "Date of Birth:"))]
        assert max(len(line) for line in lines if line not in header_lines) <= 100  # hard-wrapped near 80
        assert sum(len(line) > 60 for line in lines) > 20  # ...and actually wrapped prose, not one word a line


def test_split_files_list_admissions_with_notes_and_codes(tables: dict[str, pd.DataFrame],
                                                          summaries: pd.Series) -> None:
    splits = {name: set(tables[name]["HADM_ID"]) for name in ("train", "dev", "test")}
    assert not (splits["train"] & splits["dev"]) and not (splits["train"] & splits["test"])
    assert not (splits["dev"] & splits["test"])
    coded = set(tables["DIAGNOSES_ICD"]["HADM_ID"]) | set(tables["PROCEDURES_ICD"]["HADM_ID"])
    with_summary = set(summaries.index)
    assert set().union(*splits.values()) == coded & with_summary
    assert coded - with_summary and with_summary - coded  # both kinds of incomplete admission exist
    assert len(splits["test"]) >= 60 and len(splits["dev"]) >= 20


def test_evidence_and_distractors(tables: dict[str, pd.DataFrame], summaries: pd.Series) -> None:
    refs = _references(tables)
    refs = refs[refs["HADM_ID"].isin(summaries.index)]
    flat = {hadm: " ".join(text.split()).lower() for hadm, text in summaries.items()}
    phrases = {code: [p.lower() for p in evidence_phrases(code)] for code in set(refs["code"])}
    found = np.array([any(p in flat[h] for p in phrases[c]) for h, c in zip(refs["HADM_ID"], refs["code"])])
    assert 0.75 <= found.mean() < 0.99  # most coded conditions have evidence; some have none
    # Distractors name conditions the admission does not have, so keyword lookup over-codes.
    negated = sum(len(re.findall(r"no evidence of |denies |negative for |ruled out", t)) for t in flat.values())
    historical = sum(len(re.findall(r"family history of |, resolved|now resolved|mother with ", t))
                     for t in flat.values())
    assert negated >= len(flat) and historical >= len(flat) / 2
    gold = refs.groupby("HADM_ID")["code"].apply(set)
    false_hits = 0
    for hadm in list(gold.index)[:50]:
        for match in re.finditer(r"no evidence of ([a-z ,]+?)\. ", flat[hadm]):
            false_hits += all(match.group(1) not in phrases[c] for c in gold[hadm])
    assert false_hits >= 10


def test_summary_reports_sizes_and_rejects_tiny_corpora(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = corpus
    assert summary["admissions"] == ADMISSIONS and summary["seed"] == 0
    assert sum(summary["splits"].values()) < ADMISSIONS
    assert summary["files"] == {name: (out / name).stat().st_size for name in summary["files"]}
    assert summary["codes_used"]["dx"] > 500 and summary["codes_used"]["px"] > 100
    with pytest.raises(ValueError, match="at least 20"):
        generate_corpus(tmp_path, 5, progress=False)
