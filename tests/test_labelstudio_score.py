"""The human arm end to end: coders annotate through the API as themselves, `bench pull`, `bench score --coders`.

Two simulated coder accounts (``annotation.simulate``, `bench simulate-coders --behaviour paper`) code a
50-note study with an overlap for agreement, each with their own token; the pulled export holds exactly
the generator's answers, it is scored by the scoring engineer's CLI, and scores.json must carry one row per
coder, marked simulated, with the coder's identity. A re-run with another behaviour is refused.
"""

from __future__ import annotations

import json

import pytest

from annotation.client import connect
from annotation.simulate import Vocabulary, draw_coders, simulate_assignment, simulate_coders
from benchmark import cli
from benchmark.exports import read_coder_exports
from benchmark.references import read_references
from tests.fixtures_labelstudio import attached_copy

pytestmark = pytest.mark.labelstudio

CODERS = ["sim-a@example.org", "sim-b@example.org"]


def test_simulated_coders_pull_and_score(small_study, labelstudio_server, tmp_path, capsys) -> None:
    root = tmp_path / "study"
    study = attached_copy(small_study.root, root, labelstudio_server)
    n_sample = len(study.sample.read_text().split())
    assert cli.main(["--study", str(root), "setup-labelstudio", "--simulated", "--coders", ",".join(CODERS),
                     "--design", "overlap:6"]) == 0

    assert cli.main(["--study", str(root), "simulate-coders", "--behaviour", "paper", "--seed", "1"]) == 0
    posted = [line for line in capsys.readouterr().out.splitlines() if line.startswith("simulated coder")]
    assert sum(int(line.split(": ")[1].split()[0]) for line in posted) == n_sample + 6  # overlap: coded by both
    again = simulate_coders(study, connect(study.labelstudio_dir), seed=1, progress=False, behaviour="paper")
    assert sum(again.per_coder.values()) == 0                     # a re-run codes nothing twice
    # Another behaviour on a coded study would mix two kinds of coder in one Table 1: one line, exit 2.
    assert cli.main(["--study", str(root), "simulate-coders", "--behaviour", "careful", "--seed", "1"]) == 2
    refused = capsys.readouterr().err.strip()
    assert "\n" not in refused and "--behaviour paper --seed 1" in refused and "Traceback" not in refused

    merged = study.exports_dir / "merged-latest.json"
    assert cli.main(["--study", str(root), "pull"]) == 0
    tasks = json.loads(merged.read_text())
    coders = {c["email"]: c for c in json.loads((study.labelstudio_dir / "coders.json").read_text())["coders"]}
    for task in tasks:
        for ann in task["annotations"]:
            assert ann["completed_by"] == coders[task["coding_bench"]["coder"]]["id"]  # posted as that coder

    # What Label Studio holds is exactly what the generator answered, coder by coder and note by note.
    exported = read_coder_exports([merged], study)
    assignment: dict[str, list[int]] = {}
    for ann in exported.annotations:
        assignment.setdefault(ann.coder, []).append(ann.hadm_id)
    expected = simulate_assignment(draw_coders(CODERS, "paper", 1), Vocabulary.from_study(study),
                                   read_references(study), assignment, seed=1)
    assert {(a.coder, a.hadm_id): list(a.codes) for a in exported.annotations} == {
        key: codes for key, (codes, _, _, skipped) in expected.items() if not skipped}

    assert cli.main(["--study", str(root), "score", "--coders", str(merged), "--bootstrap", "20",
                     "--profile", "paper"]) == 0
    table1 = json.loads(study.scores.read_text())["table1"]
    rows = {r["coder"]["email"]: r for r in table1["rows"] if r["kind"] == "coder"}
    assert sorted(rows) == CODERS
    for email, row in rows.items():
        assert row["simulated"] is True and row["coder"]["id"] == coders[email]["id"]
        assert 0 < row["micro"]["recall"] < 0.3                    # the paper's under-coding, but not nothing
        assert row["codes_per_note"] < row["reference_codes_per_note"] / 2
