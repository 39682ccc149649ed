"""`bench setup-labelstudio` and `bench pull` against a real Label Studio 1.23 server (session fixture).

One setup of the 508-note study is shared by the module (two coders, ``split``); the tests then check
what the issue asks: task count, config vs shortlist, no reference codes in Label Studio, coders who
authenticate with their own tokens, an annotation posted as a coder appearing in `bench pull` (also
after a server restart), idempotent re-runs, and resuming an interrupted import.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from annotation import server as ls_server
from annotation.accounts import coder_token, ensure_coders, set_passwords
from annotation.client import check_server, connect
from annotation.config import choice_codes, items_file
from annotation.projects import setup_projects
from benchmark.labelstudio_files import load_state, read_coders
from benchmark import cli
from benchmark.errors import UserError
from benchmark.sampling import read_shortlist
from benchmark.study import Study
from tests.fixtures_labelstudio import attach_study, attached_copy

pytestmark = pytest.mark.labelstudio

CODERS = ["ann@example.org", "bob@example.org"]


@pytest.fixture(scope="module")
def ls_study(annotation_study: Path, labelstudio_server, tmp_path_factory) -> Study:
    """The 508-note study set up once: two coders, split design, taxonomy UI."""
    root = tmp_path_factory.mktemp("ls-setup") / "study"
    study = attached_copy(annotation_study, root, labelstudio_server)
    started = time.perf_counter()
    code = cli.main(["--study", str(root), "setup-labelstudio", "--coders", ",".join(CODERS), "--design", "split"])
    assert code == 0
    print(f"\nsetup of 508 tasks (2 coders, incl. accounts): {time.perf_counter() - started:.1f} s")
    return study


def _admin(study: Study):
    return connect(study.labelstudio_dir)


def _tasks(conn, project_id: int) -> list:
    return list(conn.client.tasks.list(project=project_id, page_size=1000, fields="task_only"))


def test_508_tasks_one_project_per_coder(ls_study: Study) -> None:
    conn = _admin(ls_study)
    state = load_state(ls_study.labelstudio_dir)
    assert sorted(p["coder"] for p in state["projects"]) == CODERS
    assert {p["arm"] for p in state["projects"]} == {"unassisted"}
    hadm_ids = []
    for entry in state["projects"]:
        tasks = _tasks(conn, entry["id"])
        assert sorted(int(t.id) for t in tasks) == entry["task_ids"]
        hadm_ids += [int(t.data["hadm_id"]) for t in tasks]
    sample = [int(x) for x in ls_study.sample.read_text().split()]
    assert len(hadm_ids) == 508 == len(set(hadm_ids))  # split: disjoint shares covering the sample
    assert sorted(hadm_ids) == sorted(sample)
    assert len(state["tasks"]) == 508


def _offered(conn, config: str) -> tuple[list[str], str]:
    """The codes a project's config offers, and the text that carries them (the items file, if it loads one)."""
    name = items_file(config)
    if name is None:
        return choice_codes(config), config
    text = (ls_server.files_dir(conn.local_dir) / name).read_text(encoding="utf-8")
    return choice_codes(config, json.loads(text)), text


def test_config_offers_exactly_the_shortlist(ls_study: Study) -> None:
    conn = _admin(ls_study)
    shortlist = read_shortlist(ls_study)
    for entry in load_state(ls_study.labelstudio_dir)["projects"]:
        config = conn.client.projects.get(entry["id"]).label_config
        assert items_file(config) is not None  # the local server's taxonomy loads its tree from the items file
        codes, _ = _offered(conn, config)
        assert len(codes) == len(shortlist)
        assert set(codes) == set(shortlist)
        assert 'name="comment"' in config and 'name="insufficient_documentation"' in config
        assert "127.0.0.1" not in config  # host- and port-free: survives a restart on another port
        storages = conn.client.import_storage.local.list(project=entry["id"])
        assert [s.path for s in storages] == [str(ls_server.files_dir(conn.local_dir) / "picker")]
        served = requests.get(f"{conn.url}/data/local-files/?d={items_file(config)}", timeout=30,
                              headers={"Authorization": f"Token {conn.creds.api_key}"})
        assert served.ok and choice_codes(config, served.json()) == codes
        assert requests.get(f"{conn.url}/data/local-files/?d={items_file(config)}", timeout=30).status_code == 401


def test_no_reference_codes_enter_label_studio(ls_study: Study) -> None:
    conn = _admin(ls_study)
    refs = pd.read_parquet(ls_study.references)
    shortlist = set(read_shortlist(ls_study))
    off_list = set(refs["code"]) - shortlist
    state = load_state(ls_study.labelstudio_dir)
    assert len(state["setup_id"]) == 32                           # a uuid4, drawn by the first setup
    for entry in state["projects"]:
        codes, text = _offered(conn, conn.client.projects.get(entry["id"]).label_config)
        assert not off_list & set(codes)                          # only the shortlist is in the picker
        assert not [c for c in off_list if f'"{c}"' in text or f'"{c} ' in text]
        for task in _tasks(conn, entry["id"]):
            assert set(task.data) == {"text", "hadm_id", "sample_index", "setup_id"}  # no code fields at all
            assert task.data["setup_id"] == state["setup_id"]


@pytest.fixture(scope="module")
def passwords(ls_study: Study) -> dict[str, str]:
    """Known passwords for the module's coders (the initial ones were shown once and not kept)."""
    chosen = {email: f"pw-{i}-Secret-123" for i, email in enumerate(CODERS)}
    set_passwords(_admin(ls_study).local_dir, chosen)
    return chosen


def test_coders_authenticate_with_their_own_tokens(ls_study: Study, passwords: dict[str, str]) -> None:
    recorded = read_coders(ls_study.labelstudio_dir)
    assert [c.email for c in recorded] == CODERS and not any(c.simulated for c in recorded)
    stored = (ls_study.labelstudio_dir / "coders.json").read_text()
    assert "password" not in stored and "token" not in stored
    conn = _admin(ls_study)
    for coder in recorded:
        token = coder_token(conn.url, coder.email, passwords[coder.email])
        assert token != conn.creds.api_key
        who = requests.get(f"{conn.url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=30)
        assert who.ok and who.json()["email"] == coder.email and who.json()["id"] == coder.id


def test_credentials_file_is_private(labelstudio_server) -> None:
    path = labelstudio_server.data_dir / "credentials"
    assert path.stat().st_mode & 0o777 == 0o600
    assert labelstudio_server.url.startswith("http://127.0.0.1:")


def test_rerun_adds_nothing(ls_study: Study, capsys) -> None:
    before = json.loads((ls_study.labelstudio_dir / "projects.json").read_text())
    assert cli.main(["--study", str(ls_study.root), "setup-labelstudio"]) == 0
    out = capsys.readouterr().out
    assert "0 task(s) imported, 508 already there" in out
    assert json.loads((ls_study.labelstudio_dir / "projects.json").read_text()) == before
    conn = _admin(ls_study)
    assert sum(len(_tasks(conn, p["id"])) for p in before["projects"]) == 508


def test_annotation_as_coder_is_pulled_with_identity_even_after_restart(ls_study: Study, labelstudio_server,
                                                                       passwords: dict[str, str]) -> None:
    from label_studio_sdk import LabelStudio

    conn = _admin(ls_study)
    coder = read_coders(ls_study.labelstudio_dir)[0]
    client = LabelStudio(base_url=conn.url, api_key=coder_token(conn.url, coder.email, passwords[coder.email]))
    entry = next(p for p in load_state(ls_study.labelstudio_dir)["projects"] if p["coder"] == coder.email)
    task_id = entry["task_ids"][0]
    code = read_shortlist(ls_study)[0]
    result = [{"from_name": "codes", "to_name": "text", "type": "taxonomy",
               "value": {"taxonomy": [["chapter", "category", code]]}}]
    created = client.annotations.create(task_id, result=result, lead_time=42.0)
    assert created.completed_by == coder.id

    # The config of a project with annotations is not changed without --force.
    with pytest.raises(UserError, match="already has 1 annotation"):
        setup_projects(ls_study, conn, read_coders(ls_study.labelstudio_dir), ui="choices", progress=False)

    ls_server.stop(labelstudio_server.data_dir)          # a restart moves the server to a new free port
    ls_server.start(labelstudio_server.data_dir)
    attach_study(ls_study.root, labelstudio_server)
    out = ls_study.exports_dir / "pulled.json"
    assert cli.main(["--study", str(ls_study.root), "pull", "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert len(merged) == 508
    annotated = [t for t in merged if t["annotations"]]
    assert [t["id"] for t in annotated] == [task_id]
    ann = annotated[0]["annotations"][0]
    assert ann["completed_by"] == coder.id and ann["lead_time"] == 42.0
    assert annotated[0]["coding_bench"]["coder"] == coder.email
    assert list(ls_study.exports_dir.glob("*-project-*.json"))  # raw responses archived


def test_existing_server_gets_the_inline_tree_and_keeps_it(annotation_study: Path, labelstudio_server, tmp_path,
                                                          monkeypatch) -> None:
    """A server named by --url: we cannot write to its disk, so the tree is inlined; a later local re-run keeps it."""
    study = attached_copy(annotation_study, tmp_path / "study", labelstudio_server)
    coders, _ = ensure_coders(connect(study.labelstudio_dir), study.labelstudio_dir, ["url@example.org"],
                              simulated=True)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", labelstudio_server.api_key)
    remote = connect(study.labelstudio_dir, labelstudio_server.url)
    assert remote.local_dir is None
    setup_projects(study, remote, coders, progress=False)
    (entry,) = load_state(study.labelstudio_dir)["projects"]
    config = remote.client.projects.get(entry["id"]).label_config
    assert items_file(config) is None and len(choice_codes(config)) == len(read_shortlist(study))
    assert not remote.client.import_storage.local.list(project=entry["id"])

    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    summary = setup_projects(study, connect(study.labelstudio_dir), coders, progress=False)
    assert summary.imported == 0 and summary.already_there == 508
    assert remote.client.projects.get(entry["id"]).label_config == config


def test_interrupted_import_resumes_without_duplicates(annotation_study: Path, labelstudio_server, tmp_path,
                                                       monkeypatch) -> None:
    """The server accepts batch 3, then the process dies before recording it: a re-run must not re-import it."""
    from annotation import projects

    study = attached_copy(annotation_study, tmp_path / "study", labelstudio_server)
    conn = connect(study.labelstudio_dir)
    coders, _ = ensure_coders(conn, study.labelstudio_dir, ["crash@example.org"], simulated=True)
    real_save, calls = projects.save_state, {"n": 0}

    def crash_on_fourth_save(data_dir, state):
        calls["n"] += 1
        if calls["n"] == 4:  # saves: project created, batch 1, batch 2, [batch 3 -> crash]
            raise KeyboardInterrupt("killed mid-import")
        real_save(data_dir, state)

    monkeypatch.setattr(projects, "save_state", crash_on_fourth_save)
    with pytest.raises(KeyboardInterrupt):
        setup_projects(study, conn, coders, batch_size=100, progress=False)
    monkeypatch.setattr(projects, "save_state", real_save)
    entry = load_state(study.labelstudio_dir)["projects"][0]
    assert len(entry["task_ids"]) == 200                      # two batches recorded ...
    assert len(_tasks(conn, entry["id"])) == 300              # ... three on the server

    summary = setup_projects(study, conn, coders, batch_size=100, progress=False)
    assert summary.imported == 208 and summary.already_there == 300
    tasks = _tasks(conn, entry["id"])
    hadm_ids = [int(t.data["hadm_id"]) for t in tasks]
    assert len(hadm_ids) == 508 == len(set(hadm_ids))
    assert sorted(load_state(study.labelstudio_dir)["projects"][0]["task_ids"]) == sorted(int(t.id) for t in tasks)


def test_connection_errors_are_one_line(labelstudio_server) -> None:
    from annotation.server import Credentials, free_port

    with pytest.raises(UserError, match="no Label Studio answers"):
        check_server(Credentials(f"http://127.0.0.1:{free_port()}", "x"), timeout=2)
    with pytest.raises(UserError, match="API token was rejected"):
        check_server(Credentials(labelstudio_server.url, "not-a-token"))
    assert check_server(Credentials(labelstudio_server.url, labelstudio_server.api_key)) == "1.23.2"


def test_assisted_arm_gets_predictions_in_separate_projects(ls_study: Study) -> None:
    import numpy as np

    from benchmark.predictions import Predictions, write_predictions

    sample = [int(x) for x in ls_study.sample.read_text().split()]
    shortlist = read_shortlist(ls_study)
    probs = np.zeros((len(sample), 3), dtype=np.float32)
    probs[:, 0] = 0.9                                             # every note: the first code predicted
    write_predictions(ls_study.predictions_dir / "tiny-sample", Predictions(
        name="tiny-sample", hadm_ids=np.asarray(sample), codes=shortlist[:3], probs=probs, run="tiny", split="sample"))
    assert cli.main(["--study", str(ls_study.root), "setup-labelstudio", "--assist", "tiny"]) == 0
    conn = _admin(ls_study)
    state = load_state(ls_study.labelstudio_dir)
    assisted = [p for p in state["projects"] if p["arm"] == "assisted"]
    assert sorted(p["coder"] for p in assisted) == CODERS
    for entry in state["projects"]:
        tasks = list(conn.client.tasks.list(project=entry["id"], page_size=1000, fields="all"))
        if entry["arm"] == "assisted":
            assert len(tasks) == 254
            for task in tasks[:5]:
                (pred,) = [p if isinstance(p, dict) else p.model_dump() for p in task.predictions]
                assert pred["model_version"] == "tiny"
                assert pred["result"][0]["value"]["taxonomy"][0][-1] == shortlist[0]
        else:
            assert all(not t.predictions for t in tasks)            # the baseline never sees the model
    # crossover: under split, a coder's assisted share is the other coder's unassisted share
    share = {(p["coder"], p["arm"]): {state["tasks"][str(t)] for t in p["task_ids"]} for p in state["projects"]}
    assert share[(CODERS[0], "assisted")] == share[(CODERS[1], "unassisted")]
