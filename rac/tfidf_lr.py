"""TF-IDF + logistic regression over the whole note: the paper's "Logistic Regression" row (Table 2) as a model.

``bench train --model tfidf-lr --name lr [--set KEY=VALUE]`` writes ``study/runs/lr/``; ``bench predict --run lr``
writes ``study/predictions/lr-<split>/`` in the format RAC's runs use (``benchmark.predictions``: a probability
for every catalogue code, sets at the dev-tuned threshold), so ``score``, ``evaluate`` and ``report`` treat it
like any model. It has no attention, so its sets carry no evidence.

Recipe (scikit-learn): ``TfidfVectorizer`` over the study's ``tokens`` of the train split (sublinear tf, terms
in at least ``min_df`` notes and at most a ``max_df`` share of them, the ``max_features`` most frequent), then one
L2-regularised logistic regression per code (liblinear, C = ``C``) for every code with at least
``min_train_notes`` training notes. A rarer code is not modelled: it scores 0 (never predicted, ranked last,
as an absent pair of a long prediction table). The threshold is tuned on dev micro-F1 with
``benchmark.metrics.tune_threshold``, as RAC's is.

Why these defaults (demo corpus, perf/RESULTS.md): one fit per code is the whole cost, so codes with fewer
than 10 training notes (which hardly reach a top 8) are not fitted; terms in more than half the notes (filler,
most of the nonzeros) are dropped, which cuts the fit time by a third at equal dev P@8. The code columns go to
liblinear one at a time as int64 (``OneVsRestClassifier`` mis-assigns probabilities when handed an int8
indicator matrix of more than 127 columns; measured in perf/RESULTS.md).

Run directory: ``config.json`` (``{"model": "tfidf-lr", ...}``), ``model.npz`` (vocabulary, idf, weights and
intercepts of the fitted codes) and ``summary.json`` (the shape of RAC's: the selected model ``lr``, its
threshold, dev and test P@k and micro-F1).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import metrics, study_files
from benchmark.errors import UserError
from benchmark.io import atomic_path, atomic_write_text
from benchmark.predictions import Predictions, write_predictions
from benchmark.study import Study

MODEL_KIND = "tfidf-lr"
MODEL_LABEL = "TF-IDF + LR"
SELECTED = "lr"
TOKEN_PATTERN = r"\S+"  # documents.parquet's tokens are already split by whitespace


@dataclass(frozen=True)
class LRConfig:
    """What a TF-IDF + LR run computes (``--set KEY=VALUE`` overrides any field)."""

    max_features: int = 20000
    min_df: int = 2
    max_df: float = 0.5
    min_train_notes: int = 10
    C: float = 10.0
    n_jobs: int = 2           # mechanics: parallel fits (does not change the result)

    @classmethod
    def resolve(cls, overrides: list[str]) -> LRConfig:
        """Defaults, then ``key=value`` overrides typed by the field.

        >>> LRConfig.resolve(["C=1", "min_train_notes=5"]).C
        1.0
        """
        from rac.config import _parse  # the typed parsing of `--set` that RAC's config uses

        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in overrides:
            key, sep, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in types:
                raise UserError(f"--set {item}: {MODEL_KIND} takes KEY=VALUE with KEY one of {', '.join(types)}")
            values[key] = _parse(item, types[key], raw.strip())
        return cls(**values)


def run_kind(run_dir: Path) -> str:
    """The model kind recorded in a run's config.json ("rac" for RAC's runs, which predate the key)."""
    path = run_dir / "config.json"
    if not path.exists():
        return "rac"
    return json.loads(path.read_text(encoding="utf-8")).get("model", "rac")


def reference_labels(study: Study, hadm_ids: np.ndarray, codes: list[str]):
    """Reference indicators as a sparse int64 [n, n_codes] CSC matrix: one column per code is what the fits
    take (int64 on purpose: see the module docstring), and sparse keeps 47,723 x 8,930 small."""
    from scipy import sparse

    refs = study_files.read_reference_codes(study)
    row = {int(h): i for i, h in enumerate(hadm_ids)}
    col = {c: j for j, c in enumerate(codes)}
    refs = refs[refs["hadm_id"].isin(list(row)) & refs["code"].isin(list(col))].drop_duplicates()
    return sparse.csc_matrix((np.ones(len(refs), dtype=np.int64), (refs["hadm_id"].map(row).to_numpy(),
                              refs["code"].map(col).to_numpy())), shape=(len(hadm_ids), len(codes)))


def _fit_columns(x, y, c: float) -> tuple[np.ndarray, np.ndarray]:
    """One liblinear logistic regression per column of ``y`` (sparse): (weights [k, n_features], intercepts [k])."""
    from sklearn.linear_model import LogisticRegression

    weights = np.empty((y.shape[1], x.shape[1]), dtype=np.float32)
    intercepts = np.empty(y.shape[1], dtype=np.float32)
    for j in range(y.shape[1]):
        fit = LogisticRegression(C=c, solver="liblinear").fit(x, y[:, j].toarray().ravel())
        weights[j], intercepts[j] = fit.coef_[0], fit.intercept_[0]
    return weights, intercepts


class TfidfLR:
    """A fitted model: vectoriser state and one weight row per fitted code, over the catalogue's codes."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray, fitted: np.ndarray, weights: np.ndarray,
                 intercepts: np.ndarray, n_codes: int):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vocabulary, self.idf, self.fitted = vocabulary, idf, fitted
        self.weights, self.intercepts, self.n_codes = weights, intercepts, int(n_codes)
        self.vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN, sublinear_tf=True,
                                          vocabulary={w: i for i, w in enumerate(vocabulary)})
        self.vectorizer.idf_ = idf

    @classmethod
    def fit(cls, tokens: pd.Series, y, cfg: LRConfig) -> TfidfLR:
        from joblib import Parallel, delayed
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN, sublinear_tf=True, min_df=cfg.min_df,
                                     max_df=cfg.max_df, max_features=cfg.max_features)
        x = vectorizer.fit_transform(tokens)
        x.sum_duplicates()  # canonical indices now: worker processes get a read-only copy
        counts = np.asarray(y.sum(0)).ravel()
        fitted = np.flatnonzero(counts >= cfg.min_train_notes)
        if not len(fitted):
            raise UserError(f"{MODEL_KIND}: no code has {cfg.min_train_notes}+ training notes; lower it with "
                            "--set min_train_notes=N")
        chunks = np.array_split(fitted, max(1, min(len(fitted), 8 * cfg.n_jobs)))
        parts = Parallel(n_jobs=cfg.n_jobs)(delayed(_fit_columns)(x, y[:, chunk], cfg.C) for chunk in chunks)
        weights = np.concatenate([w for w, _ in parts])
        intercepts = np.concatenate([b for _, b in parts])
        return cls(vectorizer.get_feature_names_out().tolist(), vectorizer.idf_, fitted, weights, intercepts, y.shape[1])

    def predict_proba(self, tokens: pd.Series) -> np.ndarray:
        """float32 [n_notes, n_codes]: sigmoid of the fitted codes' logits, 0 for the codes not modelled."""
        from scipy.special import expit

        x = self.vectorizer.transform(tokens).astype(np.float32)
        probs = np.zeros((x.shape[0], self.n_codes), dtype=np.float32)
        probs[:, self.fitted] = expit(x @ self.weights.T + self.intercepts)
        return probs

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, vocabulary=np.array(self.vocabulary, dtype=str), idf=self.idf, fitted=self.fitted,
                     weights=self.weights, intercepts=self.intercepts, n_codes=self.n_codes)

    @classmethod
    def load(cls, path: Path) -> TfidfLR:
        with np.load(path) as z:
            return cls(z["vocabulary"].tolist(), z["idf"], z["fitted"], z["weights"], z["intercepts"], z["n_codes"])


def _check_run_dir(run_dir: Path, cfg: LRConfig) -> None:
    """Write the config, or refuse a re-run with another config or over a RAC run."""
    path = run_dir / "config.json"
    wanted = {"model": MODEL_KIND, **asdict(cfg)}
    if path.exists():
        earlier = json.loads(path.read_text(encoding="utf-8"))
        if earlier.get("model") != MODEL_KIND:
            raise UserError(f"{run_dir} holds a {earlier.get('model', 'rac')} run; choose another --name")
        changed = sorted(k for k in wanted if k != "n_jobs" and earlier.get(k) != wanted[k])
        if changed:
            raise UserError(f"{path}: run {run_dir.name} was trained with another config ("
                            + ", ".join(f"{k}: {earlier.get(k)} -> {wanted[k]}" for k in changed)
                            + "); use the same options, or a new --name")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(wanted, indent=1, sort_keys=True) + "\n")


def train(study: Study, name: str, cfg: LRConfig) -> dict[str, Any]:
    """Fit on the train split, tune the threshold on dev, score dev and test; write ``study/runs/NAME/``."""
    from rac.train import scores  # the P@k / micro-F1 summary RAC's runs record

    study.require("documents", "references", "codes")
    run_dir = study.runs_dir / name
    _check_run_dir(run_dir, cfg)
    if (run_dir / "summary.json").exists():
        print(f"run {name}: already trained ({run_dir / 'summary.json'})")
        return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    codes = study_files.read_catalogue(study, ["code"])["code"].tolist()
    docs = study_files.read_documents(study, ["hadm_id", "split", "tokens"])
    part = {s: docs[docs["split"] == s].reset_index(drop=True) for s in ("train", "dev", "test")}
    for split in ("train", "dev"):
        if part[split].empty:
            raise UserError(f"{study.documents}: the {split} split is empty; {MODEL_KIND} needs train and dev notes")
    model = TfidfLR.fit(part["train"]["tokens"], reference_labels(study, part["train"]["hadm_id"].to_numpy(), codes), cfg)
    model.save(run_dir / "model.npz")
    entry: dict[str, Any] = {"file": "model.npz"}
    for split in ("dev", "test"):
        if part[split].empty:
            continue
        probs = model.predict_proba(part[split]["tokens"])
        y = reference_labels(study, part[split]["hadm_id"].to_numpy(), codes).toarray().astype(bool)
        if split == "dev":
            entry["threshold"] = metrics.tune_threshold(y, probs)[0]
        entry[split] = scores(probs, [np.flatnonzero(row) for row in y], entry["threshold"])
    summary = {"run": name, "model": MODEL_KIND, "selected": SELECTED, "models": {SELECTED: entry},
               "n_codes_fitted": int(len(model.fitted)), "n_features": len(model.vocabulary),
               "fit_seconds": round(time.perf_counter() - started, 1), "config": asdict(cfg)}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    study.record_step(f"train-{name}", {"run": name, "model": MODEL_KIND, "threshold": entry["threshold"],
                                        "dev_p8": entry["dev"]["p@8"], "config": asdict(cfg)})
    test = entry.get("test")
    print(f"{MODEL_KIND} {name}: {len(model.fitted)} codes fitted on {len(part['train'])} notes x "
          f"{len(model.vocabulary)} terms in {summary['fit_seconds']:.0f} s; dev P@8 {entry['dev']['p@8']:.4f} "
          f"micro-F1 {entry['dev']['micro_f1']:.4f} (threshold {entry['threshold']:.2f})"
          + (f"; test P@8 {test['p@8']:.4f} micro-F1 {test['micro_f1']:.4f}" if test else ""))
    return summary


def predict(study: Study, run: str, split: str = "test") -> Path:
    """Write ``study/predictions/<run>-<split>/`` (probabilities for every code, sets, .psv); return it."""
    from benchmark.sampling import prediction_documents
    from rac.predict import load_run

    _, weights, threshold, _ = load_run(study, run)
    docs = prediction_documents(study, split, ["hadm_id", "split", "tokens"])
    codes = study_files.read_catalogue(study, ["code"])["code"].tolist()
    model = TfidfLR.load(weights)
    if model.n_codes != len(codes):
        raise UserError(f"run {run} was trained on {model.n_codes} codes, this study has {len(codes)}; "
                        "train it again on this study")
    preds = Predictions(name=f"{run}-{split}", hadm_ids=docs["hadm_id"].to_numpy(np.int64), codes=codes,
                        probs=model.predict_proba(docs["tokens"]), threshold=threshold,
                        threshold_source="dev-tuned", run=run, split=split, model=MODEL_LABEL)
    out = write_predictions(study.predictions_dir / preds.name, preds)
    print(f"wrote {out} ({len(docs)} notes x {len(codes)} codes; {MODEL_KIND}, dev-tuned threshold {threshold:.3f})")
    return out
