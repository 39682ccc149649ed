"""A TF-IDF + logistic-regression baseline (scikit-learn, one-vs-rest) beside a trained RAC run, on dev.

    .venv/bin/python perf/rac_baseline.py --study study --run demo

Both are scored the same way (rac.train.scores: P@8 with benchmark.metrics' tie rule, micro-F1 over all
codes at a threshold tuned on dev micro-F1 with rac.train.tune_threshold), on the same dev notes and the same
label space (the code catalogue; codes without a training positive get probability 0 from the baseline).
The baseline reads the same first n_x tokens RAC reads, so the comparison is about the model, not the input.
Prints both and the time each part took; it asserts nothing (the test suite does not depend on it).
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


def tfidf_logreg_dev_probs(study_root: Path, n_x: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dev probabilities [n_dev, n_codes] of a one-vs-rest TF-IDF logistic regression trained on train."""
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
    text = docs["tokens"].map(lambda t: " ".join(t.split()[:n_x]))
    train, dev = docs["split"] == "train", docs["split"] == "dev"
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True, min_df=2, max_features=50000)
    x_train, x_dev = vectorizer.fit_transform(text[train]), vectorizer.transform(text[dev])
    y = np.zeros((int(train.sum()), len(codes)), dtype=np.int8)
    for row, h in enumerate(docs.loc[train, "hadm_id"]):
        y[row, labels[h]] = 1
    seen = np.flatnonzero(y.sum(0) > 0)
    clf = OneVsRestClassifier(LogisticRegression(C=10.0, solver="liblinear"), n_jobs=1)
    clf.fit(x_train, y[:, seen])
    probs = np.zeros((x_dev.shape[0], len(codes)), dtype=np.float32)
    probs[:, seen] = clf.predict_proba(x_dev)
    return probs, [labels[h] for h in docs.loc[dev, "hadm_id"]]


def main() -> None:
    from rac.train import scores, tune_threshold

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=Path("study"))
    parser.add_argument("--run", required=True, help="a finished RAC run (study/runs/RUN/summary.json)")
    args = parser.parse_args()
    summary = json.loads((args.study / "runs" / args.run / "summary.json").read_text())
    start = time.perf_counter()
    probs, labels = tfidf_logreg_dev_probs(args.study, summary["config"]["n_x"])
    threshold, _ = tune_threshold(probs, labels)
    base = scores(probs, labels, threshold)
    seconds = time.perf_counter() - start
    rac = summary["models"][summary["selected"]]["dev"]
    print(f"dev notes: {len(labels)}; first {summary['config']['n_x']} tokens; thresholds tuned on dev micro-F1")
    print(f"tfidf_logreg: dev P@8 {base['p@8']:.4f} micro-F1 {base['micro_f1']:.4f} "
          f"(threshold {threshold:.2f}; {seconds:.1f} s to fit and predict)")
    print(f"rac[{args.run}/{summary['selected']}]: dev P@8 {rac['p@8']:.4f} micro-F1 {rac['micro_f1']:.4f} "
          f"(threshold {rac['threshold']:.2f})")


if __name__ == "__main__":
    main()
