"""A TF-IDF + logistic-regression baseline (scikit-learn) beside a trained RAC run, on the same dev notes.

    .venv/bin/python perf/rac_baseline.py --study study --run demo [--min-train-notes 5]

The baseline is the usual one of the field (e.g. Mullenbach et al. 2018's "LR" row), fitted by the toolkit's
own model (``rac.tfidf_lr``, ``bench train --model tfidf-lr``) with this script's settings: TF-IDF over the
study's ``tokens`` (sublinear tf, min_df 2, no max_df, at most 50,000 terms, fitted on the train split), then one
logistic regression per code (liblinear, C = 10) with at least ``--min-train-notes`` training notes; rarer
codes score 0. That keeps the fit to minutes (a classifier per code seen in training,
~3,800 on the demo corpus, takes ~25 minutes) at little cost: codes seen fewer than 5 times hardly reach a top 8.
(``rac/tfidf_lr.py`` explains why the labels are int64: ``OneVsRestClassifier`` with an int8 indicator matrix
of more than 127 columns mis-assigned probabilities, the "collapse" recorded in perf/RESULTS.md before.)

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
    """Dev probabilities [n_dev, n_codes] of TF-IDF + logistic regression fitted on train, and the dev labels.

    ``n_x``: read only the first n_x tokens of each note (None: the whole note).
    """
    from benchmark.study import Study
    from rac.tfidf_lr import LRConfig, TfidfLR, reference_labels

    study = Study(study_root)
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "split", "tokens"])
    codes = pd.read_parquet(study.codes, columns=["code"])["code"].tolist()
    text = docs["tokens"] if n_x is None else docs["tokens"].map(lambda t: " ".join(t.split()[:n_x]))
    train, dev = (docs["split"] == "train").to_numpy(), (docs["split"] == "dev").to_numpy()
    cfg = LRConfig(max_features=50000, max_df=1.0, min_train_notes=min_train_notes)
    model = TfidfLR.fit(text[train], reference_labels(study, docs.loc[train, "hadm_id"].to_numpy(), codes), cfg)
    y_dev = reference_labels(study, docs.loc[dev, "hadm_id"].to_numpy(), codes).tocsr()
    labels = [y_dev.indices[y_dev.indptr[i] : y_dev.indptr[i + 1]] for i in range(y_dev.shape[0])]
    return model.predict_proba(text[dev]), labels


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
