"""A TF-IDF + logistic-regression baseline (scikit-learn) beside a trained RAC run, on the same dev notes.

    .venv/bin/python perf/rac_baseline.py --study study --run demo [--min-train-notes 5]

The baseline is the usual one of the field (e.g. Mullenbach et al. 2018's "LR" row): TF-IDF over the
study's ``tokens`` (sublinear tf, min_df 2, at most 50,000 terms, fitted on the train split), then one-vs-rest
logistic regression (liblinear, C = 10), one classifier per code with at least ``--min-train-notes`` training
notes; rarer codes get probability 0. That keeps the fit to minutes (a classifier per code seen in training,
~3,800 on the demo corpus, takes ~25 minutes) at little cost: codes seen fewer than 5 times hardly reach a top 8.

The label matrix handed to scikit-learn is int64 on purpose: with an int8 indicator matrix of more than 127
columns, ``OneVsRestClassifier`` (scikit-learn 1.9.1) returns probabilities that do not belong to their columns
(measured: the per-column fits differ by up to 0.97, and dev P@8 drops from 0.48 to 0.05). That was the
"collapse" recorded in perf/RESULTS.md before.

It runs twice: on the first ``n_x`` tokens, which is exactly what the RAC run reads (the comparison is then
about the model), and on the whole note (what a bag of words can use when it need not truncate). Both, and
RAC, are scored by ``rac.train.scores`` (P@8 with benchmark.metrics' tie rule; micro-F1 over all codes at a
threshold tuned on dev micro-F1 by ``rac.train.tune_threshold``, the rule the trainer applies to RAC).
It prints the figures and the time each fit took; it asserts nothing (the test suite does not depend on it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

if __name__ == "__main__":  # run as a script: import the repository's packages, not perf/rac.py as `rac`
    sys.path[0] = str(Path(__file__).resolve().parents[1])


def tfidf_logreg_dev_probs(study_root: Path, n_x: int | None, min_train_notes: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dev probabilities [n_dev, n_codes] of TF-IDF + one-vs-rest logistic regression fitted on train.

    ``n_x``: read only the first n_x tokens of each note (None: the whole note).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from benchmark.study import Study

    study = Study(study_root)
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "split", "tokens"])
    refs = pd.read_parquet(study.references, columns=["hadm_id", "code"])
    codes = pd.read_parquet(study.codes, columns=["code"])["code"].tolist()
    index = {c: i for i, c in enumerate(codes)}
    by_hadm = refs.groupby("hadm_id")["code"].agg(list).to_dict()
    labels = {h: np.array(sorted({index[c] for c in by_hadm.get(h, []) if c in index}), dtype=np.int64)
              for h in docs["hadm_id"]}
    text = docs["tokens"] if n_x is None else docs["tokens"].map(lambda t: " ".join(t.split()[:n_x]))
    train, dev = (docs["split"] == "train").to_numpy(), (docs["split"] == "dev").to_numpy()
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True, min_df=2, max_features=50000)
    x_train, x_dev = vectorizer.fit_transform(text[train]), vectorizer.transform(text[dev])
    # Canonical (sorted) indices now: the worker processes get a read-only copy and cannot sort it in place.
    x_train.sum_duplicates()
    y = np.zeros((int(train.sum()), len(codes)), dtype=np.int64)  # not int8: see the module docstring
    for row, h in enumerate(docs.loc[train, "hadm_id"]):
        y[row, labels[h]] = 1
    fitted = np.flatnonzero(y.sum(0) >= min_train_notes)
    clf = OneVsRestClassifier(LogisticRegression(C=10.0, solver="liblinear"), n_jobs=2)
    clf.fit(x_train, y[:, fitted])
    probs = np.zeros((x_dev.shape[0], len(codes)), dtype=np.float32)
    probs[:, fitted] = clf.predict_proba(x_dev)
    return probs, [labels[h] for h in docs.loc[dev, "hadm_id"]]


def main() -> None:
    from rac.train import scores, tune_threshold

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=Path("study"))
    parser.add_argument("--run", required=True, help="a finished RAC run (study/runs/RUN/summary.json)")
    parser.add_argument("--min-train-notes", type=int, default=5,
                        help="fit a classifier for codes with at least this many training notes (default 5)")
    args = parser.parse_args()
    summary = json.loads((args.study / "runs" / args.run / "summary.json").read_text())
    n_x = summary["config"]["n_x"]
    rac = summary["models"][summary["selected"]]["dev"]
    print(f"dev notes scored with thresholds tuned on dev micro-F1; baseline fits codes with "
          f">= {args.min_train_notes} training notes")
    print(f"rac[{args.run}/{summary['selected']}] (first {n_x} tokens): dev P@8 {rac['p@8']:.4f} "
          f"micro-F1 {rac['micro_f1']:.4f} (threshold {rac['threshold']:.2f})")
    for label, limit in ((f"first {n_x} tokens", n_x), ("whole note", None)):
        start = time.perf_counter()
        probs, labels = tfidf_logreg_dev_probs(args.study, limit, args.min_train_notes)
        threshold, _ = tune_threshold(probs, labels)
        base = scores(probs, labels, threshold)
        print(f"tfidf_logreg ({label}): dev P@8 {base['p@8']:.4f} micro-F1 {base['micro_f1']:.4f} "
              f"(threshold {threshold:.2f}; {time.perf_counter() - start:.1f} s to fit and predict)")


if __name__ == "__main__":
    main()
