"""`bench predict`: a valid prediction set with the dev-tuned threshold and evidence that points into the notes."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import train as cli_train
from benchmark.errors import UserError
from benchmark.predictions import read_predictions
from benchmark.study import Study
from benchmark.text import tokenize
from rac.config import resolve
from rac.train import train
from tests.rac_helpers import build_study


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Study, str]:
    study = build_study(tmp_path_factory.mktemp("rac-predict") / "study", n=30)
    train(study, "p", resolve("tiny", ["epochs=2"]))
    return study, "p"


def _bench(study: Study, *argv: str) -> int:
    """Parse and run one `bench` subcommand of this module (the full CLI needs every command module)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--study")
    cli_train.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--study", str(study.root), *argv])
    return args.func(args)


def test_predict_writes_a_valid_prediction_set_with_evidence(run: tuple[Study, str]) -> None:
    study, name = run
    assert _bench(study, "predict", "--run", name, "--split", "test") == 0
    out = study.predictions_dir / f"{name}-test"
    preds = read_predictions(out)
    summary = json.loads((study.runs_dir / name / "summary.json").read_text())
    docs = pd.read_parquet(study.documents).set_index("hadm_id")
    codes = pd.read_parquet(study.codes)["code"].tolist()
    assert preds.codes == codes and preds.split == "test" and preds.run == name
    assert sorted(preds.hadm_ids) == sorted(docs.index[docs["split"] == "test"])
    assert preds.probs.dtype == np.float16 and np.all((preds.probs >= 0) & (preds.probs <= 1))
    assert preds.threshold_source == "dev-tuned"
    assert preds.threshold == summary["models"][summary["selected"]]["threshold"]
    sets = preds.code_sets()
    psv = read_predictions(out / "predicted.psv")
    assert {h: sorted(c) for h, c in sets.items() if c} == {h: c for h, c in psv.sets.items() if c}
    rows = [json.loads(line) for line in (out / "evidence.jsonl").read_text().splitlines()]
    assert [r["hadm_id"] for r in rows] == preds.hadm_ids.tolist()
    n_windows = 0
    for row in rows:
        text = docs.loc[row["hadm_id"], "text"]
        assert sorted(row["codes"]) == sorted(sets[row["hadm_id"]])  # evidence for every predicted code
        for windows in row["codes"].values():
            assert 1 <= len(windows) <= 3
            for w in windows:
                assert 0 <= w["start"] < w["end"] <= len(text) and 0 <= w["score"] <= 1
                window = tokenize(text[w["start"]:w["end"]])
                # a window starts and ends on token boundaries and spans at most `kernel` tokens
                assert 1 <= len(window) <= resolve("tiny").kernel
                assert text[w["start"]:w["end"]].lower().startswith(window[0])
                n_windows += 1
    assert n_windows > 0
    # title embeddings were computed once and cached with the run
    assert len(list((study.runs_dir / name).glob("title-embeddings-*.pt"))) == 1


def test_predict_on_the_sample_and_errors(run: tuple[Study, str]) -> None:
    study, name = run
    _bench(study, "predict", "--run", name, "--split", "sample", "--model", "best")
    preds = read_predictions(study.predictions_dir / f"{name}-sample")
    assert preds.hadm_ids.tolist() == [int(x) for x in study.sample.read_text().split()]
    with pytest.raises(UserError, match="bench train --name nope"):
        _bench(study, "predict", "--run", "nope")


def test_bench_train_rejects_a_config_that_does_not_fit(run: tuple[Study, str]) -> None:
    study, _ = run
    with pytest.raises(UserError, match="not a multiple"):
        _bench(study, "train", "--name", "x", "--preset", "tiny", "--nproc", "3")
    with pytest.raises(UserError, match="unknown ablation 'codes'"):
        _bench(study, "train", "--name", "x", "--preset", "tiny", "--ablate", "swa,codes")
