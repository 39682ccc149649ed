"""`bench compare-arms`: per coder and arm, accuracy, codes per note, time per chart and agreement with the model,
and the paired test over the notes of the crossover. Exports are full JSON in Label Studio's shape, tagged by arm
as `bench pull` tags them; the coders of the assisted arm copy RAC's proposals (anchored), so the numbers are
known by construction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from benchmark.cli import main
from benchmark.metrics import micro_scores
from benchmark.predictions import Predictions, write_predictions
from benchmark.study import Study
from tests.fixtures_study import copy_study
from tests.test_exports import choices_annotation, full_task


Answers = list[tuple[int, int, list[str], float]]  # (hadm_id, coder id, codes, lead time in s) per note


def _export(path: Path, arm: str, answers: Answers) -> Path:
    tasks = []
    for i, (hadm, coder, codes, seconds) in enumerate(answers):
        ann = choices_annotation(100 + i, coder, codes)
        ann["lead_time"] = seconds
        task = full_task(i + 1, hadm, [ann])
        task["coding_bench"] = {"project": 1 if arm == "unassisted" else 2, "coder": f"user {coder}", "arm": arm}
        tasks.append(task)
    path.write_text(json.dumps(tasks))
    return path


class Crossover(NamedTuple):
    unassisted: Path  # the arms' exports
    assisted: Path
    plain: Answers  # what they hold
    helped: Answers


def write_crossover(study: Study, folder: Path) -> Crossover:
    """A 20-note crossover on ``study``: run "tiny"'s proposals (one right code, one wrong) as the assisted
    arm's model, and both arms' exports written into ``folder``."""
    sample = [int(x) for x in study.sample.read_text().split()][:20]
    refs = {int(h): sorted(g["code"]) for h, g in pd.read_parquet(study.references).groupby("hadm_id")}
    shortlist = study.shortlist.read_text().split()
    proposals = {h: sorted(set(refs[h][:1]) | {shortlist[0]}) for h in sample}
    codes = sorted({c for p in proposals.values() for c in p})
    probs = np.array([[0.9 if c in proposals[h] else 0.1 for c in codes] for h in sample], dtype=np.float32)
    write_predictions(study.predictions_dir / "tiny-sample", Predictions(
        "tiny-sample", np.asarray(sample), codes, probs, run="tiny", split="sample"))
    study.record_step("setup-labelstudio", {"assist": "tiny", "design": "split"})
    # Coder 3 codes the even notes unassisted and the odd ones assisted; coder 4 the other way round.
    plain = [(h, 3 if i % 2 == 0 else 4, refs[h][: max(1, len(refs[h]) // 2)], 300.0) for i, h in enumerate(sample)]
    helped = [(h, 4 if i % 2 == 0 else 3, proposals[h], 200.0) for i, h in enumerate(sample)]
    return Crossover(_export(folder / "plain.json", "unassisted", plain),
                     _export(folder / "helped.json", "assisted", helped), plain, helped)


def test_compare_arms_on_a_crossover(small_study: Study, tmp_path: Path, capsys) -> None:
    study = copy_study(small_study, tmp_path / "study")
    crossover = write_crossover(study, tmp_path)
    plain, helped = crossover.plain, crossover.helped
    refs = {int(h): sorted(g["code"]) for h, g in pd.read_parquet(study.references).groupby("hadm_id")}
    args = ["--study", str(study.root), "compare-arms", "--permutations", "500",
            "--unassisted", str(crossover.unassisted), "--assisted", str(crossover.assisted)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Assisted vs unassisted arm" in out and "paired over 20 notes" in out
    block = json.loads(study.scores.read_text())["arms"]
    rows = {r["coder"]: r for r in block["rows"]}
    assert sorted(rows) == ["All coders", "user 3", "user 4"]
    pooled = rows["All coders"]
    assert pooled["assisted"]["agreement_with_model_f1"] == 1.0            # fully anchored
    assert pooled["unassisted"]["agreement_with_model_f1"] < 1.0
    assert pooled["assisted"]["median_lead_time_s"] == 200.0 and pooled["unassisted"]["n_notes"] == 20

    def f1(answers):
        counts = np.array([[len(set(c) & set(refs[h])), len(set(c) - set(refs[h])), len(set(refs[h]) - set(c))]
                           for h, _, c, _ in answers], dtype=float)
        return micro_scores(counts[:, 0], counts[:, 1], counts[:, 2])["f1"]

    assert pooled["unassisted"]["f1"] == f1(plain) and pooled["assisted"]["f1"] == f1(helped)
    test = pooled["paired"]
    assert test["n_notes"] == 20 and abs(test["difference"] - (f1(helped) - f1(plain))) < 1e-12
    assert 0 < test["p_value"] <= 1
    assert rows["user 3"]["paired"] is None  # under split a coder never meets a note twice

    from reports.render import render_html

    html = render_html(study)
    assert 'id="arms"' in html and html.count('data-arm="assisted"') == 3
    assert 'data-coder="All coders" data-arm="assisted"' in html and "over 20 notes" in html


def test_compare_arms_without_an_assisted_arm_is_one_line(small_study: Study, tmp_path: Path, capsys) -> None:
    study = copy_study(small_study, tmp_path / "study")
    assert main(["--study", str(study.root), "compare-arms"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--assist RUN" in err and "\n" not in err
