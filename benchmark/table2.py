"""Table 2: ranking and set metrics of model prediction sets on the full test split.

``evaluate_table2`` scores every test-split prediction set (``benchmark.predictions``) against the study's
references (``benchmark.references``) and puts the seed paper's Table 2 beside them (``benchmark.reported``).
Its conventions are fixed: macro over every code (the model's, and any reference code it lacks), 0/0 -> 0,
both macro-F1 forms, macro-AUC over codes with a positive, P@k ties counted as expected hits under random
tie order (``benchmark.metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmark import codesystems, metrics, reported, valid_codes
from benchmark.errors import UserError
from benchmark.predictions import ModelSource, Predictions, list_prediction_sets, read_predictions
from benchmark.references import reference_matrix, split_ids
from benchmark.systems import load_model
from benchmark.study import Study

P_AT_K = (5, 8, 15)


def evaluate_table2(study: Study, sources: Sequence[ModelSource | str] = ()) -> dict[str, Any]:
    """Ranking and set metrics of model prediction sets on the full test split (the ``table2`` block).

    ``sources``: ``--predictions`` items (a run name means that run's ``-test`` set); default every test-split set.
    """
    if sources:
        code_system = valid_codes.read(study)
        sets = [load_model(study, source, ("test",), code_system) for source in sources]
    else:
        sets = [s for s in map(read_predictions, list_prediction_sets(study.predictions_dir)) if s.split == "test"]
    if not sets:
        raise UserError(f"no test-split prediction set under {study.predictions_dir}; run `bench predict` "
                        "on the test split first, or pass --predictions NAME")
    test_split = split_ids(study, "test") if study.documents.exists() else set()
    rows = []
    for preds in sets:
        row = table2_row(study, preds)
        row["covers_test_split"] = bool(test_split) and test_split <= set(row.pop("_hadm_ids"))
        row["n_test_split"] = len(test_split)
        rows.append(row)
    return {"rows": rows, "conventions": {"label_set": "all", "undefined": "zero",
                                          "p_at_k_ties": "expected hits under random tie order",
                                          "auc_macro": "mean over codes with at least one positive (and one negative)",
                                          "reported_macro_f1": reported.MACRO_F1_NOTE},
            # The paper's figures are MIMIC-III ICD-9: they sit beside an ICD-9 study only.
            "reported": reported.table2_rows() if codesystems.study_version(study) == 9 else []}


def table2_row(study: Study, preds: Predictions) -> dict[str, Any]:
    """One Table 2 row: AUCs, F1s (both macro forms), micro P/R, P@5/8/15 for one prediction set."""
    if preds.probs is None:
        raise UserError(f"{preds.name}: a .psv holds code sets without scores; Table 2 needs probabilities "
                        "(a prediction directory from `bench predict`, or a model's .feather/.csv/.parquet scores)")
    y_true, n_extra = reference_matrix(study, preds)
    return table2_metrics(y_true, np.asarray(preds.probs), preds.threshold) | {
        "system": preds.system, "name": preds.name, "split": preds.split,
        "threshold": preds.threshold, "threshold_source": preds.threshold_source,
        "n_reference_codes_outside_model": n_extra, "_hadm_ids": [int(h) for h in preds.hadm_ids]}


def table2_metrics(y_true: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
    """The metrics of Table 2. ``y_true`` may have extra trailing columns (reference codes the model lacks:
    scored as never predicted, left out of the AUCs and P@k, which need scores)."""
    m = probs.shape[1]
    y_model = y_true[:, :m]
    y_pred = metrics.threshold_scores(probs, threshold)
    tp, fp, fn = metrics.code_counts(y_model, y_pred)
    fn_extra = y_true[:, m:].sum(0).astype(np.float64)
    tp, fp, fn = np.concatenate([tp, np.zeros_like(fn_extra)]), np.concatenate([fp, np.zeros_like(fn_extra)]), np.concatenate([fn, fn_extra])
    micro = metrics.micro_scores(tp, fp, fn, "zero")
    mean = metrics.macro_scores(tp, fp, fn, None, "zero", "mean")
    harmonic = metrics.macro_scores(tp, fp, fn, None, "zero", "harmonic")
    ranking = metrics.ranking_scores(y_model, probs, [k for k in P_AT_K if k <= m])
    pk = ranking["p_at_k"]
    return {"n_documents": int(y_true.shape[0]), "auc_macro": ranking["auc_macro"], "auc_micro": ranking["auc_micro"],
            "f1_macro": mean["f1"], "f1_macro_harmonic": harmonic["f1"], "precision_macro": mean["precision"],
            "recall_macro": mean["recall"], "f1_micro": micro["f1"], "precision_micro": micro["precision"],
            "recall_micro": micro["recall"], **{f"p_at_{k}": pk.get(k) for k in P_AT_K},
            "n_codes_auc": ranking["n_codes_auc"]}
