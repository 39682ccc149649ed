"""`bench demo-data | prepare | sample` through the CLI: output, --help, and every bad input as one line + exit 2."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _prepare(capsys, study: Path, corpus: Path, *extra: str) -> tuple[int, str, str]:
    return _run(capsys, "--study", str(study), "prepare", "--mimic", str(corpus), "--splits", str(corpus), *extra)


def _assert_user_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_prepare_and_sample(capsys, tiny_corpus: Path, tmp_path: Path):
    study = tmp_path / "study"
    code, out, err = _prepare(capsys, study, tiny_corpus)
    assert code == 0, err
    assert "admissions: 2 train / 1 dev / 2 test (5 total)" in out
    assert "label space: 8 codes (6 dx, 2 px)" in out and "1 missing (V99.99)" in out
    assert "tokens per note: mean" in out and "codes per note: mean 2.2" in out
    code, out, _ = _prepare(capsys, study, tiny_corpus)
    assert code == 0 and "already prepared from these inputs" in out
    code, out, err = _run(capsys, "--study", str(study), "sample", "--n", "2", "--seed", "3")
    assert code == 0, err
    assert "shortlist rule: test-codes" in out and "shortlist: 5 codes" in out
    assert "vocabulary coverage: 100.0% of the 5 sampled reference codes" in out
    assert sorted((study / "sample.csv").read_text().split()) == ["100004", "100005"]


def test_help_explains_each_command(capsys):
    for command, words in (("demo-data", ["NOTEEVENTS", "--admissions", "--seed", "split"]),
                           ("prepare", ["documents.parquet", "references.parquet", "codes.parquet", "--force",
                                        "stream", "_full_hadm_ids.csv"]),
                           ("sample", ["sample.csv", "shortlist.txt", "test-codes", "coverage", "--n"])):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        for word in words:
            assert word in out, (command, word)


# --- bad input: each is one line on stderr, exit code 2, naming the file and the problem --------------

def _rewrite_csv(path: Path, edit) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame).to_csv(path, index=False)


def _rewrite_notes(corpus: Path, edit) -> None:
    path = corpus / "NOTEEVENTS.csv.gz"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        edit(frame).to_csv(fh, index=False)


def test_missing_mimic_file(capsys, tiny_corpus, tmp_path):
    (tiny_corpus / "D_ICD_PROCEDURES.csv").unlink()
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus), "D_ICD_PROCEDURES.csv.gz: file not found")


def test_missing_split_file(capsys, tiny_corpus, tmp_path):
    (tiny_corpus / "dev_full_hadm_ids.csv").unlink()
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus), "dev_full_hadm_ids.csv: file not found")


def test_missing_column(capsys, tiny_corpus, tmp_path):
    _rewrite_csv(tiny_corpus / "DIAGNOSES_ICD.csv", lambda f: f.drop(columns=["ICD9_CODE"]))
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus), "DIAGNOSES_ICD.csv: missing column ICD9_CODE")


def test_missing_note_column(capsys, tiny_corpus, tmp_path):
    _rewrite_notes(tiny_corpus, lambda f: f.drop(columns=["ISERROR"]))
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus), "NOTEEVENTS.csv.gz: missing column ISERROR")


def test_split_ids_missing_from_notes(capsys, tiny_corpus, tmp_path):
    path = tiny_corpus / "test_full_hadm_ids.csv"
    path.write_text(path.read_text() + "100007\n100099\n")
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus),
                       "NOTEEVENTS.csv.gz: 2 of 8 split HADM_IDs have no discharge summary", "100007, 100099")


def test_empty_note(capsys, tiny_corpus, tmp_path):
    def blank(frame):
        frame.loc[frame["ROW_ID"] == "31", "TEXT"] = "  \n "
        return frame
    _rewrite_notes(tiny_corpus, blank)
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus),
                       "NOTEEVENTS.csv.gz ROW_ID 31", "HADM_ID 100003 (dev split) is empty")


def test_duplicate_split_membership(capsys, tiny_corpus, tmp_path):
    path = tiny_corpus / "dev_full_hadm_ids.csv"
    path.write_text(path.read_text() + "100004\n")
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus), "test_full_hadm_ids.csv line 1",
                       "HADM_ID 100004 is listed also in", "dev_full_hadm_ids.csv")


def test_malformed_split_line(capsys, tiny_corpus, tmp_path):
    path = tiny_corpus / "train_full_hadm_ids.csv"
    path.write_text(path.read_text() + "10x01\n")
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus), "train_full_hadm_ids.csv line 3",
                       "'10x01' is not a HADM_ID")


def test_malformed_code(capsys, tiny_corpus, tmp_path):
    def corrupt(frame):
        frame.loc[frame["ROW_ID"] == "6", "ICD9_CODE"] = "4X19"
        return frame
    _rewrite_csv(tiny_corpus / "DIAGNOSES_ICD.csv", corrupt)
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus),
                       "DIAGNOSES_ICD.csv line 7 (ROW_ID 6)", "malformed dx ICD-9 code '4X19'")


def test_code_without_admission(capsys, tiny_corpus, tmp_path):
    def orphan(frame):
        frame.loc[frame["ROW_ID"] == "2", "HADM_ID"] = ""
        return frame
    _rewrite_csv(tiny_corpus / "PROCEDURES_ICD.csv", orphan)
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus),
                       "PROCEDURES_ICD.csv line 3 (ROW_ID 2): a code without a HADM_ID")


def test_truncated_noteevents(capsys, tiny_corpus, tmp_path):
    path = tiny_corpus / "NOTEEVENTS.csv.gz"
    path.write_bytes(path.read_bytes()[:-40])
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus), "NOTEEVENTS.csv.gz: cannot be")


def test_different_inputs_refused(capsys, tiny_corpus, tmp_path):
    assert _prepare(capsys, tmp_path / "s", tiny_corpus)[0] == 0
    path = tiny_corpus / "dev_full_hadm_ids.csv"
    path.write_text(path.read_text() + "100006\n")
    _assert_user_error(_prepare(capsys, tmp_path / "s", tiny_corpus), "step 'prepare' was made from different",
                       "--force")
    assert _prepare(capsys, tmp_path / "s", tiny_corpus, "--force")[0] == 0


def test_sample_errors(capsys, tiny_corpus, tmp_path):
    study = str(tmp_path / "s")
    _assert_user_error(_run(capsys, "--study", study, "sample"), "documents.parquet does not exist",
                       "run `bench prepare`")
    assert _prepare(capsys, tmp_path / "s", tiny_corpus)[0] == 0
    _assert_user_error(_run(capsys, "--study", study, "sample"), "test split has 2 notes, fewer than --n 508")
    _assert_user_error(_run(capsys, "--study", study, "sample", "--n", "2", "--shortlist", str(tmp_path / "x.txt")),
                       "x.txt: shortlist file not found")


def test_demo_data(capsys, tmp_path):
    out_dir = tmp_path / "corpus"
    code, out, err = _run(capsys, "demo-data", "--out", str(out_dir), "--admissions", "40", "--seed", "1")
    assert code == 0, err
    assert "40 admissions" in out
    for name in ("NOTEEVENTS.csv.gz", "DIAGNOSES_ICD.csv.gz", "PROCEDURES_ICD.csv.gz", "D_ICD_DIAGNOSES.csv.gz",
                 "D_ICD_PROCEDURES.csv.gz", "train_full_hadm_ids.csv", "dev_full_hadm_ids.csv",
                 "test_full_hadm_ids.csv"):
        assert (out_dir / name).is_file(), name
    _assert_user_error(_run(capsys, "demo-data", "--out", str(tmp_path / "c2"), "--admissions", "5"),
                       "--admissions 5: admissions must be at least 20")
