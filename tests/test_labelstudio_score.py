"""The human arm end to end: coders annotate through the API as themselves, `bench pull`, `bench score --coders`.

Two simulated coder accounts (``annotation.simulate``) code a 50-note study with an overlap for agreement,
each with their own token; the pulled export is scored by the scoring engineer's CLI, and scores.json must
carry one row per coder, marked simulated, with the coder's identity.
"""

from __future__ import annotations

import json

import pytest

from annotation.client import connect
from annotation.simulate import simulate_coders
from benchmark import cli
from tests.fixtures_labelstudio import attached_copy

pytestmark = pytest.mark.labelstudio

CODERS = ["sim-a@example.org", "sim-b@example.org"]


def test_simulated_coders_pull_and_score(small_study, labelstudio_server, tmp_path) -> None:
    root = tmp_path / "study"
    study = attached_copy(small_study.root, root, labelstudio_server)
    n_sample = len(study.sample.read_text().split())
    assert cli.main(["--study", str(root), "setup-labelstudio", "--simulated", "--coders", ",".join(CODERS),
                     "--design", "overlap:6"]) == 0

    summary = simulate_coders(study, connect(study.labelstudio_dir), seed=1, progress=False)
    assert sum(summary.per_coder.values()) == n_sample + 6       # overlap notes are coded by both
    again = simulate_coders(study, connect(study.labelstudio_dir), seed=1, progress=False)
    assert sum(again.per_coder.values()) == 0                     # a re-run codes nothing twice

    merged = study.exports_dir / "merged-latest.json"
    assert cli.main(["--study", str(root), "pull"]) == 0
    tasks = json.loads(merged.read_text())
    coders = {c["email"]: c for c in json.loads((study.labelstudio_dir / "coders.json").read_text())["coders"]}
    for task in tasks:
        for ann in task["annotations"]:
            assert ann["completed_by"] == coders[task["coding_bench"]["coder"]]["id"]  # posted as that coder

    assert cli.main(["--study", str(root), "score", "--coders", str(merged), "--bootstrap", "20"]) == 0
    table1 = json.loads(study.scores.read_text())["table1"]
    rows = {r["coder"]["email"]: r for r in table1["rows"] if r["kind"] == "coder"}
    assert sorted(rows) == CODERS
    for email, row in rows.items():
        assert row["simulated"] is True and row["coder"]["id"] == coders[email]["id"]
        assert 0 < row["micro"]["recall"] < 1                      # under-coding, but not nothing
