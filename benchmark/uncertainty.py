"""How sure are the Table 1 numbers: a paired bootstrap over documents and a paired randomization test.

Both work on per-document counts: for each system, an ``[n_documents, 3]`` array of TP, FP, FN (floats,
so that a document coded by two coders can carry their mean) and the per-document Jaccard. Every system
is aligned to the same document order, which is what makes the tests *paired*: a bootstrap resample picks
the same documents for every system, and the randomization test swaps two systems' outputs document by
document.

Micro metrics are ratios of sums, so resampling is a matrix product (draw counts × per-document counts),
never a Python loop over resamples. Macro metrics are not bootstrapped: over thousands of rare codes a
resample drops most of them, and the interval would describe the resampling more than the coders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

METRICS = ("micro_jaccard", "micro_precision", "micro_recall", "micro_f1", "per_document_jaccard")


@dataclass(frozen=True)
class DocumentStats:
    """One system on the scored documents: TP/FP/FN per document and each document's Jaccard."""

    counts: np.ndarray    # float [n, 3]
    jaccard: np.ndarray   # float [n]; NaN where undefined and skipped


def metric_values(sums: np.ndarray, jaccard_mean: np.ndarray, metric: str) -> np.ndarray:
    """A metric from summed TP/FP/FN (``[..., 3]``) or the mean document Jaccard; NaN for 0/0.

    >>> metric_values(np.array([6., 2., 4.]), np.array(0.4), "micro_f1").round(4)
    np.float64(0.6667)
    """
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    num, den = {
        "micro_jaccard": (tp, tp + fp + fn),
        "micro_precision": (tp, tp + fp),
        "micro_recall": (tp, tp + fn),
        "micro_f1": (2 * tp, 2 * tp + fp + fn),
    }.get(metric, (None, None))
    if metric == "per_document_jaccard":
        return np.asarray(jaccard_mean, dtype=np.float64)
    if num is None:
        raise ValueError(f"unknown metric {metric!r}; one of {METRICS}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _resample_weights(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each document is drawn in each resample: ``[B, n]``."""
    draws = rng.integers(0, n, size=(n_resamples, n))
    flat = (np.arange(n_resamples)[:, None] * n + draws).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(np.float64)


def bootstrap_ci(
    systems: Mapping[str, DocumentStats], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, dict[str, list[float | None]]]:
    """Percentile intervals for the micro and per-document metrics of every system, from shared resamples.

    The same ``n_resamples`` draws of documents (with replacement, seeded) are applied to every system.

    >>> rng = np.random.default_rng(1)
    >>> stats = DocumentStats(rng.integers(0, 5, (50, 3)).astype(float), rng.random(50))
    >>> ci = bootstrap_ci({"a": stats}, n_resamples=200, seed=0)["a"]
    >>> lo, hi = ci["micro_f1"]; lo < metric_values(stats.counts.sum(0), 0, "micro_f1") < hi
    np.True_
    """
    if not systems:
        return {}
    n = len(next(iter(systems.values())).jaccard)
    weights = _resample_weights(n, n_resamples, np.random.default_rng(seed))
    tail = (1 - level) / 2 * 100
    out: dict[str, dict[str, list[float | None]]] = {}
    for name, stats in systems.items():
        if len(stats.jaccard) != n:
            raise ValueError(f"system {name!r} has {len(stats.jaccard)} documents, expected {n} (paired)")
        sums = weights @ stats.counts
        jac = np.nan_to_num(stats.jaccard, nan=0.0)
        defined = weights @ (~np.isnan(stats.jaccard)).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            jac_mean = np.where(defined > 0, (weights @ jac) / defined, np.nan)
        out[name] = {}
        for metric in METRICS:
            values = metric_values(sums, jac_mean, metric)
            values = values[~np.isnan(values)]
            out[name][metric] = (
                [float(v) for v in np.percentile(values, [tail, 100 - tail])] if len(values) else [None, None]
            )
    return out


def randomization_test(
    a: DocumentStats, b: DocumentStats, metric: str = "micro_f1", n_permutations: int = 10000, seed: int = 0
) -> tuple[float | None, float | None]:
    """Paired approximate randomization: ``(metric(a) - metric(b), two-sided p-value)``.

    Each permutation swaps the two systems' outputs on a random half of the documents (each document
    independently, probability 1/2) and recomputes the difference. p = (1 + #{|d_perm| >= |d_obs|}) /
    (1 + R), the add-one estimate that is never 0 (Noreen 1989; Yeh 2000).

    >>> rng = np.random.default_rng(0)
    >>> a = DocumentStats(rng.integers(0, 5, (80, 3)).astype(float), rng.random(80))
    >>> diff, p = randomization_test(a, a, n_permutations=500)
    >>> diff, p
    (0.0, 1.0)
    """
    if len(a.jaccard) != len(b.jaccard):
        raise ValueError("paired test: both systems must be scored on the same documents")
    n = len(a.jaccard)
    ja, jb = np.nan_to_num(a.jaccard), np.nan_to_num(b.jaccard)
    observed = _diff(a.counts.sum(0), b.counts.sum(0), ja.mean(), jb.mean(), metric)
    if observed is None or n == 0:
        return observed, None
    rng = np.random.default_rng(seed)
    delta_counts = b.counts - a.counts
    delta_jac = jb - ja
    extreme = 0
    for start in range(0, n_permutations, 2000):
        swap = rng.random((min(2000, n_permutations - start), n)) < 0.5
        moved = swap @ delta_counts
        moved_jac = swap @ delta_jac / n
        da = metric_values(a.counts.sum(0) + moved, ja.mean() + moved_jac, metric)
        db = metric_values(b.counts.sum(0) - moved, jb.mean() - moved_jac, metric)
        diffs = np.nan_to_num(da - db)
        extreme += int((np.abs(diffs) >= abs(observed) - 1e-12).sum())
    return observed, (extreme + 1) / (n_permutations + 1)


def _diff(sum_a: np.ndarray, sum_b: np.ndarray, jac_a: float, jac_b: float, metric: str) -> float | None:
    va = metric_values(sum_a, np.asarray(jac_a), metric)
    vb = metric_values(sum_b, np.asarray(jac_b), metric)
    diff = float(va - vb)
    return None if np.isnan(diff) else diff
