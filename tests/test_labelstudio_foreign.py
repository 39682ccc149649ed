"""Exports made by a real Label Studio server, from projects that `bench setup-labelstudio` did not make.

Another site's two projects are built here through the API, as that site would build them
(label-studio-sdk): their own control names (``<Choices name="icd9">``, ``<Taxonomy name="dx">``), their
own user (the admin) coding five of six notes. Their JSON, JSON_MIN and CSV exports come from the server's
export endpoint. Scored in a study without projects of its own, each is refused with the control's name and
``--control``, then read with it; scored in a study whose projects setup-labelstudio made, each is refused
as another server's. In that study, the admin's annotation in a simulated coder's project is an unassigned
annotator: counted and left out, scored only with ``--include-unassigned``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from annotation.client import connect
from benchmark.labelstudio_files import load_state
from annotation.simulate import simulate_coders
from benchmark import cli
from benchmark.study import Study
from tests.fixtures_labelstudio import attached_copy
from tests.fixtures_study import copy_study
from tests.test_exports import foreign_config

pytestmark = pytest.mark.labelstudio

FORMATS = {"JSON": ".json", "JSON_MIN": ".json", "CSV": ".csv"}


@pytest.fixture(scope="module")
def site(small_study: Study, labelstudio_server, tmp_path_factory) -> dict:
    """The other site's exports {control: {format: path}} and the codes its user picked {control: {hadm_id: codes}}."""
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=labelstudio_server.url, api_key=labelstudio_server.api_key, timeout=60)
    refs = {int(h): sorted(g["code"]) for h, g in pd.read_parquet(small_study.references).groupby("hadm_id")}
    sample = [int(x) for x in small_study.sample.read_text().split()][:6]
    folder = tmp_path_factory.mktemp("other-site")
    exports: dict[str, dict[str, Path]] = {}
    picked: dict[str, dict[int, list[str]]] = {}
    for control, ui in (("icd9", "choices"), ("dx", "taxonomy")):
        chosen = {h: refs[h][: 1 + i % 3] for i, h in enumerate(sample[:5])}   # one code: a bare string in JSON_MIN
        codes = sorted({c for v in chosen.values() for c in v})
        project = client.projects.create(title=f"Coding at another site ({control})",
                                         label_config=foreign_config(control, ui, codes))
        response = client.projects.import_tasks(project.id, request=[{"data": {"text": f"Note {h}.", "hadm_id": h}}
                                                                     for h in sample], return_task_ids=True)
        task_ids = sorted(int(t) for t in response.task_ids)
        for task_id, h in zip(task_ids, sample[:5]):
            value = {"choices": chosen[h]} if ui == "choices" else {"taxonomy": [["all", c] for c in chosen[h]]}
            client.annotations.create(task_id, lead_time=30.0,
                                      result=[{"from_name": control, "to_name": "note", "type": ui, "value": value}])
        exports[control] = {}
        for fmt, suffix in FORMATS.items():
            raw = b"".join(client.projects.exports.download_sync(project.id, export_type=fmt, download_all_tasks=True))
            path = folder / f"{control}-{fmt.lower()}{suffix}"
            path.write_bytes(raw)
            exports[control][fmt] = path
        picked[control] = chosen
    return {"exports": exports, "picked": picked}


def _score(root: Path, export: Path, capsys, *extra: str) -> tuple[int, str, str]:
    code = cli.main(["--study", str(root), "score", "--coders", str(export), "--bootstrap", "20", *extra])
    out, err = capsys.readouterr()
    return code, out, err.strip()


def _one_line_error(code: int, err: str) -> None:
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_other_sites_control_is_named_then_read(site: dict, small_study: Study, tmp_path: Path, capsys) -> None:
    root = copy_study(small_study, tmp_path / "study").root    # no Label Studio projects of its own
    for control, by_format in site["exports"].items():
        tables = {}
        for fmt, path in by_format.items():
            code, _, err = _score(root, path, capsys)
            _one_line_error(code, err)
            assert f"control '{control}'" in err and f"--control {control}" in err and str(path) in err, (fmt, err)
            code, _, err = _score(root, path, capsys, "--control", control)
            assert code == 0, (fmt, err)
            scores = json.loads((root / "scores.json").read_text())
            humans = {d["hadm_id"]: list(d["humans"].values()) for d in scores["per_document"]}
            assert humans == {h: [sorted(c)] for h, c in site["picked"][control].items()}, (control, fmt)
            table1 = scores["table1"]
            assert table1["counts"]["scored"] == 5 and table1["attribution"]["controls"] == [control]
            tables[fmt] = [(r["system"], r["micro"], r["macro"]) for r in table1["rows"]]
        assert tables["JSON"] == tables["JSON_MIN"] == tables["CSV"], control
        assert tables["JSON"][0][1]["precision"] == 1.0 and tables["JSON"][1][0].startswith("Coder A (")


def test_study_with_projects_refuses_other_servers_and_leaves_out_unassigned(
        site: dict, small_study: Study, labelstudio_server, tmp_path: Path, capsys) -> None:
    from label_studio_sdk import LabelStudio

    root = tmp_path / "study"
    study = attached_copy(small_study.root, root, labelstudio_server)
    assert cli.main(["--study", str(root), "setup-labelstudio", "--simulated", "--coders", "sim-x@example.org",
                     "--design", "split", "--ui", "choices"]) == 0
    capsys.readouterr()                                    # setup's progress lines
    for by_format in site["exports"].values():
        for fmt, path in by_format.items():
            code, _, err = _score(root, path, capsys, "--control", "icd9", "--control", "dx")
            _one_line_error(code, err)
            assert "different Label Studio server" in err and str(path) in err, (fmt, err)
            if fmt == "JSON":
                assert "which is not one of this study's projects" in err

    summary = simulate_coders(study, connect(study.labelstudio_dir), seed=1, progress=False)
    n_coded = sum(summary.per_coder.values())
    entry = load_state(study.labelstudio_dir)["projects"][0]
    admin = LabelStudio(base_url=labelstudio_server.url, api_key=labelstudio_server.api_key, timeout=60)
    admin_id = int(admin.annotations.create(entry["task_ids"][0], lead_time=5.0, result=[
        {"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": ["401.9"]}}]).completed_by)
    assert cli.main(["--study", str(root), "pull"]) == 0
    merged = study.exports_dir / "merged-latest.json"
    code, out, err = _score(root, merged, capsys)
    assert code == 0, err
    table1 = json.loads(study.scores.read_text())["table1"]
    counts = table1["counts"]
    left_out = counts["skipped"] + counts["cancelled"]
    assert counts["annotations"] == n_coded + 1 and counts["unassigned"] == 1
    assert counts["scored"] == n_coded - left_out
    assert table1["unassigned_annotators"] == [{"annotator": f"user {admin_id}", "id": admin_id, "email": None,
                                                "projects": [entry["id"]], "n_annotations": 1}]
    assert [r["system"] for r in table1["rows"] if r["kind"] == "coder"] == ["Simulated coder A (sim-x@example.org)"]
    assert f"user {admin_id} (1); not scored (--include-unassigned scores them)" in out

    code, out, err = _score(root, merged, capsys, "--include-unassigned")
    assert code == 0, err
    table1 = json.loads(study.scores.read_text())["table1"]
    assert table1["counts"]["scored"] == n_coded - left_out + 1
    assert [r["system"] for r in table1["rows"] if r["kind"] == "coder"] == [
        "Simulated coder A (sim-x@example.org)", f"Unassigned annotator B (user {admin_id})"]
