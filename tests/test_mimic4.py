"""MIMIC-IV through the CLI: the synthetic corpus (`demo-data --schema mimic4`), `prepare` on it, and bad inputs."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from benchmark import codesystems, mimic4
from benchmark.cli import main
from benchmark.io import sha256_file
from tests.test_cli_study import _assert_user_error, _run
from benchmark.synthetic_mimic4 import (
    DIAGNOSES_COLUMNS,
    DISCHARGE_COLUMNS,
    FULL_SCALE_ICD9_FRACTION,
    PROCEDURES_COLUMNS,
    SPLIT_FILE,
    TITLE_COLUMNS,
    generate_mimic4_corpus,
)

def _prepare(capsys, study: Path, corpus: Path, *extra: str, splits: Path | None = None) -> tuple[int, str, str]:
    return _run(capsys, "--study", str(study), "prepare", "--mimic", str(corpus),
                "--splits", str(splits or corpus / SPLIT_FILE), *extra)


def _table(corpus: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(corpus / f"{name}.csv.gz", dtype=str, keep_default_na=False)


def _rewrite(corpus: Path, name: str, frame: pd.DataFrame) -> None:
    frame.to_csv(corpus / f"{name}.csv.gz", index=False, compression="gzip")


@pytest.fixture
def corpus(mimic4_corpus: Path) -> Path:
    return mimic4_corpus


@pytest.fixture
def editable(corpus: Path, tmp_path: Path) -> Path:
    """A copy of the corpus a test may damage."""
    return Path(shutil.copytree(corpus, tmp_path / "corpus"))


def _expected(corpus: Path, min_count: int) -> tuple[dict[str, int], dict[str, int]]:
    """Admissions per split and label space per kind, recomputed from the raw files (Edin's rule)."""
    splits = feather.read_table(corpus / SPLIT_FILE).to_pandas()
    splits["split"] = splits["split"].map({"train": "train", "val": "dev", "test": "test"})
    parts = []
    for name, kind in (("hosp/diagnoses_icd", "dx"), ("hosp/procedures_icd", "px")):
        frame = _table(corpus, name)
        frame = frame[frame["icd_version"] == "10"]
        parts.append(pd.DataFrame({"hadm_id": frame["hadm_id"].astype("int64"), "kind": kind,
                                   "code": frame["icd_code"]}).drop_duplicates())
    codes = pd.concat(parts)
    codes = codes[codes["hadm_id"].isin(splits["_id"])]
    counts = codes.groupby(["kind", "code"]).size()
    kept = counts[counts >= min_count].reset_index()[["kind", "code"]]
    codes = codes.merge(kept, on=["kind", "code"])
    admissions = splits[splits["_id"].isin(codes["hadm_id"])]["split"].value_counts().to_dict()
    return admissions, kept["kind"].value_counts().to_dict()


@pytest.mark.parametrize("min_count", [10, 0])
def test_prepare_counts_per_split_and_label_space(capsys, corpus: Path, tmp_path: Path, min_count: int) -> None:
    study = tmp_path / "study"
    extra = [] if min_count == 10 else ["--min-code-count", str(min_count)]  # 10 is MIMIC-IV's default
    code, out, err = _prepare(capsys, study, corpus, *extra)
    assert code == 0, err
    admissions, space = _expected(corpus, min_count)
    total = sum(admissions.values())
    assert (f"admissions: {admissions['train']:,} train / {admissions['dev']:,} dev / {admissions['test']:,} test "
            f"({total:,} total)") in out
    assert f"label space: {space['dx'] + space['px']:,} codes ({space['dx']:,} dx, {space['px']:,} px)" in out
    assert out.splitlines()[0].startswith("dataset: MIMIC-IV, ICD-10-CM/PCS")
    assert "note/discharge:" in out and "without hadm_id" in out

    references = pd.read_parquet(study / "references.parquet")
    for kind, system in (("dx", codesystems.get(10, "dx")), ("px", codesystems.get(10, "px"))):
        codes = references.loc[references["system"] == kind, "code"]
        assert len(codes) and all(system.is_valid(c) and system.normalize(c) == c for c in codes.unique())
    catalogue = pd.read_parquet(study / "codes.parquet")
    assert catalogue["chapter"].isin(codesystems.get(10, "dx").chapters() + codesystems.get(10, "px").chapters()).all()
    record = tomllib.loads((study / "study.toml").read_text())["steps"]["prepare"]
    assert record["code_system"] == {"icd_version": 10, "dx": "ICD-10-CM", "px": "ICD-10-PCS"}
    assert record["rules"]["min_code_count"] == min_count and record["dataset"] == "MIMIC-IV"

    code, out, _ = _prepare(capsys, study, corpus, *extra)  # idempotent
    assert code == 0 and "already prepared from these inputs" in out
    _assert_user_error(_prepare(capsys, study, corpus, "--icd-version", "9", "--force"),
                       "prepared as ICD-10", "would mix code systems")


def test_folder_of_id_files_gives_the_same_study(capsys, corpus: Path, tmp_path: Path) -> None:
    splits = feather.read_table(corpus / SPLIT_FILE).to_pandas()
    folder = tmp_path / "splits"
    folder.mkdir()
    for edin, ours in (("train", "train"), ("val", "dev"), ("test", "test")):
        ids = splits.loc[splits["split"] == edin, "_id"]
        (folder / f"{ours}_full_hadm_ids.csv").write_text("".join(f"{h}\n" for h in ids))
    code, out, err = _prepare(capsys, tmp_path / "a", corpus, splits=folder)
    assert code == 0, err
    assert _prepare(capsys, tmp_path / "b", corpus)[1].splitlines()[:3] == out.splitlines()[:3]
    assert (pd.read_parquet(tmp_path / "a" / "references.parquet")
            .equals(pd.read_parquet(tmp_path / "b" / "references.parquet")))


def test_sample_works_unchanged_on_an_icd10_study(capsys, corpus: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    assert _prepare(capsys, study, corpus)[0] == 0
    code, out, err = _run(capsys, "--study", str(study), "sample", "--n", "20")
    assert code == 0, err
    shortlist = (study / "shortlist.txt").read_text().split()
    catalogue = pd.read_parquet(study / "codes.parquet")
    assert set(shortlist) == set(catalogue.loc[catalogue["in_test"], "code"])
    assert f"shortlist: {len(shortlist):,} codes" in out


def test_icd9_on_an_icd10_split_is_refused(capsys, corpus: Path, tmp_path: Path) -> None:
    _assert_user_error(_prepare(capsys, tmp_path / "s", corpus, "--icd-version", "9"),
                       SPLIT_FILE, "have no ICD-9 code", "--icd-version 9")


def test_missing_table_and_column(capsys, editable: Path, tmp_path: Path) -> None:
    (editable / "hosp" / "d_icd_procedures.csv.gz").unlink()
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), "hosp/d_icd_procedures.csv.gz: file not found",
                       "MIMIC-IV's d_icd_procedures")
    shutil.rmtree(editable / "note")
    (editable / "note").mkdir()
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), "note/discharge.csv.gz: file not found")


def test_missing_column(capsys, editable: Path, tmp_path: Path) -> None:
    _rewrite(editable, "hosp/diagnoses_icd", _table(editable, "hosp/diagnoses_icd").drop(columns="icd_version"))
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), "diagnoses_icd.csv.gz: missing column icd_version",
                       "lowercase column names")


@pytest.mark.parametrize(("value", "fragment"), [("", "line 6: a code without icd_version"),
                                                 ("11", "line 6: icd_version '11'")])
def test_codes_without_a_valid_icd_version(capsys, editable: Path, tmp_path: Path, value: str, fragment: str) -> None:
    table = _table(editable, "hosp/procedures_icd")
    table.loc[4, "icd_version"] = value
    _rewrite(editable, "hosp/procedures_icd", table)
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), "procedures_icd.csv.gz", fragment)


def test_malformed_code(capsys, editable: Path, tmp_path: Path) -> None:
    table = _table(editable, "hosp/diagnoses_icd")
    row = int((table["icd_version"] == "10").to_numpy().nonzero()[0][0])
    table.loc[row, "icd_code"] = "I5"
    _rewrite(editable, "hosp/diagnoses_icd", table)
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), f"line {row + 2}: icd_code 'I5' is not ICD-10-CM")


def _write_split(corpus: Path, frame: pd.DataFrame) -> None:
    feather.write_feather(pa.Table.from_pandas(frame, preserve_index=False), corpus / SPLIT_FILE)


def test_split_file_problems(capsys, editable: Path, tmp_path: Path) -> None:
    splits = feather.read_table(editable / SPLIT_FILE).to_pandas()
    _write_split(editable, splits.assign(fold=1))
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), SPLIT_FILE, "columns _id, split, fold",
                       "exactly the columns _id")
    _write_split(editable, splits.assign(split=splits["split"].replace({"val": "validation"})))
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), "unknown split name(s) validation",
                       "column split")
    _write_split(editable, pd.concat([splits, pd.DataFrame({"_id": [999_999_999], "split": ["test"]})]))
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), "1 of", "have no ICD-10 code", "999999999")
    _write_split(editable, pd.concat([splits, splits.iloc[:1]]))
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), f"row {len(splits)}", "listed twice")
    (editable / SPLIT_FILE).write_text("_id,split\n1,train\n")
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), "cannot be read as a feather file")
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable, splits=editable / "nope.feather"),
                       "nope.feather: no such file")


def test_split_admission_without_a_note(capsys, editable: Path, tmp_path: Path) -> None:
    coded = set(_table(editable, "hosp/diagnoses_icd").query("icd_version == '10'")["hadm_id"].astype(int))
    noted = set(_table(editable, "note/discharge")["hadm_id"].replace("", "0").astype(int))
    orphan = min(coded - noted)  # the generator leaves some coded admissions without a note
    splits = feather.read_table(editable / SPLIT_FILE).to_pandas()
    _write_split(editable, pd.concat([splits, pd.DataFrame({"_id": [orphan], "split": ["train"]})]))
    _assert_user_error(_prepare(capsys, tmp_path / "s", editable), "discharge.csv.gz", "no discharge summary",
                       str(orphan), "MIMIC-IV-Note")


def test_mimic3_is_icd9_only(capsys, tiny_corpus: Path, tmp_path: Path) -> None:
    _assert_user_error(_run(capsys, "--study", str(tmp_path / "s"), "prepare", "--mimic", str(tiny_corpus),
                            "--splits", str(tiny_corpus), "--icd-version", "10"), "MIMIC-III is coded in ICD-9 only")


def test_schema_of_the_synthetic_corpus(corpus: Path) -> None:
    for name, columns in (("hosp/diagnoses_icd", DIAGNOSES_COLUMNS), ("hosp/procedures_icd", PROCEDURES_COLUMNS),
                          ("hosp/d_icd_diagnoses", TITLE_COLUMNS), ("hosp/d_icd_procedures", TITLE_COLUMNS),
                          ("note/discharge", DISCHARGE_COLUMNS)):
        assert tuple(_table(corpus, name).columns) == columns
    diagnoses = _table(corpus, "hosp/diagnoses_icd")
    assert set(diagnoses["icd_version"]) == {"9", "10"}  # MIMIC-IV spans the ICD-9 -> ICD-10 switch
    assert not diagnoses["icd_code"].str.contains(r"\.").any()  # stored undotted
    table = feather.read_table(corpus / SPLIT_FILE)
    assert table.column_names == ["_id", "split"] and table.schema.field("_id").type == pa.int64()
    assert set(table.column("split").to_pylist()) == {"train", "val", "test"}
    notes = _table(corpus, "note/discharge")
    assert set(notes["note_type"]) == {"DS"} and notes["note_id"].is_unique
    words = notes.loc[notes["note_seq"] == "1", "text"].str.split().str.len()
    assert words.between(1500, 4000).all()  # the MIMIC-III corpus's note length


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first, second, other = (tmp_path / name for name in ("a", "b", "c"))
    generate_mimic4_corpus(first, 60, seed=3, progress=False)
    generate_mimic4_corpus(second, 60, seed=3, progress=False)
    generate_mimic4_corpus(other, 60, seed=4, progress=False)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 7
    assert [sha256_file(first / f) for f in files] == [sha256_file(second / f) for f in files]
    assert sha256_file(first / "note/discharge.csv.gz") != sha256_file(other / "note/discharge.csv.gz")
    assert sha256_file(first / SPLIT_FILE) != sha256_file(other / SPLIT_FILE)


def test_icd9_fraction_gives_mimic4s_notes_per_split_admission(tmp_path: Path) -> None:
    notes = "note/discharge.csv.gz"
    default = generate_mimic4_corpus(tmp_path / "default", 400, progress=False)
    full = generate_mimic4_corpus(tmp_path / "full", 400, progress=False, icd9_fraction=FULL_SCALE_ICD9_FRACTION)
    assert 1.1 < default["rows"][notes] / sum(default["splits"].values()) < 1.6
    assert 2.3 < full["rows"][notes] / sum(full["splits"].values()) < 3.1  # real: 331,793 / 122,279 = 2.71
    with pytest.raises(ValueError, match="icd9_fraction"):
        generate_mimic4_corpus(tmp_path / "none", 60, progress=False, icd9_fraction=1.0)


def test_read_discharge_joins_split_notes_and_holds_no_other_text(tmp_path: Path) -> None:
    path = tmp_path / "discharge.csv.gz"
    pd.DataFrame([
        ("1-DS-2", "1", "11", "DS", "2", "2150-01-03 00:00:00", "", "Addendum."),
        ("1-DS-1", "1", " 11 ", "DS", "1", "2150-01-02 00:00:00", "", "Summary."),
        ("2-DS-1", "2", "12", "DS", "1", "2150-02-02 00:00:00", "", " \n\t "),
        ("3-DS-1", "3", "13", "DS", "1", "2150-03-02 00:00:00", "", "Outside the split."),
        ("4-DS-1", "4", "", "DS", "1", "2150-04-02 00:00:00", "", "No admission."),
    ], columns=list(DISCHARGE_COLUMNS)).to_csv(path, index=False, compression="gzip")
    notes = mimic4.read_discharge(path, [11, 12], progress=False)
    frame = notes.frame.set_index("hadm_id")
    assert frame["text"].to_dict() == {11: "Summary.\n\nAddendum.", 12: "", 13: ""}
    assert frame["n_notes"].to_dict() == {11: 2, 12: 0, 13: 0}  # texts outside the split are not read
    assert frame.loc[11, "row_ids"] == "1-DS-1 1-DS-2"
    assert frame["text"].dtype == object  # the kept strings themselves, not an Arrow copy of them
    assert notes.counts == {"discharge_rows": 5, "discharge_without_hadm_id": 1, "empty_note_rows": 1,
                            "admissions_with_summary": 3}


def test_shortlist_file_of_icd10_codes(capsys, icd10_study: Path, tmp_path: Path) -> None:
    study = Path(shutil.copytree(icd10_study, tmp_path / "study"))
    catalogue = pd.read_parquet(study / "codes.parquet")
    dx = catalogue.loc[catalogue["system"] == "dx", "code"].iloc[:3].tolist()
    px = catalogue.loc[catalogue["system"] == "px", "code"].iloc[:2].tolist()
    listed = tmp_path / "shortlist.txt"
    listed.write_text("# undotted as MIMIC-IV stores them, and dotted\n"
                      + "\n".join([dx[0].replace(".", ""), dx[1].lower(), dx[2], *px]) + "\n")
    code, out, err = _run(capsys, "--study", str(study), "sample", "--n", "20", "--shortlist", str(listed), "--force")
    assert code == 0, err
    assert (study / "shortlist.txt").read_text().split() == sorted(dx + px)
    listed.write_text("428.0\n")  # an ICD-9 code is no ICD-10 code
    _assert_user_error(_run(capsys, "--study", str(study), "sample", "--n", "20", "--shortlist", str(listed),
                            "--force"), "shortlist.txt line 1", "ICD-10-CM/PCS code per line")


def test_score_on_an_icd10_study_matches_sklearn(capsys, icd10_study: Path, tmp_path: Path) -> None:
    import json

    import numpy as np
    from sklearn.metrics import f1_score

    from benchmark.predictions import Predictions, write_predictions
    from tests.test_exports import choices_annotation, full_task

    study = Path(shutil.copytree(icd10_study, tmp_path / "study"))
    refs = {int(h): sorted(g["code"]) for h, g in pd.read_parquet(study / "references.parquet").groupby("hadm_id")}
    sample = [int(x) for x in (study / "sample.csv").read_text().split()]
    rng = np.random.default_rng(0)
    coded = {h: [c for c in refs[h] if rng.random() < 0.7] for h in sample}
    export = tmp_path / "export.json"
    # Every other note's codes written as MIMIC-IV stores them (undotted): read as the study's ICD-10 codes.
    export.write_text(json.dumps([full_task(100 + i, h, [choices_annotation(
        i + 1, 1, [c.replace(".", "") for c in coded[h]] if i % 2 else coded[h])]) for i, h in enumerate(sample)]))
    (study / "labelstudio").mkdir()
    (study / "labelstudio" / "coders.json").write_text(json.dumps(
        {"coders": [{"email": "a@example.org", "id": 1, "simulated": False, "name": "A"}]}))
    codes = pd.read_parquet(study / "codes.parquet")["code"].tolist()
    col = {c: i for i, c in enumerate(codes)}
    docs = pd.read_parquet(study / "documents.parquet", columns=["hadm_id", "split"])
    test = docs.loc[docs["split"] == "test", "hadm_id"].to_numpy()
    probs = rng.random((len(test), len(codes))).astype(np.float32) * 0.6
    for r, h in enumerate(test):
        probs[r, [col[c] for c in refs[int(h)]]] = rng.uniform(0.3, 1.0, len(refs[int(h)]))
    write_predictions(study / "predictions" / "icd10-test",
                      Predictions("icd10-test", test, codes, probs, run="icd10", split="test"))
    code, out, err = _run(capsys, "--study", str(study), "evaluate")
    assert code == 0, err
    assert "RAC (icd10)" in out and "reported" not in out  # the paper's MIMIC-III rows are not ICD-10's
    code, out, err = _run(capsys, "--study", str(study), "score", "--coders", str(export), "--profile", "paper")
    assert code == 0, err
    table = json.loads((study / "scores.json").read_text())["table1"]
    assert table["reported"] == [] and "Reported, not reproduced" not in out  # the paper's rows are ICD-9's
    assert "valid ICD-10-CM/PCS codes" in out and table["counts"]["unknown_codes"] == 0

    ordered = sorted(sample)
    y_true = np.zeros((len(ordered), len(codes)), bool)
    y_coder = np.zeros_like(y_true)
    for r, h in enumerate(ordered):
        y_true[r, [col[c] for c in refs[h]]] = True
        y_coder[r, [col[c] for c in coded[h]]] = True
    y_model = probs[[list(test).index(h) for h in ordered]] >= np.float32(0.5)
    rows = {row["system"]: row for row in table["rows"]}
    assert rows["Human coders"]["micro"]["f1"] == pytest.approx(f1_score(y_true, y_coder, average="micro"), abs=1e-12)
    model = table["rows"][-1]
    assert model["micro"]["f1"] == pytest.approx(f1_score(y_true, y_model, average="micro"), abs=1e-12)
    # Breakdowns by ICD-10 chapters (CM chapters and PCS sections) and by kind.
    chapters = set(codesystems.get(10, "dx").chapters()) | set(codesystems.get(10, "px").chapters())
    assert set(table["breakdowns"]["chapter"]["Human coders"]) <= chapters
    assert "I00-I99 Diseases of the circulatory system" in table["breakdowns"]["chapter"]["Human coders"]
    assert set(table["breakdowns"]["system"]["Human coders"]) == {"dx", "px"}
    # The report names the study's code system and dataset.
    assert _run(capsys, "--study", str(study), "report")[0] == 0
    html = (study / "report" / "index.html").read_text(encoding="utf-8")
    assert "<h1>Human coders vs RAC: ICD-10-CM/PCS coding study</h1>" in html
    assert "SYNTHETIC corpus (not MIMIC-IV;" in html and "ICD-9 coding study" not in html
    assert "per ICD-10-CM/PCS chapter" in html and "ICD-9-CM chapter" not in html  # the chapter figure's caption
    assert "copied from Kim &amp; Ganapathi (2021), Table 2" not in html  # Table 2 has no paper row to point to


def test_mdace_is_refused_on_a_mimic4_study(capsys, icd10_study: Path, tmp_path: Path) -> None:
    # MDACE's charts are MIMIC-III admissions: on a MIMIC-IV study one line says so, nothing is written.
    before = sorted(p.name for p in icd10_study.iterdir())
    _assert_user_error(_run(capsys, "--study", str(icd10_study), "import-mdace", str(tmp_path)),
                       "MDACE annotates MIMIC-III notes", "prepared from MIMIC-IV")
    assert sorted(p.name for p in icd10_study.iterdir()) == before
