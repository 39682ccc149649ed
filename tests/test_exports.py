"""Coder exports in the shapes Label Studio writes (full JSON, JSON_MIN, CSV), and every bad-input case.

The exports are built here in the documented shapes (DESIGN.md §7, label-studio-sdk's converter); the
annotation tests score an export produced by a real Label Studio server.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark import icd
from benchmark.cli import main
from benchmark.exports import read_coder_exports
from benchmark.study import Study
from tests.fixtures_study import copy_study


def _refs(study: Study) -> dict[int, list[str]]:
    refs = pd.read_parquet(study.references)
    return {int(h): sorted(g["code"]) for h, g in refs.groupby("hadm_id")}


def _sample(study: Study) -> list[int]:
    return [int(x) for x in study.sample.read_text().split()]


def full_task(task_id: int, hadm_id: int, annotations: list[dict], project: int = 7) -> dict:
    return {"id": task_id, "project": project, "data": {"text": "note", "hadm_id": hadm_id, "sample_index": 0},
            "annotations": annotations}


def choices_annotation(ann_id: int, coder: int | dict, codes: list[str], *, cancelled: bool = False,
                       updated: str = "2026-11-01T10:00:00Z", taxonomy: bool = False, insufficient: bool = False) -> dict:
    if taxonomy:
        value = {"taxonomy": [["chapter", c.split(".")[0], c] for c in codes]}
        result = [{"from_name": "codes", "to_name": "text", "type": "taxonomy", "value": value}]
    else:
        result = [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": codes}}] if codes else []
    result.append({"from_name": "comment", "to_name": "text", "type": "textarea", "value": {"text": ["hard one"]}})
    if insufficient:
        result.append({"from_name": "insufficient_documentation", "to_name": "text", "type": "choices",
                       "value": {"choices": ["yes"]}})
    return {"id": ann_id, "completed_by": coder, "result": result, "was_cancelled": cancelled, "lead_time": 120.5,
            "created_at": updated, "updated_at": updated}


@pytest.fixture
def study(small_study: Study, tmp_path: Path) -> Study:
    return copy_study(small_study, tmp_path / "study")


def test_full_json_choices_taxonomy_counts_and_duplicates(study: Study, tmp_path: Path):
    refs, sample = _refs(study), _sample(study)
    h0, h1, h2, h3 = sample[:4]
    # Normalisation: diagnoses without the dot and in lower case (an undotted code reads as a diagnosis
    # first; procedures stay dotted, since "97.88" and "978.8" are both real codes).
    undotted = [c.replace(".", "").lower() if icd.system_of(c) == "dx" else c for c in refs[h1]]
    tasks = [
        full_task(1, h0, [choices_annotation(10, 1, refs[h0][:2], updated="2026-11-01T10:00:00Z"),
                          choices_annotation(11, 1, refs[h0], updated="2026-11-02T10:00:00Z"),  # latest wins
                          choices_annotation(12, {"id": 2, "email": "b@example.org"}, refs[h0][:1])]),
        full_task(2, h1, [choices_annotation(20, 1, undotted, taxonomy=True, insufficient=True)]),
        full_task(3, h2, [choices_annotation(30, 1, [], cancelled=True),                      # skipped
                          choices_annotation(31, 2, refs[h2][:1], cancelled=True)]),          # cancelled
        full_task(4, h3, []),                                                                 # no annotation
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    result = read_coder_exports([path, path], study)     # the same file twice: annotations repeated
    by = {(a.coder, a.hadm_id): a for a in result.annotations}
    assert by[("user 1", h0)].codes == tuple(refs[h0]) and by[("user 1", h0)].annotation_id == 11
    assert by[("b@example.org", h0)].codes == tuple(refs[h0][:1])
    assert by[("user 1", h1)].codes == tuple(refs[h1]) and by[("user 1", h1)].insufficient_documentation
    c = result.counts
    assert (c["tasks"], c["scored"], c["skipped"], c["cancelled"], c["duplicates_replaced"]) == (4, 3, 1, 1, 1)
    assert c["no_annotation"] == 2 and c["repeated"] == 6 and c["insufficient_documentation"] == 1
    assert len(list(study.exports_dir.iterdir())) == 1   # identical bytes archived once


def test_json_min_and_csv_match_full_json(study: Study, tmp_path: Path):
    refs, sample = _refs(study), _sample(study)
    h0, h1, h2 = sample[:3]
    records = [  # JSON_MIN: one choice is a bare string, several a {"choices": [...]}; no annotation: annotator null
        {"id": 1, "hadm_id": h0, "text": "note", "sample_index": 0, "codes": {"choices": refs[h0]}, "annotator": 3,
         "annotation_id": 10, "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z", "lead_time": 90.0},
        {"id": 2, "hadm_id": h1, "text": "note", "sample_index": 1, "codes": refs[h1][0], "annotator": "a@example.org",
         "annotation_id": 11, "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z", "lead_time": 60.0},
        {"id": 3, "hadm_id": h2, "text": "note", "sample_index": 2,
         "codes": {"taxonomy": [["c", "x", code] for code in refs[h2]]}, "annotator": 3, "annotation_id": 12,
         "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z", "lead_time": 30.0},
        {"id": 4, "hadm_id": sample[3], "text": "note", "sample_index": 3, "annotator": None, "annotation_id": None,
         "created_at": None, "updated_at": None, "lead_time": None},
    ]
    (study.labelstudio_dir).mkdir(parents=True, exist_ok=True)
    (study.labelstudio_dir / "coders.json").write_text(json.dumps({"coders": [
        {"email": "a@example.org", "id": 3, "simulated": True, "name": "Sim A"}]}))
    min_path = tmp_path / "min.json"
    min_path.write_text(json.dumps(records))
    csv_path = tmp_path / "export.csv"                     # CSV: label-studio-sdk's csv2 layout
    buf = io.StringIO()
    keys = sorted({k for r in records for k in r})
    writer = csv.DictWriter(buf, fieldnames=keys, quoting=csv.QUOTE_NONNUMERIC)
    writer.writeheader()
    for r in records:
        writer.writerow({k: (json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v))
                         for k, v in r.items()})
    csv_path.write_text(buf.getvalue())
    for path in (min_path, csv_path):
        result = read_coder_exports([path], study)
        got = {a.hadm_id: (a.coder, a.codes, a.simulated) for a in result.annotations}
        assert got == {h0: ("a@example.org", tuple(refs[h0]), True), h1: ("a@example.org", (refs[h1][0],), True),
                       h2: ("a@example.org", tuple(refs[h2]), True)}
        assert result.counts["no_annotation"] == 1 and result.counts["scored"] == 3


def _bench_fails(study: Study, export: Path, capsys, *extra: str) -> str:
    code = main(["--study", str(study.root), "score", "--coders", str(export), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    archived = [p.read_bytes() for p in study.exports_dir.iterdir()]
    assert export.read_bytes() in archived                   # archived before parsing
    return err


def test_bad_exports_give_one_line_with_file_and_task(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    good = full_task(5, sample[0], [choices_annotation(50, 1, refs[sample[0]])])
    cases = {
        "truncated.json": json.dumps([good])[:-40],
        "notjson.json": "this is not json",
        "outside.json": json.dumps([full_task(6, 999999999, [choices_annotation(60, 1, ["428.0"])])]),
        "unknown.json": json.dumps([full_task(7, sample[1], [choices_annotation(70, 1, ["999.99", "ZZZ"])])]),
    }
    expected = {"truncated.json": "not valid JSON", "notjson.json": "hadm_id",
                "outside.json": "task 6: hadm_id 999999999 is not in the study's sample",
                "unknown.json": "task 7: 999.99, ZZZ"}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        err = _bench_fails(study, path, capsys)
        assert str(path) in err and expected[name] in err, err
    # --allow-unknown scores them as wrong codes instead.
    assert main(["--study", str(study.root), "score", "--coders", str(tmp_path / "unknown.json"), "--allow-unknown",
                 "--bootstrap", "20"]) == 0
    scores = json.loads(study.scores.read_text())
    assert scores["table1"]["counts"]["unknown_codes"] == 2
    assert scores["table1"]["rows"][0]["micro"]["precision"] == 0.0


def test_export_from_another_project(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    study.labelstudio_dir.mkdir(parents=True, exist_ok=True)
    (study.labelstudio_dir / "projects.json").write_text(json.dumps(
        {"projects": [{"id": 7, "coder": "a@example.org", "arm": "unassisted"}], "tasks": {"5": sample[0]}}))
    other = tmp_path / "other-project.json"
    other.write_text(json.dumps([full_task(5, sample[0], [choices_annotation(1, 1, refs[sample[0]])], project=99)]))
    assert "project 99, which is not one of this study's projects" in _bench_fails(study, other, capsys)
    wrong_task = tmp_path / "wrong-task.json"
    wrong_task.write_text(json.dumps([full_task(8, sample[1], [choices_annotation(2, 1, refs[sample[1]])])]))
    assert "task 8" in _bench_fails(study, wrong_task, capsys)


def test_arms_are_recorded_and_never_mixed(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    study.labelstudio_dir.mkdir(parents=True, exist_ok=True)
    (study.labelstudio_dir / "projects.json").write_text(json.dumps({
        "projects": [{"id": 7, "coder": "a@example.org", "arm": "unassisted", "task_ids": [1]},
                     {"id": 8, "coder": "a@example.org", "arm": "assisted", "task_ids": [2]}],
        "tasks": {"1": sample[0], "2": sample[1]}}))
    one = full_task(1, sample[0], [choices_annotation(1, 1, refs[sample[0]])], project=7)
    one["coding_bench"] = {"project": 7, "coder": "a@example.org", "arm": "unassisted"}   # bench pull's tag
    single = tmp_path / "unassisted.json"
    single.write_text(json.dumps([one]))
    result = read_coder_exports([single], study)
    assert result.arm == "unassisted" and result.annotations[0].arm == "unassisted"
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([one, full_task(2, sample[1], [choices_annotation(2, 1, refs[sample[1]])], project=8)]))
    assert "mix the assisted and unassisted arms" in _bench_fails(study, mixed, capsys)
