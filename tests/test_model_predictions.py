"""Any model's predictions (Edin et al.'s .feather, a long CSV/parquet table, run names) through `bench
evaluate` and `bench score`: read, scored, equal to scikit-learn on the same scores, and every bad file refused
with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.metrics import f1_score, roc_auc_score

from benchmark.cli import main
from benchmark.metrics import THRESHOLD_GRID
from tests.test_scoring import scored  # noqa: F401  (the module fixture: study copy, export, references, sample)


def _split(study, split: str) -> np.ndarray:
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "split"])
    return docs.loc[docs["split"] == split, "hadm_id"].to_numpy(np.int64)


def _scores(study, refs, hadm_ids: np.ndarray, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Catalogue codes, a noisy score matrix that favours each admission's references, and the truth."""
    codes = pd.read_parquet(study.codes)["code"].tolist()
    col = {c: i for i, c in enumerate(codes)}
    rng = np.random.default_rng(seed)
    probs = (rng.random((len(hadm_ids), len(codes))) * 0.6).astype(np.float32)
    y = np.zeros(probs.shape, dtype=bool)
    for r, h in enumerate(hadm_ids):
        cols = [col[c] for c in refs[int(h)]]
        y[r, cols] = True
        probs[r, cols] = rng.uniform(0.2, 1.0, len(cols))
    return codes, probs, y


def _write_feather(path: Path, codes, probs, hadm_ids) -> Path:
    table = pd.DataFrame(logit(probs.astype(np.float64)), columns=codes)
    table["target"] = [[] for _ in hadm_ids]
    table["_id"] = hadm_ids
    table.to_feather(path)
    return path


def _write_long(path: Path, codes, probs, hadm_ids, floor: float = 0.05) -> Path:
    """Only pairs scoring above ``floor`` (the others are absent, i.e. score 0); every third catalogue code
    undotted where that reads back to one code (001.1 and 00.11 are both "0011")."""
    rows, cols = np.nonzero(probs > floor)
    undotted = pd.Series([c.replace(".", "") for c in codes])
    unique = set(undotted[~undotted.duplicated(keep=False)])
    written = np.array([c.replace(".", "") if j % 3 == 0 and c.replace(".", "") in unique else c
                        for j, c in enumerate(codes)])
    names = written[cols]
    table = pd.DataFrame({"hadm_id": hadm_ids[rows], "code": names, "score": probs[rows, cols]})
    table.to_csv(path, index=False) if path.suffix == ".csv" else table.to_parquet(path)
    return path


def _row(study, name: str) -> dict:
    return [r for r in json.loads(study.scores.read_text())["table2"]["rows"] if r["system"] == name][0]


def _assert_sklearn(row: dict, y: np.ndarray, probs: np.ndarray, threshold: float) -> None:
    positive = y.any(0) & ~y.all(0)
    assert row["auc_macro"] == pytest.approx(roc_auc_score(y[:, positive], probs[:, positive], average="macro"), abs=1e-9)
    # sklearn integrates the ROC curve by trapezoids over ~10^5 points: ~1e-8 of float error at this size
    assert row["auc_micro"] == pytest.approx(roc_auc_score(y.ravel(), probs.ravel()), abs=1e-7)
    pred = probs >= np.float32(threshold)
    assert row["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro", zero_division=0), abs=1e-12)
    assert row["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)


@pytest.mark.parametrize("fmt", ["feather", "csv", "parquet"])
def test_each_format_scores_like_sklearn(scored, tmp_path: Path, fmt: str) -> None:  # noqa: F811
    study, _, refs, _ = scored
    test = _split(study, "test")
    codes, probs, y = _scores(study, refs, test, seed=1)
    path = tmp_path / f"predictions_test.{fmt}"
    if fmt == "feather":
        _write_feather(path, codes, probs, test)
    else:
        _write_long(path, codes, probs, test)
        probs = np.where(probs > 0.05, probs, 0).astype(np.float32)  # absent pairs score 0
    assert main(["--study", str(study.root), "evaluate", "--predictions", str(path), "--name", f"Model {fmt}"]) == 0
    row = _row(study, f"Model {fmt}")
    assert row["threshold"] == 0.5 and row["threshold_source"] == "default" and row["covers_test_split"]
    expected = probs if fmt != "feather" else 1 / (1 + np.exp(-logit(probs.astype(np.float64))))
    _assert_sklearn(row, y, expected.astype(np.float32), 0.5)


def test_dev_predictions_tune_the_threshold_and_threshold_flag(scored, tmp_path: Path) -> None:  # noqa: F811
    study, _, refs, _ = scored
    test, dev = _split(study, "test"), _split(study, "dev")
    codes, probs, y = _scores(study, refs, test, seed=2)
    _, dev_probs, dev_y = _scores(study, refs, dev, seed=3)
    test_file = _write_feather(tmp_path / "predictions_test.feather", codes, probs, test)
    dev_file = _write_feather(tmp_path / "predictions_val.feather", codes, dev_probs, dev)
    assert main(["--study", str(study.root), "evaluate", "--predictions", str(test_file), "--name", "PLM",
                 "--dev-predictions", str(dev_file), "--predictions", str(test_file), "--name", "PLM at 0.3",
                 "--threshold", "0.3"]) == 0
    row = _row(study, "PLM")
    # The dev-tuned threshold is the grid point with the best dev micro-F1, by scikit-learn (lowest on ties).
    dev_scores = (1 / (1 + np.exp(-logit(dev_probs.astype(np.float64))))).astype(np.float32)
    f1 = [f1_score(dev_y, dev_scores >= t, average="micro", zero_division=0) for t in THRESHOLD_GRID]
    assert row["threshold_source"] == "dev-tuned" and row["threshold"] == pytest.approx(float(THRESHOLD_GRID[int(np.argmax(f1))]))
    test_scores = (1 / (1 + np.exp(-logit(probs.astype(np.float64))))).astype(np.float32)
    _assert_sklearn(row, y, test_scores, row["threshold"])
    fixed = _row(study, "PLM at 0.3")
    assert fixed["threshold"] == 0.3 and fixed["threshold_source"] == "given"
    _assert_sklearn(fixed, y, test_scores, 0.3)


def test_score_takes_a_long_table_beside_the_coders(scored, tmp_path: Path, capsys) -> None:  # noqa: F811
    study, export, refs, sample = scored
    test = _split(study, "test")
    codes, probs, y = _scores(study, refs, test, seed=4)
    path = _write_long(tmp_path / "llm.csv", codes, probs, test)
    assert main(["--study", str(study.root), "score", "--coders", str(export), "--predictions", str(path),
                 "--name", "LLM", "--threshold", "0.5", "--bootstrap", "20"]) == 0
    assert "LLM" in capsys.readouterr().out
    row = [r for r in json.loads(study.scores.read_text())["table1"]["rows"] if r["system"] == "LLM"][0]
    rows = [list(test).index(h) for h in sorted(sample)]
    pred = np.where(probs > 0.05, probs, 0)[rows] >= np.float32(0.5)
    assert row["micro"]["f1"] == pytest.approx(f1_score(y[rows], pred, average="micro", zero_division=0), abs=1e-12)
    assert row["model"]["threshold_source"] == "given"


def test_a_run_name_means_its_test_split_set(scored, capsys) -> None:  # noqa: F811
    study, _, _, _ = scored
    (study.runs_dir / "small").mkdir(parents=True, exist_ok=True)  # the run that wrote small-test
    assert main(["--study", str(study.root), "evaluate", "--predictions", "small"]) == 0
    assert _row(study, "RAC (small)")["name"] == "small-test"
    (study.runs_dir / "unpredicted").mkdir()
    assert main(["--study", str(study.root), "evaluate", "--predictions", "unpredicted"]) == 2
    assert "bench predict --run unpredicted --split test" in capsys.readouterr().err


def _bad_files(study, refs, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    test, dev = _split(study, "test"), _split(study, "dev")
    codes, probs, _ = _scores(study, refs, test, seed=5)
    feather = _write_feather(tmp_path / "good.feather", codes, probs, test)
    no_id = tmp_path / "no_id.feather"
    pd.read_feather(feather).drop(columns="_id").to_feather(no_id)
    nan = tmp_path / "nan.feather"
    table = pd.read_feather(feather)
    table.iloc[3, 2] = np.nan
    table.to_feather(nan)
    long = _write_long(tmp_path / "good.csv", codes, probs, test)
    no_score = tmp_path / "no_score.csv"
    pd.read_csv(long).drop(columns="score").to_csv(no_score, index=False)
    empty_score = tmp_path / "empty_score.csv"
    text = long.read_text().splitlines()
    text[5] = ",".join(text[5].split(",")[:2]) + ","
    empty_score.write_text("\n".join(text) + "\n")
    outside = _write_long(tmp_path / "dev_ids.parquet", codes, probs[: len(dev)], dev)
    unknown = tmp_path / "unknown_code.csv"
    pd.DataFrame({"hadm_id": test, "code": "ZZZ.9", "score": 0.9}).to_csv(unknown, index=False)
    logits = tmp_path / "logits.csv"
    pd.DataFrame({"hadm_id": test, "code": codes[0], "score": 3.2}).to_csv(logits, index=False)
    p = ["--predictions"]
    return {
        "missing _id": ([*p, str(no_id)], "missing column '_id'"),
        "NaN logit": ([*p, str(nan)], "NaN scores"),
        "missing score": ([*p, str(no_score)], "missing column(s) score"),
        "empty score": ([*p, str(empty_score)], "not a probability"),
        "ids outside the split": ([*p, str(outside)], "not in this study's test split"),
        "code outside the code system": ([*p, str(unknown)], "codes not in the code system"),
        "logits in a long table": ([*p, str(logits)], "apply a sigmoid"),
        "unknown suffix": ([*p, str(tmp_path / "x.txt")], "unknown prediction format"),
        "dev file from the test split": ([*p, str(feather), "--dev-predictions", str(feather)], "not in this study's dev split"),
        "dev and threshold": ([*p, str(feather), "--dev-predictions", str(feather), "--threshold", "0.4"], "not both"),
    }


def test_every_bad_file_is_one_line_exit_2(scored, tmp_path: Path, capsys) -> None:  # noqa: F811
    study, export, refs, _ = scored
    (tmp_path / "x.txt").write_text("hello\n")
    cases = _bad_files(study, refs, tmp_path)
    for label, (argv, message) in cases.items():
        for command in (["evaluate"], ["score", "--coders", str(export), "--bootstrap", "5"]):
            code = main(["--study", str(study.root), *command, *argv])
            err = capsys.readouterr().err
            assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (label, command, err)
