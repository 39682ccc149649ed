"""TF-IDF + logistic regression as a model of the toolkit: trains on the small synthetic study, predicts in
the shared prediction format, and is scored like RAC."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from benchmark.cli import main
from benchmark.predictions import read_predictions
from rac.tfidf_lr import MODEL_LABEL, TOKEN_PATTERN, LRConfig, TfidfLR
from tests.fixtures_study import copy_study


@pytest.fixture(scope="module")
def lr_study(small_study, tmp_path_factory):
    study = copy_study(small_study, tmp_path_factory.mktemp("tfidf-lr") / "study")
    argv = ["--study", str(study.root), "train", "--model", "tfidf-lr", "--name", "lr", "--set", "min_train_notes=5"]
    assert main(argv) == 0
    return study, argv


def test_trains_and_predicts_in_the_shared_format(lr_study, capsys) -> None:
    study, _ = lr_study
    summary = json.loads((study.runs_dir / "lr" / "summary.json").read_text())
    entry = summary["models"][summary["selected"]]
    assert summary["model"] == "tfidf-lr" and 0.01 <= entry["threshold"] <= 0.99 and summary["n_codes_fitted"] > 10
    # Better than ranking every note by the codes' train frequencies.
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "split"])
    refs = pd.read_parquet(study.references, columns=["hadm_id", "code"])
    train_ids = set(docs.loc[docs["split"] == "train", "hadm_id"])
    top8 = set(refs[refs["hadm_id"].isin(train_ids)]["code"].value_counts().index[:8])
    dev = docs.loc[docs["split"] == "dev", "hadm_id"]
    prior_p8 = np.mean([len(top8 & set(refs.loc[refs["hadm_id"] == h, "code"])) / 8 for h in dev])
    assert entry["dev"]["p@8"] > prior_p8 + 0.05
    for split in ("test", "sample"):
        assert main(["--study", str(study.root), "predict", "--run", "lr", "--split", split]) == 0
    preds = read_predictions(study.predictions_dir / "lr-test")
    codes = pd.read_parquet(study.codes)["code"].tolist()
    assert preds.codes == codes and preds.probs.shape == (int((docs["split"] == "test").sum()), len(codes))
    assert preds.threshold == entry["threshold"] and preds.threshold_source == "dev-tuned"
    assert preds.system == f"{MODEL_LABEL} (lr)" and preds.split == "test"
    sample = [int(x) for x in study.sample.read_text().split()]
    assert read_predictions(study.predictions_dir / "lr-sample").hadm_ids.tolist() == sample
    assert main(["--study", str(study.root), "evaluate"]) == 0
    assert f"{MODEL_LABEL} (lr)" in capsys.readouterr().out
    row = json.loads(study.scores.read_text())["table2"]["rows"][0]
    assert row["system"] == f"{MODEL_LABEL} (lr)" and row["covers_test_split"]


def test_probabilities_are_scikit_learns(lr_study) -> None:
    """The stored weights give what scikit-learn's own fitted model gives, for a fitted and an unfitted code."""
    study, _ = lr_study
    cfg = LRConfig(min_train_notes=5)
    model = TfidfLR.load(study.runs_dir / "lr" / "model.npz")
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "split", "tokens"])
    train, test = docs[docs["split"] == "train"], docs[docs["split"] == "test"]
    vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN, sublinear_tf=True, min_df=cfg.min_df,
                                 max_df=cfg.max_df, max_features=cfg.max_features)
    x = vectorizer.fit_transform(train["tokens"])
    codes = pd.read_parquet(study.codes)["code"].tolist()
    column = int(model.fitted[0])
    refs = pd.read_parquet(study.references)
    positive = set(refs.loc[refs["code"] == codes[column], "hadm_id"])
    reference = LogisticRegression(C=cfg.C, solver="liblinear").fit(x, train["hadm_id"].isin(positive).astype(np.int64))
    ours = model.predict_proba(test["tokens"])
    expected = reference.predict_proba(vectorizer.transform(test["tokens"]))[:, 1]
    np.testing.assert_allclose(ours[:, column], expected, rtol=1e-4, atol=1e-6)
    unfitted = int(np.setdiff1d(np.arange(len(codes)), model.fitted)[0])
    assert np.all(ours[:, unfitted] == 0)


def test_rerun_is_idempotent_and_another_config_is_refused(lr_study, capsys) -> None:
    study, argv = lr_study
    before = (study.runs_dir / "lr" / "model.npz").read_bytes()
    assert main(argv) == 0 and "already trained" in capsys.readouterr().out
    assert (study.runs_dir / "lr" / "model.npz").read_bytes() == before
    code = main([*argv[:-1], "min_train_notes=6"])
    err = capsys.readouterr().err
    assert code == 2 and "min_train_notes: 5 -> 6" in err and len(err.strip().splitlines()) == 1
    assert main([*argv, "--preset", "tiny"]) == 2 and "RAC's" in capsys.readouterr().err
    assert main(["--study", str(study.root), "predict", "--run", "lr", "--model", "swa"]) == 2
    assert "no best/SWA" in capsys.readouterr().err
