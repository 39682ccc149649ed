"""The seed paper's published tables as data: Kim & Ganapathi (2021), "Read, Attend, and Code", MLHC.

Every reported figure the project shows comes from here, and each row names the table it comes from, so
no number enters from memory. The values are the paper's, in % with one decimal, transcribed once below in
the paper's own column order and handed out as fractions (the unit of ``scores.json``). ``None`` marks a
figure the paper does not report ("-" in its tables): it is shown as "n.r.", never as 0.

- **Table 1**: human coders and the RAC model on the same 508 test notes: Jaccard, precision and recall,
  macro and micro. The paper reports no F1 there. Its micro values satisfy 1/J = 1/P + 1/R - 1 (Jaccard
  is CAML's "accuracy"), which ``tests/test_reported.py`` checks as a guard against a typo.
- **Table 2**: the models on the MIMIC-III-full test split: macro and micro AUC, macro and micro F1, P@5,
  P@8, P@15. The paper's macro-F1 is CAML's harmonic form (2PR/(P+R) of macro P and macro R), so it is
  stored as ``f1_macro_harmonic``; ``f1_macro`` (the mean of per-code F1) is not reported.

Reported rows are reported, not reproduced: they carry ``note`` = :data:`NOTE` and ``source``.
"""

from __future__ import annotations

from typing import Any

NOTE = "reported, not reproduced"
TABLE1_SOURCE = "Kim & Ganapathi 2021, Table 1"
TABLE2_SOURCE = "Kim & Ganapathi 2021, Table 2"
TABLE1_N_DOCUMENTS = 508
MACRO_F1_NOTE = ("the paper's macro-F1 is CAML's harmonic form, 2PR/(P+R) of macro P and macro R: it fills the "
                 "harmonic macro-F1 column, the mean of per-code F1 is not reported")

# Table 1, in %: system -> (J macro, J micro, P macro, P micro, R macro, R micro), the paper's column order.
_TABLE1_PERCENT: dict[str, tuple[float, float, float, float, float, float]] = {
    "Human coders": (1.8, 10.7, 3.5, 47.7, 2.1, 12.1),
    "RAC model": (6.4, 42.0, 7.1, 63.7, 10.8, 55.2),
}

# Table 2, in %, the paper's column order; None = "-" (not reported).
TABLE2_PAPER_COLUMNS = ("auc_macro", "auc_micro", "f1_macro_harmonic", "f1_micro", "p_at_5", "p_at_8", "p_at_15")
_TABLE2_PERCENT: tuple[tuple[str, float | None, float | None, float | None, float | None, float | None,
                             float | None, float | None], ...] = (
    ("Logistic Regression", 56.1, 93.7, 1.1, 27.2, None, 54.2, 41.1),
    ("SVM", None, None, None, 44.1, None, None, None),
    ("CNN", 80.6, 96.9, 4.2, 41.9, None, 58.1, 44.3),
    ("Bi-GRU", 82.2, 97.1, 3.8, 41.7, None, 58.5, 44.5),
    ("CAML", 89.5, 98.6, 8.8, 53.9, None, 70.9, 56.1),
    ("DR-CAML", 89.7, 98.5, 8.6, 52.9, None, 69.0, 54.8),
    ("MSATT-KG", 91.0, 99.2, 9.0, 55.3, None, 72.8, 58.1),
    ("MultiResCNN", 91.0, 98.6, 8.5, 55.2, None, 73.4, 58.4),
    ("LAAT", 91.9, 98.8, 9.9, 57.5, 81.3, 73.8, 59.1),
    ("JointLAAT", 92.1, 98.8, 10.7, 57.5, 80.6, 73.5, 59.0),
    ("RAC - SWA - SentPerm - CodeTitles", 92.4, 98.9, 11.0, 57.4, 81.5, 74.2, 58.8),
    ("RAC - SWA - SentPerm", 94.9, 99.2, 11.4, 58.0, 82.3, 74.9, 59.5),
    ("RAC - SWA", 94.8, 99.2, 12.6, 58.2, 82.6, 74.9, 59.8),
    ("RAC", 94.8, 99.2, 12.7, 58.6, 82.9, 75.4, 60.1),
)

# The paper's full model: the reported row that the study's RAC runs are set beside.
TABLE2_HEADLINE = "RAC"

# The metric keys of a reproduced Table 2 row (``benchmark.table2.table2_metrics``); a reported row has them all.
TABLE2_METRIC_KEYS = ("auc_macro", "auc_micro", "f1_macro", "f1_macro_harmonic", "precision_macro", "recall_macro",
                      "f1_micro", "precision_micro", "recall_micro", "p_at_5", "p_at_8", "p_at_15")


def _fraction(percent: float | None) -> float | None:
    """A reported percentage as a fraction, rounded so 47.7 % is exactly the float 0.477."""
    return None if percent is None else round(percent / 100, 4)


def table1_rows() -> list[dict[str, Any]]:
    """The paper's Table 1 rows (fresh dicts): ``system``, ``micro`` and ``macro`` J/P/R as fractions.

    >>> [(r["system"], r["micro"]["precision"], r["micro"]["recall"]) for r in table1_rows()]
    [('Human coders', 0.477, 0.121), ('RAC model', 0.637, 0.552)]
    """
    rows = []
    for system, (j_macro, j_micro, p_macro, p_micro, r_macro, r_micro) in _TABLE1_PERCENT.items():
        rows.append({
            "system": system, "source": TABLE1_SOURCE, "note": NOTE, "n_documents": TABLE1_N_DOCUMENTS,
            "macro": {"jaccard": _fraction(j_macro), "precision": _fraction(p_macro), "recall": _fraction(r_macro),
                      "f1": None},
            "micro": {"jaccard": _fraction(j_micro), "precision": _fraction(p_micro), "recall": _fraction(r_micro),
                      "f1": None},
        })
    return rows


def table2_rows() -> list[dict[str, Any]]:
    """Every row of the paper's Table 2 (fresh dicts), in the paper's order, ``None`` where not reported.

    >>> rac = table2_rows()[-1]
    >>> rac["system"], rac["auc_micro"], rac["f1_macro"], rac["f1_macro_harmonic"], rac["p_at_8"], rac["source"]
    ('RAC', 0.992, None, 0.127, 0.754, 'Kim & Ganapathi 2021, Table 2')
    """
    rows = []
    for system, *values in _TABLE2_PERCENT:
        reported = dict(zip(TABLE2_PAPER_COLUMNS, map(_fraction, values)))
        rows.append({"system": system, "source": TABLE2_SOURCE, "note": NOTE, "split": "test", "n_documents": None,
                     **{key: reported.get(key) for key in TABLE2_METRIC_KEYS}})
    return rows
