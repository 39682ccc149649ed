"""Coder exports in the shapes Label Studio writes (full JSON, JSON_MIN, CSV), and every bad-input case.

Full JSON exports are built here in the shape Label Studio 1.23 writes; the JSON_MIN and CSV variants of
a foreign project are made from them by label-studio-sdk's own converter (the code the server runs for
those exports). tests/test_labelstudio_foreign.py scores exports made by a real Label Studio server.
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


def study_projects(study: Study, coders: dict[str, int], projects: list[dict], tasks: dict[int, int],
                   setup_id: str | None = None) -> None:
    """Write the coders.json and projects.json that `bench setup-labelstudio` writes (coder email -> user id);
    without ``setup_id``, as setups made before setup ids existed wrote them."""
    study.labelstudio_dir.mkdir(parents=True, exist_ok=True)
    (study.labelstudio_dir / "coders.json").write_text(json.dumps({"coders": [
        {"email": email, "id": user, "simulated": False, "name": email.split("@")[0]} for email, user in coders.items()]}))
    record = {"projects": projects, "tasks": {str(t): h for t, h in tasks.items()}}
    (study.labelstudio_dir / "projects.json").write_text(json.dumps({**record, "setup_id": setup_id} if setup_id
                                                                    else record))


def test_arms_are_recorded_and_never_mixed(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    study_projects(study, {"a@example.org": 1}, [{"id": 7, "coder": "a@example.org", "arm": "unassisted", "task_ids": [1]},
                                                 {"id": 8, "coder": "a@example.org", "arm": "assisted", "task_ids": [2]}],
                   {1: sample[0], 2: sample[1]})
    one = full_task(1, sample[0], [choices_annotation(1, 1, refs[sample[0]])], project=7)
    one["coding_bench"] = {"project": 7, "coder": "a@example.org", "arm": "unassisted"}   # bench pull's tag
    single = tmp_path / "unassisted.json"
    single.write_text(json.dumps([one]))
    result = read_coder_exports([single], study)
    assert result.arm == "unassisted" and result.annotations[0].arm == "unassisted"
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([one, full_task(2, sample[1], [choices_annotation(2, 1, refs[sample[1]])], project=8)]))
    assert "mix the assisted and unassisted arms" in _bench_fails(study, mixed, capsys)


# --- exports from projects this study did not make ----------------------------------------------------
def foreign_config(control: str, ui: str, codes: list[str]) -> str:
    """A labeling config as another site might write it: its own control names, no `codes`."""
    choices = "".join(f'<Choice value="{c}"/>' for c in codes)
    picker = (f'<Choices name="{control}" toName="note" choice="multiple">{choices}</Choices>' if ui == "choices"
              else f'<Taxonomy name="{control}" toName="note"><Choice value="all">{choices}</Choice></Taxonomy>')
    return f'<View><Text name="note" value="$text"/>{picker}<TextArea name="remarks" toName="note"/></View>'


def foreign_annotation(ann_id: int, user: int | dict, control: str, ui: str, codes: list[str],
                       lead_time: object = 300.0) -> dict:
    value = {"choices": codes} if ui == "choices" else {"taxonomy": [["all", c] for c in codes]}
    return {"id": ann_id, "completed_by": user, "was_cancelled": False, "lead_time": lead_time,
            "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z",
            "result": [{"from_name": control, "to_name": "note", "type": ui, "value": value},
                       {"from_name": "remarks", "to_name": "note", "type": "textarea", "value": {"text": ["ok"]}}]}


def write_formats(tasks: list[dict], config: str, folder: Path) -> dict[str, Path]:
    """The full JSON export, and JSON_MIN and CSV made from it by label-studio-sdk's converter."""
    from label_studio_sdk.converter import Converter

    folder.mkdir(parents=True, exist_ok=True)
    full = folder / "export.json"
    full.write_text(json.dumps(tasks))
    converter = Converter(config=config, project_dir=None, download_resources=False)
    converter.convert_to_json_min(str(full), str(folder / "min"), is_dir=False)
    converter.convert_to_csv(str(full), str(folder / "csv"), is_dir=False, sep=",")
    paths = {"json": full, "json_min": folder / "export-min.json", "csv": folder / "export.csv"}
    (folder / "min" / "result.json").rename(paths["json_min"])
    (folder / "csv" / "result.csv").rename(paths["csv"])
    return paths


def _bench_ok(study: Study, capsys, *argv: str) -> tuple[dict, str]:
    code = main(["--study", str(study.root), "score", "--bootstrap", "20", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(study.scores.read_text()), out


@pytest.mark.parametrize("control, ui", [("icd9", "choices"), ("dx", "taxonomy")])
def test_codes_under_another_control_are_named_then_read(study: Study, tmp_path: Path, capsys, control, ui):
    refs, sample = _refs(study), _sample(study)
    picked = {h: refs[h][: 1 + i % 3] for i, h in enumerate(sample[:6])}   # one to three codes: a bare string too
    tasks = [full_task(500 + i, h, [foreign_annotation(900 + i, 41 + i % 2, control, ui, picked[h])], project=3)
             for i, h in enumerate(sample[:6])]
    tasks.append(full_task(506, sample[6], []))                          # a task nobody coded
    for task in tasks:  # the site's own task data: text that starts like JSON, an id shaped like a code
        task["data"].update({"header": "[**2151-7-16**] discharge", "subject_id": 12345 + task["id"]})
    config = foreign_config(control, ui, sorted({c for v in picked.values() for c in v}))
    tables = {}
    for fmt, path in write_formats(tasks, config, tmp_path / "site").items():
        err = _bench_fails(study, path, capsys)
        assert f"control '{control}'" in err and f"--control {control}" in err, (fmt, err)
        scores, _ = _bench_ok(study, capsys, "--coders", str(path), "--control", control)
        humans = {d["hadm_id"]: d["humans"] for d in scores["per_document"]}
        assert humans == {h: {f"user {41 + i % 2}": sorted(picked[h])} for i, h in enumerate(sample[:6])}, fmt
        t1 = scores["table1"]
        assert t1["attribution"]["controls"] == [control] and t1["counts"]["no_annotation"] == 1
        assert t1["coders"][0]["median_lead_time_s"] == 300.0
        tables[fmt] = [(r["system"], r["micro"]) for r in t1["rows"]]
    assert tables["json"] == tables["json_min"] == tables["csv"]
    assert tables["json"][0][1]["precision"] == 1.0 and [s for s, _ in tables["json"][1:]] == [
        "Coder A (user 41)", "Coder B (user 42)"]


def test_several_code_controls_are_refused_until_named(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    h = sample[0]
    dx, px = [c for c in refs[h] if icd.system_of(c) == "dx"], [c for c in refs[h] if icd.system_of(c) == "px"]
    ann = foreign_annotation(1, 41, "diagnoses", "choices", dx)
    ann["result"].append({"from_name": "procedures", "to_name": "note", "type": "choices",
                          "value": {"choices": px or ["99.04"]}})
    both = tmp_path / "two-pickers.json"
    both.write_text(json.dumps([full_task(1, h, [ann])]))
    err = _bench_fails(study, both, capsys)
    assert "'diagnoses', 'procedures'" in err and "none named 'codes'" in err and "--control" in err
    err = _bench_fails(study, both, capsys, "--control", "icd")
    assert "no annotation has a control icd" in err and "diagnoses, procedures" in err
    scores, _ = _bench_ok(study, capsys, "--coders", str(both), "--control", "diagnoses", "--control", "procedures",
                          "--allow-unknown")
    assert scores["per_document"][0]["humans"]["user 41"] == sorted(dx + (px or ["99.04"]))
    # The study's own control beside another one: which of them holds codes is for the user to say.
    mixed = choices_annotation(2, 41, refs[h][:1])
    mixed["result"].append({"from_name": "secondary", "to_name": "text", "type": "choices", "value": {"choices": ["401.9"]}})
    mixed_path = tmp_path / "codes-and-more.json"
    mixed_path.write_text(json.dumps([full_task(1, h, [mixed])]))
    err = _bench_fails(study, mixed_path, capsys)
    assert "'codes' and also under 'secondary'" in err and "--control codes, plus --control secondary" in err


def test_export_from_another_server_is_refused(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    study_projects(study, {"a@example.org": 1},
                   [{"id": 7, "coder": "a@example.org", "coder_id": 1, "arm": "unassisted", "task_ids": [5, 6]}],
                   {5: sample[0], 6: sample[1]})
    # Task 5 exists here too, but holds another admission: user 1 over there is not coder a.
    other = [full_task(5, sample[2], [foreign_annotation(1, 1, "icd9", "choices", refs[sample[2]])], project=7)]
    for fmt, path in write_formats(other, foreign_config("icd9", "choices", refs[sample[2]]), tmp_path / "x").items():
        err = _bench_fails(study, path, capsys, "--control", "icd9")
        assert "task 5" in err and "different Label Studio server" in err, (fmt, err)
        assert f"hadm_id {sample[2]}" in err and f"is hadm_id {sample[0]}" in err
    other_project = tmp_path / "other-project.json"
    other_project.write_text(json.dumps([full_task(5, sample[0], [choices_annotation(1, 1, refs[sample[0]])], project=3)]))
    err = _bench_fails(study, other_project, capsys)
    assert "project 3, which is not one of this study's projects (7)" in err and "different Label Studio server" in err
    unknown_task = tmp_path / "unknown-task.json"       # a task id this study's projects never had
    unknown_task.write_text(json.dumps([full_task(8, sample[1], [choices_annotation(2, 1, refs[sample[1]])])]))
    err = _bench_fails(study, unknown_task, capsys)
    assert "task 8" in err and "is not a task of this study's Label Studio projects" in err


def test_export_of_another_setup_with_the_same_ids_is_refused(study: Study, tmp_path: Path, capsys):
    """Two fresh servers set up alike number projects and tasks alike: only the setup id tells them apart."""
    refs, sample = _refs(study), _sample(study)
    study_projects(study, {"a@example.org": 1},
                   [{"id": 1, "coder": "a@example.org", "coder_id": 1, "arm": "unassisted", "task_ids": [1, 2]}],
                   {1: sample[0], 2: sample[1]}, setup_id="5e7a1d")

    def export(setup_id: str | None, folder: str) -> dict[str, Path]:
        tasks = [full_task(t, h, [choices_annotation(t, 1, refs[h])], project=1) for t, h in ((1, sample[0]),
                                                                                            (2, sample[1]))]
        for task in tasks:
            task["data"].update({"setup_id": setup_id} if setup_id else {})
        return write_formats(tasks, foreign_config("codes", "choices", sorted(refs[sample[0]] + refs[sample[1]])),
                             tmp_path / folder)

    for fmt, path in export("9c04bb", "pilot").items():
        err = _bench_fails(study, path, capsys)
        assert "different Label Studio server (or another setup of this study)" in err and str(path) in err, fmt
        assert "task 1 carries setup_id 9c04bb" in err and "this study's tasks carry 5e7a1d" in err, (fmt, err)
    for fmt, path in export(None, "untagged").items():
        assert "task 1 carries no setup_id" in _bench_fails(study, path, capsys), fmt
    for fmt, path in export("5e7a1d", "own").items():
        scores, _ = _bench_ok(study, capsys, "--coders", str(path))
        assert scores["table1"]["counts"]["scored"] == 2, fmt
        assert scores["per_document"][0]["humans"] == {"a@example.org": sorted(refs[sample[0]])}, fmt


def test_unassigned_annotators_are_counted_listed_and_left_out(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    study_projects(study, {"a@example.org": 3, "b@example.org": 4}, [
        {"id": 7, "coder": "a@example.org", "coder_id": 3, "arm": "unassisted", "task_ids": [1, 2, 3]},
        {"id": 8, "coder": "b@example.org", "coder_id": 4, "arm": "unassisted", "task_ids": [4]}],
        {i + 1: h for i, h in enumerate(sample[:4])})
    h = sample[:4]
    tasks = [full_task(1, h[0], [choices_annotation(10, 3, refs[h[0]])], project=7),
             full_task(2, h[1], [choices_annotation(20, 4, refs[h[1]])], project=7),    # coder b in a's project
             full_task(3, h[2], [choices_annotation(30, 1, refs[h[2]][:1])], project=7),  # the admin, no coder
             full_task(4, h[3], [choices_annotation(40, 4, refs[h[3]])], project=8)]
    # The UI's JSON_MIN and CSV exports carry no project: the study's task map tells it.
    formats = write_formats(tasks, foreign_config("codes", "choices", sorted({c for t in h for c in refs[t]})),
                            tmp_path / "ui")
    for fmt, export in formats.items():
        t1 = _bench_ok(study, capsys, "--coders", str(export))[0]["table1"]
        assert (t1["counts"]["unassigned"], t1["counts"]["scored"], t1["n_documents"]) == (2, 2, 2), fmt
        assert t1["unassigned_annotators"] == [
            {"annotator": "b@example.org", "id": 4, "email": "b@example.org", "projects": [7], "n_annotations": 1},
            {"annotator": "user 1", "id": 1, "email": None, "projects": [7], "n_annotations": 1}], fmt
    path = formats["json"]
    scores, out = _bench_ok(study, capsys, "--coders", str(path))
    t1 = scores["table1"]
    assert "unassigned 2" in out and "Note: 2 annotation(s) by unassigned annotators" in out and "user 1 (1)" in out
    assert [r["system"] for r in t1["rows"] if r["kind"] == "coder"] == ["Coder A (a@example.org)",
                                                                          "Coder B (b@example.org)"]
    scores, out = _bench_ok(study, capsys, "--coders", str(path), "--include-unassigned")
    t1 = scores["table1"]
    assert t1["counts"]["scored"] == 4 and t1["attribution"]["include_unassigned"] is True
    assert [r["system"] for r in t1["rows"] if r["kind"] == "coder"] == [
        "Coder A (a@example.org)", "Coder B (b@example.org)", "Unassigned annotator C (user 1)"]
    assert "scored, as --include-unassigned asks" in out


def test_foreign_annotators_are_coders_named_by_id_email_or_coder_map(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    users: list[int | dict] = [17, 18, {"id": 5, "email": "Jo@Site.org"}]
    tasks = [full_task(i + 1, h, [choices_annotation(i + 1, users[i % 3], refs[h])], project=2)
             for i, h in enumerate(sample[:6])]
    path = tmp_path / "site.json"
    path.write_text(json.dumps(tasks))
    scores, _ = _bench_ok(study, capsys, "--coders", str(path))
    rows = [r for r in scores["table1"]["rows"] if r["kind"] == "coder"]
    assert [(r["system"], r["coder"]["id"], r["coder"]["email"]) for r in rows] == [
        ("Coder A (jo@site.org)", 5, "jo@site.org"), ("Coder B (user 17)", 17, None), ("Coder C (user 18)", 18, None)]
    assert scores["table1"]["counts"]["unassigned"] == 0
    coder_map = tmp_path / "coders.json"
    coder_map.write_text(json.dumps({"17": "Coder Smith", "18": "Coder Smith", "JO@site.org": "Coder Jones"}))
    scores, out = _bench_ok(study, capsys, "--coders", str(path), "--coder-map", str(coder_map))
    assert "--coder-map" not in out                                  # every annotator named, every entry used
    rows = [r for r in scores["table1"]["rows"] if r["kind"] == "coder"]
    assert [(r["system"], r["n_documents"], r["coder"]["name"]) for r in rows] == [
        ("Coder A (Coder Jones)", 2, "Coder Jones"), ("Coder B (Coder Smith)", 4, "Coder Smith")]
    assert scores["table1"]["attribution"]["coder_map"]["source"] == str(coder_map)
    assert coder_map.read_bytes() in [p.read_bytes() for p in study.exports_dir.iterdir()]   # archived
    coder_map.write_text(json.dumps({"17": "Coder Smith", "71": "Coder Smith"}))             # a typo: 71 for 18
    scores, out = _bench_ok(study, capsys, "--coders", str(path), "--coder-map", str(coder_map))
    assert "1 entry matches no annotator of the exports (71)" in out
    assert "does not name 2 annotator(s), shown by e-mail or id: jo@site.org, user 18" in out
    for text, expected in [('{"jo": "X"}', "key 'jo' is neither an integer user id nor an e-mail"),
                           ('{"17": ""}', "must be a non-empty string"), ("[1]", "non-empty JSON object"),
                           ("{", "not a JSON coder map")]:
        coder_map.write_text(text)
        err = _bench_fails(study, path, capsys, "--coder-map", str(coder_map))
        assert str(coder_map) in err and expected in err, err


def test_lead_time_not_a_number_and_empty_export_say_so(study: Study, tmp_path: Path, capsys):
    refs, sample = _refs(study), _sample(study)
    tasks = [full_task(1, sample[0], [foreign_annotation(1, 41, "codes", "choices", refs[sample[0]], "2 min")]),
             full_task(2, sample[1], [foreign_annotation(2, 41, "codes", "choices", refs[sample[1]], 60)])]
    path = tmp_path / "lead.json"
    path.write_text(json.dumps(tasks))
    scores, out = _bench_ok(study, capsys, "--coders", str(path))
    t1 = scores["table1"]
    assert t1["counts"]["lead_time_not_a_number"] == 1 and t1["coders"][0]["median_lead_time_s"] == 60.0
    assert "lead time not a number 1" in out and "task 1: '2 min'" in out
    empty = tmp_path / "empty.json"
    empty.write_text("[]")                     # what Label Studio's JSON export gives before anyone annotated
    err = _bench_fails(study, empty, capsys)
    assert "(counts: )" not in err and "no task at all" in err
