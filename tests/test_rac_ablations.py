"""The paper's Table 2 ablations (``--ablate swa,sentperm,titles``): each one trains, and its run records it."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from benchmark.errors import UserError
from benchmark.predictions import read_predictions
from benchmark.study import Study
from rac.config import resolve
from rac.model import CodeQueries, title_flops
from rac.predict import predict
from rac.run import build_model, load_data
from rac.train import train
from tests.rac_helpers import build_study, run_module

SETTINGS = ["epochs=2", "patience=0"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return build_study(tmp_path_factory.mktemp("rac-ablations") / "study", n=30)


def _trained(study: Study, name: str, ablate: str) -> tuple[dict, dict, list[dict]]:
    """(config.json, summary.json, metrics.jsonl rows) of a tiny run with ``--ablate ablate``."""
    train(study, name, resolve("tiny", SETTINGS, ablate=ablate))
    run = study.runs_dir / name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return json.loads((run / "config.json").read_text()), json.loads((run / "summary.json").read_text()), rows


def test_without_swa(study: Study) -> None:
    config, summary, rows = _trained(study, "no-swa", "swa")
    assert config["ablate"] == "swa" and summary["system"] == "RAC - SWA"
    assert [r["swa_snapshot"] for r in rows] == [False, False]  # tiny takes a snapshot every epoch otherwise
    assert list(summary["models"]) == ["best"] and summary["selected"] == "best"
    assert not (study.runs_dir / "no-swa" / "swa.pt").exists()


def test_without_sentence_permutation(study: Study) -> None:
    config, summary, _ = _trained(study, "no-sentperm", "sentperm")
    assert config["ablate"] == "sentperm" and summary["system"] == "RAC - SentPerm"
    assert config["augment_copies"] == 0 and resolve("tiny").augment_copies == 2
    n_train = int((pd.read_parquet(study.documents)["split"] == "train").sum())
    # one example per note and epoch instead of three (the note and two shuffled copies)
    assert summary["global_steps"] == 2 * math.ceil(n_train / config["global_batch"])


def test_without_code_titles(study: Study) -> None:
    config, summary, _ = _trained(study, "no-titles", "titles")
    assert config["ablate"] == "titles" and summary["system"] == "RAC - CodeTitles"
    cfg = resolve("tiny", SETTINGS, ablate="titles")
    data = load_data(study, study.runs_dir / "no-titles", cfg, splits=())
    start = build_model(cfg, data, torch.device("cpu"))
    # no title encoder: the coder is one query per code, it costs no FLOPs, and it has no title embedding
    assert isinstance(start.coder, CodeQueries)
    assert title_flops(start.config) == 0 < title_flops(resolve("tiny").model_config(10, 10))
    assert [n for n, _ in start.coder.named_parameters()] == ["queries"]
    assert start.coder.queries.shape == (len(data.codes), cfg.d)
    trained = torch.load(study.runs_dir / "no-titles" / "best.pt")["model"]
    assert not any(k.startswith(("coder.embed", "coder.conv")) for k in trained)
    # the queries learned: their gradient came through the hand-made dL/dE_t path, like the titles' does
    assert not torch.equal(trained["coder.queries"], start.coder.queries.detach())
    preds = read_predictions(predict(study, "no-titles", "test"))
    assert preds.probs.shape == (int((pd.read_parquet(study.documents)["split"] == "test").sum()), len(data.codes))
    assert preds.system == "RAC - CodeTitles (no-titles)"  # the row is named after the paper's Table 2 ablation


def test_all_three_through_the_module_command_line(study: Study) -> None:
    run_module(["-m", "rac.train", "--study", str(study.root), "--name", "bare", "--preset", "tiny",
                "--ablate", "titles,sentperm,swa", *[a for s in SETTINGS for a in ("--set", s)]])
    summary = json.loads((study.runs_dir / "bare" / "summary.json").read_text())
    assert summary["config"]["ablate"] == "swa,sentperm,titles"
    assert summary["system"] == "RAC - SWA - SentPerm - CodeTitles"
    assert study.step("train-bare")["system"] == summary["system"]
    # the same name with another ablation is another recipe: refused, not mixed into the run
    (study.runs_dir / "bare" / "summary.json").unlink()
    with pytest.raises(UserError, match="another config .*ablate: swa,sentperm,titles -> swa"):
        train(study, "bare", resolve("tiny", SETTINGS, ablate="swa"))


def test_ablation_errors() -> None:
    with pytest.raises(UserError, match="unknown ablation 'dropout'"):
        resolve("tiny", ablate="swa,dropout")
    with pytest.raises(UserError, match="without sentence permutation, but augment_copies=2"):
        resolve("paper", ["augment_copies=2"], ablate="sentperm").validate(world_size=1)
    assert resolve("paper", ["ablate=sentperm"]).augment_copies == 0  # --set ablate=... means the same
    assert resolve("paper").system_name == "RAC" and resolve("paper").ablate == ""

