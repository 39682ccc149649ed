"""`bench import-mdace` over MDACE's real file format, built here on the hand-written study (no MDACE file
is committed): every field and type, both dotted forms, mixed code systems, charts without a discharge
summary or outside the study, offsets past a note's end, and every bad input as one line + exit 2."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.mdace import TYPES, read_spans
from benchmark.study import Study
from tests.fixtures_study import TINY_SUMMARY


def _ann(begin, end, code, system="ICD-9-CM", kind="Human", description="a title"):
    return {"begin": begin, "end": end, "code": code, "code_system": system, "description": description, "type": kind}


NOTE_41 = "Test note four. Hypertension."  # 100004's summary (ROW_ID 41)
CHARTS = {
    # The test-split chart: both dotted forms, every mapped type, a procedure, an ICD-10 code in the ICD-9
    # file, a string that is no code of the code system, a span past the note's end, and a radiology note not in the study.
    100004: {"hadm_id": 100004, "comment": "Need OP report to validate PCS codes", "notes": [
        {"note_id": 41, "category": "Discharge summary", "description": "Report", "annotations": [
            _ann(16, 28, "4019"), _ann(16, 28, "401.9", kind="MapType.EXACT"),
            _ann(0, 4, "0040", "ICD-9-PCS", "MapType.APPROX"), _ann(16, 28, "I10", "ICD-10-CM", "MapType.NO_ENTRY"),
            _ann(5, 9, "99999", kind="MapType.MULTI"), _ann(20, 500, "428.0", kind="MapType.MULTI_DESC")]},
        {"note_id": 9041, "category": "Radiology", "description": "CHEST (PA & LAT)", "annotations": [
            _ann(3, 10, "V45.81")]}]},
    # A training chart: a span in the addendum (ROW_ID 11), which follows the summary in the document, and a
    # with_text note whose text differs from the study's (that span no longer fits).
    100001: {"hadm_id": 100001, "comment": "Need OP report to validate PCS codes", "notes": [
        {"note_id": 11, "category": "Discharge summary", "description": "Addendum", "annotations": [
            _ann(33, 36, "E8788")]},
        {"note_id": 12, "category": "Discharge summary", "description": "Report", "text": "X" * len(TINY_SUMMARY),
         "annotations": [_ann(0, 9, "428.0")]}]},
    # A test chart without a discharge summary.
    100005: {"hadm_id": 100005, "comment": "", "notes": [
        {"note_id": 9051, "category": "Physician ", "description": "Physician Resident Progress Note",
         "annotations": [_ann(0, 4, "E878.8")]}]},
    # Not in the study.
    777777: {"hadm_id": 777777, "comment": "EGD report not present", "notes": []},
}


def write_mdace(root: Path, charts: dict[int, dict] = CHARTS, version: str = "ICD-9") -> Path:
    folder = root / "data" / "Inpatient" / version / "1.0"
    folder.mkdir(parents=True, exist_ok=True)
    for hadm_id, chart in charts.items():
        (folder / f"{hadm_id}-{version}.json").write_text(json.dumps(chart))
    return root


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_matches_places_and_reports(capsys, tiny_study: Study, tmp_path: Path):
    mdace = write_mdace(tmp_path / "MDACE")
    code, out, err = _run(capsys, "--study", str(tiny_study.root), "import-mdace", str(mdace))
    assert code == 0, err
    assert "4 charts read, 3 matched to study admissions, 1 not in the study, 1 outside its test split" in out
    assert "spans: 10 read, 6 placed in discharge summaries, 2 in other notes" in out
    assert "2 whose text no longer fits" in out and "1 not in the code system" in out
    summary = tiny_study.step("import_mdace")["summary"]
    c = summary["counts"]
    assert (c["charts"], c["charts_matched"], c["charts_not_in_study"], c["charts_outside_test_split"]) == (4, 3, 1, 1)
    assert c["charts_without_discharge_summary"] == 1 and c["spans_outside_discharge_summaries"] == 2
    assert c["spans_not_fitting_text"] == 2  # past the note's end, and the with_text mismatch
    assert (c["unknown_codes"], c["malformed_codes"], c["codes_of_another_code_system"]) == (1, 0, 1)
    assert set(summary["types"]) == set(TYPES)
    assert summary["code_systems"] == {"ICD-10-CM": 1, "ICD-9-CM": 8, "ICD-9-PCS": 1}
    assert summary["comments"] == {"charts_with_comment": 2, "kinds": [
        {"comment": "Need OP report to validate PCS codes", "charts": 2}]}  # 777777's is not in the study
    assert "comment x2: Need OP report" in out and "charts not in study: 777777" in out

    spans = pd.read_parquet(tiny_study.mdace_spans)
    text = pd.read_parquet(tiny_study.documents).set_index("hadm_id")["text"]
    placed = spans.dropna(subset=["doc_begin"])
    for row in placed.itertuples():
        assert row.doc_end - row.doc_begin == row.end - row.begin
    four = spans[spans["hadm_id"] == 100004]
    hyper = four[four["begin"] == 16]
    assert sorted(hyper["code"]) == ["401.9", "401.9", "I10"]  # undotted and dotted read alike
    assert {text[100004][int(r.doc_begin):int(r.doc_end)] for r in hyper.itertuples() if r.scored} == {"Hypertension"}
    assert hyper.loc[hyper["code"] == "I10", "scored"].tolist() == [False]
    assert four.set_index("code").loc["00.40", "system"] == "px"
    assert four.set_index("code").loc["999.99", "known"] == False  # noqa: E712 - numpy bool; no ICD-9-CM code
    assert four.set_index("code").loc["428.0", "doc_begin"] is pd.NA  # past the note's end
    addendum = spans[(spans["hadm_id"] == 100001) & (spans["note_id"] == 11)].iloc[0]
    assert addendum["code"] == "E878.8" and addendum["doc_begin"] == len(TINY_SUMMARY) + 2 + 33
    assert text[100001][addendum["doc_begin"]:addendum["doc_end"]] == "flu"
    assert spans[spans["hadm_id"] == 100005]["doc_begin"].isna().all()
    assert not (spans["hadm_id"] == 777777).any()
    assert len(read_spans(tiny_study, "human")) == 5 and len(read_spans(tiny_study, "mapped")) == 5

    archived = list(tiny_study.exports_dir.glob("*-mdace-ICD-9-*.zip"))
    assert len(archived) == 1
    assert sorted(zipfile.ZipFile(archived[0]).namelist()) == sorted(f"{h}-ICD-9.json" for h in CHARTS)

    before = tiny_study.mdace_spans.read_bytes()
    code, _, err = _run(capsys, "--study", str(tiny_study.root), "import-mdace", str(mdace))
    assert code == 0, err
    assert tiny_study.mdace_spans.read_bytes() == before
    assert len(list(tiny_study.exports_dir.glob("*.zip"))) == 1  # the same files are archived once

    changed = write_mdace(tmp_path / "other", {**CHARTS, 100004: {**CHARTS[100004], "comment": ""}})
    code, _, err = _run(capsys, "--study", str(tiny_study.root), "import-mdace", str(changed))
    assert code == 2 and "different MDACE files" in err and "--force" in err
    code, _, err = _run(capsys, "--study", str(tiny_study.root), "import-mdace", str(changed), "--force")
    assert code == 0, err


def _one_line_error(capsys, study: Study, directory: Path, *fragments: str, extra: tuple[str, ...] = ()) -> None:
    code, _, err = _run(capsys, "--study", str(study.root), "import-mdace", str(directory), *extra)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _with(chart_edit) -> dict[int, dict]:
    chart = json.loads(json.dumps(CHARTS[100004]))
    chart_edit(chart)
    return {100004: chart}


@pytest.mark.parametrize("edit, fragments", [
    (lambda c: c["notes"][0]["annotations"][0].pop("begin"), ("100004-ICD-9.json", "integer 'begin'")),
    (lambda c: c["notes"][0]["annotations"][0].update(begin=-3), ("0 <= begin <= end",)),
    (lambda c: c["notes"][0]["annotations"][0].update(end=2), ("begin 16, end 2",)),
    (lambda c: c["notes"][0]["annotations"][0].update(type="MapType.GUESS"), ("type 'MapType.GUESS'",)),
    (lambda c: c["notes"][0]["annotations"][0].update(code_system="SNOMED"), ("code_system 'SNOMED'",)),
    (lambda c: c["notes"][0]["annotations"][0].update(code=""), ("has no code",)),
    (lambda c: c.update(hadm_id=100005), ("does not match the file name",)),
    (lambda c: c["notes"][0].update(note_id=51), ("note_id 51 belongs to admission 100005",)),
    (lambda c: c.update(notes={}), ("list under 'notes'",)),
    (lambda c: c["notes"][0].pop("category"), ("note_id 41", "'category'")),
])
def test_bad_files_are_one_line_errors_naming_the_file(capsys, tiny_study: Study, tmp_path: Path, edit, fragments):
    directory = write_mdace(tmp_path / "MDACE", _with(edit))
    _one_line_error(capsys, tiny_study, directory, "100004-ICD-9.json", *fragments)


def test_unreadable_inputs_and_wrong_version(capsys, tiny_study: Study, tmp_path: Path):
    directory = write_mdace(tmp_path / "MDACE", {100004: CHARTS[100004]})
    (directory / "data/Inpatient/ICD-9/1.0/100004-ICD-9.json").write_text('{"hadm_id": 100004, "notes": [')
    _one_line_error(capsys, tiny_study, directory, "100004-ICD-9.json", "not valid JSON")
    _one_line_error(capsys, tiny_study, tmp_path / "empty", "no such directory")
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, tiny_study, tmp_path / "empty", "data/Inpatient/ICD-9/1.0", "3mcloud/MDACE")
    _one_line_error(capsys, tiny_study, directory, "ICD-10", "ICD-9-CM", extra=("--version", "ICD-10"))
    bare = Study(tmp_path / "bare")
    _one_line_error(capsys, bare, directory, "bench prepare")


def test_help_explains_the_import(capsys):
    with pytest.raises(SystemExit):
        main(["import-mdace", "--help"])
    out = capsys.readouterr().out
    for word in ("3mcloud/MDACE", "note_map.parquet", "--version", "--force", "MapType.EXACT", "archives"):
        assert word in out, word
