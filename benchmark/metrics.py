"""Set and ranking metrics for multi-label code assignment, with every convention explicit.

Inputs are dense indicator matrices: ``y_true`` and ``y_pred`` are ``[n_documents, n_codes]`` booleans
(one column per code), ``y_score`` holds scores of the same shape. For one code c, TP_c, FP_c and FN_c
are counted over the documents (each document weighted by ``sample_weight``, default 1).

Averaging (docs/architecture.md §4):

- **micro** sums TP, FP and FN over *every* column, then takes the ratio. A wrong code outside the
  macro label set is still a false positive.
- **macro** takes the per-code value and averages it over the label set ``labels`` (column indices).
  The label set governs macro only.

Undefined values (a 0/0, for example precision of a code nobody predicted):

- ``undefined="zero"``: the value is 0 (CAML's ``+1e-10`` denominators, scikit-learn
  ``zero_division=0``, Edin et al.'s metrics);
- ``undefined="skip"``: the value is left out of the average (scikit-learn ``zero_division=np.nan``);
  a micro value or an average with nothing left is ``None``.

Macro-F1: ``"mean"`` is the mean of per-code F1 = 2TP/(2TP+FP+FN) (scikit-learn, Edin et al.);
``"harmonic"`` is 2PR/(P+R) of macro-P and macro-R, 0 when P+R = 0 (CAML's ``macro_f1``, LAAT, and the
convention behind RAC's reported 12.7 in Kim & Ganapathi 2021, Table 2).

Jaccard is TP/(TP+FP+FN): what CAML's ``evaluation.py`` calls "accuracy". Micro Jaccard, precision P
and recall R satisfy 1/J = 1/P + 1/R - 1.

Ranking metrics take scores: macro/micro ROC AUC are rank-based (the Mann-Whitney statistic, ties
counted one half), vectorised over codes; P@k counts expected hits under a random order of tied scores,
so float16 ties give one deterministic answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNDEFINED_RULES = ("zero", "skip")
MACRO_F1_RULES = ("mean", "harmonic")


# --- validation (one helper for every metric) -------------------------------------------------------
def _validate(
    y_true: np.ndarray,
    y_pred: np.ndarray | None = None,
    *,
    y_score: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    undefined: str = "zero",
    macro_f1: str = "mean",
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Check shapes, binariness and options; return ``(y_true, y_pred, y_score, weight)`` as arrays.

    >>> _validate(np.array([[1, 0]]), np.array([[1, 0, 0]]))
    Traceback (most recent call last):
    ...
    ValueError: y_pred has shape (1, 3), y_true has shape (1, 2); they must match
    """
    _check_rules(undefined, macro_f1)
    y_true = np.asarray(y_true)
    if y_true.ndim != 2:
        raise ValueError(f"y_true must be a 2-D indicator matrix [documents, codes], got shape {y_true.shape}")
    y_true = _as_bool(y_true, "y_true")
    checked = []
    for name, other in (("y_pred", y_pred), ("y_score", y_score)):
        if other is None:
            checked.append(None)
            continue
        other = np.asarray(other)
        if other.shape != y_true.shape:
            raise ValueError(f"{name} has shape {other.shape}, y_true has shape {y_true.shape}; they must match")
        if name == "y_pred":
            other = _as_bool(other, name)
        elif not np.issubdtype(other.dtype, np.floating) and not np.issubdtype(other.dtype, np.integer):
            raise ValueError(f"y_score must be numeric, got dtype {other.dtype}")
        elif np.issubdtype(other.dtype, np.floating) and not np.isfinite(other).all():
            raise ValueError("y_score holds NaN or infinite values")
        checked.append(other)
    if sample_weight is None:
        weight = np.ones(y_true.shape[0])
    else:
        weight = np.asarray(sample_weight, dtype=np.float64)
        if weight.shape != (y_true.shape[0],) or (weight < 0).any():
            raise ValueError(f"sample_weight must be {y_true.shape[0]} non-negative numbers, got shape {weight.shape}")
    return y_true, checked[0], checked[1], weight


def _check_rules(undefined: str, macro_f1: str = "mean") -> None:
    if undefined not in UNDEFINED_RULES:
        raise ValueError(f"undefined must be one of {UNDEFINED_RULES}, got {undefined!r}")
    if macro_f1 not in MACRO_F1_RULES:
        raise ValueError(f"macro_f1 must be one of {MACRO_F1_RULES}, got {macro_f1!r}")


def _as_bool(y: np.ndarray, name: str) -> np.ndarray:
    if y.dtype == bool:
        return y
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 (an indicator matrix)")
    return y.astype(bool)


def _ratio(num: np.ndarray, den: np.ndarray, undefined: str) -> np.ndarray:
    """num/den elementwise; 0/0 gives 0 (``zero``) or NaN, meaning "leave out" (``skip``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)
    if undefined == "skip":
        out = np.where(den > 0, out, np.nan)
    return out


def _mean(values: np.ndarray, weight: np.ndarray | None = None) -> float | None:
    """(Weighted) mean over the defined values; None when none is defined."""
    keep = ~np.isnan(values)
    if weight is not None:
        keep &= weight > 0
    if not keep.any():
        return None
    w = None if weight is None else weight[keep]
    return float(np.average(values[keep], weights=w))


def _scalar(value: np.ndarray) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


# --- set metrics -------------------------------------------------------------------------------------
def code_counts(
    y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-code (weighted) TP, FP and FN over the documents.

    >>> code_counts(np.array([[1, 1, 0], [0, 1, 0]]), np.array([[1, 0, 1], [0, 1, 0]]))
    (array([1., 1., 0.]), array([0., 0., 1.]), array([0., 1., 0.]))
    """
    y_true, y_pred, _, w = _validate(y_true, y_pred, sample_weight=sample_weight)
    if sample_weight is None:  # counting is much cheaper than a float matrix-vector product
        tp = np.count_nonzero(y_true & y_pred, axis=0).astype(np.float64)
        return tp, np.count_nonzero(y_pred, axis=0) - tp, np.count_nonzero(y_true, axis=0) - tp
    tp = w @ (y_true & y_pred)
    return tp, w @ y_pred - tp, w @ y_true - tp


def micro_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, undefined: str = "zero") -> dict[str, float | None]:
    """Micro Jaccard, precision, recall and F1 from per-code (or per-document) counts.

    Sums TP, FP, FN over everything given, then: J = TP/(TP+FP+FN), P = TP/(TP+FP), R = TP/(TP+FN),
    F1 = 2TP/(2TP+FP+FN). A 0/0 is 0 (``zero``) or None (``skip``).

    >>> s = micro_scores(np.array([6.]), np.array([2.]), np.array([4.]))
    >>> s["jaccard"], s["precision"], s["recall"], round(s["f1"], 4)
    (0.5, 0.75, 0.6, 0.6667)
    >>> round(1 / s["precision"] + 1 / s["recall"] - 1, 12) == round(1 / s["jaccard"], 12)
    True
    >>> micro_scores(np.array([0.]), np.array([0.]), np.array([3.]), undefined="skip")["precision"] is None
    True
    """
    _check_rules(undefined)
    tp, fp, fn = (float(np.sum(a)) for a in (tp, fp, fn))
    return {
        "jaccard": _scalar(_ratio(tp, tp + fp + fn, undefined)),
        "precision": _scalar(_ratio(tp, tp + fp, undefined)),
        "recall": _scalar(_ratio(tp, tp + fn, undefined)),
        "f1": _scalar(_ratio(2 * tp, 2 * tp + fp + fn, undefined)),
    }


def per_code_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, undefined: str = "zero") -> dict[str, np.ndarray]:
    """Per-code Jaccard, precision, recall and F1 (NaN marks a skipped 0/0 under ``skip``).

    >>> per_code_scores(np.array([1., 0.]), np.array([1., 0.]), np.array([0., 2.]))["precision"]
    array([0.5, 0. ])
    """
    _check_rules(undefined)
    return {
        "jaccard": _ratio(tp, tp + fp + fn, undefined),
        "precision": _ratio(tp, tp + fp, undefined),
        "recall": _ratio(tp, tp + fn, undefined),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, undefined),
    }


def macro_scores(
    tp: np.ndarray,
    fp: np.ndarray,
    fn: np.ndarray,
    labels: Sequence[int] | np.ndarray | None = None,
    undefined: str = "zero",
    macro_f1: str = "mean",
) -> dict[str, float | None]:
    """Macro Jaccard, precision, recall and F1: per-code values averaged over the label set.

    ``labels`` are column indices (None: every column). Under ``zero`` a code of the label set that
    nobody predicted and nobody coded counts as 0 for every metric; under ``skip`` it is left out.
    ``macro_f1="mean"`` averages per-code F1; ``"harmonic"`` is 2PR/(P+R) of macro P and R (0 if both 0).

    Hand-computed: code 0 has TP=1, FP=1, FN=0; code 1 has TP=0, FP=0, FN=2; code 2 has nothing.

    >>> tp, fp, fn = np.array([1., 0., 0.]), np.array([1., 0., 0.]), np.array([0., 2., 0.])
    >>> macro_scores(tp, fp, fn)          # (0.5+0+0)/3, (0.5+0+0)/3, (1+0+0)/3, (2/3+0+0)/3
    {'jaccard': 0.16666666666666666, 'precision': 0.16666666666666666, 'recall': 0.3333333333333333, 'f1': 0.2222222222222222}
    >>> macro_scores(tp, fp, fn, undefined="skip")   # P over code 0 only, R and F1 over codes 0 and 1
    {'jaccard': 0.25, 'precision': 0.5, 'recall': 0.5, 'f1': 0.3333333333333333}
    >>> round(macro_scores(tp, fp, fn, labels=[0, 1], macro_f1="harmonic")["f1"], 6)  # 2(.25)(.5)/(.75)
    0.333333
    """
    _check_rules(undefined, macro_f1)
    idx = np.arange(len(tp)) if labels is None else np.asarray(labels, dtype=np.int64)
    per_code = per_code_scores(tp[idx], fp[idx], fn[idx], undefined)
    out = {name: _mean(values) if len(idx) else None for name, values in per_code.items()}
    if macro_f1 == "harmonic":
        p, r = out["precision"], out["recall"]
        out["f1"] = None if p is None or r is None else (0.0 if p + r == 0 else 2 * p * r / (p + r))
    return out


def set_scores(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    undefined: str = "zero",
    macro_f1: str = "mean",
    sample_weight: np.ndarray | None = None,
) -> dict[str, dict[str, float | None]]:
    """``{"micro": {...}, "macro": {...}}`` with Jaccard, precision, recall and F1 (see the module doc).

    >>> y = np.array([[1, 1, 0, 0], [0, 1, 1, 0]])
    >>> p = np.array([[1, 0, 0, 1], [0, 1, 1, 0]])
    >>> s = set_scores(y, p, labels=[0, 1, 2])     # code 3 is outside the label set: still a micro FP
    >>> s["micro"]["precision"], s["micro"]["recall"], s["macro"]["precision"], s["macro"]["recall"]
    (0.75, 0.75, 1.0, 0.8333333333333334)
    """
    y_true, y_pred, _, w = _validate(y_true, y_pred, sample_weight=sample_weight, undefined=undefined, macro_f1=macro_f1)
    tp, fp, fn = code_counts(y_true, y_pred, w)
    return {"micro": micro_scores(tp, fp, fn, undefined), "macro": macro_scores(tp, fp, fn, labels, undefined, macro_f1)}


def document_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-document TP, FP, FN as an ``[n, 3]`` integer array (the unit of the bootstrap).

    >>> document_counts(np.array([[1, 1, 0]]), np.array([[1, 0, 1]]))
    array([[1, 1, 1]])
    """
    y_true, y_pred, _, _ = _validate(y_true, y_pred)
    return np.stack(
        [(y_true & y_pred).sum(1), (~y_true & y_pred).sum(1), (y_true & ~y_pred).sum(1)], axis=1
    ).astype(np.int64)


def per_document_jaccard(
    y_true: np.ndarray, y_pred: np.ndarray, undefined: str = "zero", sample_weight: np.ndarray | None = None
) -> float | None:
    """Sample-averaged Jaccard: the mean over documents of |T∩P|/|T∪P| (CAML's instance "accuracy").

    A document with empty reference and empty prediction is 0/0: 0 (``zero``) or left out (``skip``).

    >>> per_document_jaccard(np.array([[1, 1, 0], [0, 0, 1]]), np.array([[1, 0, 1], [0, 0, 1]]))
    0.6666666666666666
    """
    y_true, y_pred, _, w = _validate(y_true, y_pred, sample_weight=sample_weight, undefined=undefined)
    values = document_jaccards(y_true, y_pred, undefined)
    return _mean(values, w)


def document_jaccards(y_true: np.ndarray, y_pred: np.ndarray, undefined: str = "zero") -> np.ndarray:
    """Each document's Jaccard (NaN for a skipped 0/0)."""
    inter = (y_true & y_pred).sum(1)
    union = (y_true | y_pred).sum(1)
    return _ratio(inter, union, undefined)


def exact_match(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Share of documents whose predicted set equals the reference set exactly (subset accuracy).

    >>> exact_match(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [1, 0]]))
    0.5
    """
    y_true, y_pred, _, w = _validate(y_true, y_pred, sample_weight=sample_weight)
    return float(np.average((y_true == y_pred).all(1), weights=w))


def threshold_scores(y_score: np.ndarray, threshold: float) -> np.ndarray:
    """``y_score >= threshold`` with the threshold as float32 (the prediction contract), fast for float16.

    Comparing float16 with a float32 scalar casts the whole matrix; instead the threshold is rounded up to
    the first float16 not below it, which gives the identical result on non-negative float16 scores.

    >>> threshold_scores(np.array([[0.1, 0.5, 0.7]], dtype=np.float16), 0.5)
    array([[False,  True,  True]])
    """
    y_score = np.asarray(y_score)
    if y_score.dtype == np.float16 and threshold > 0:
        bits = np.ascontiguousarray(y_score).view(np.uint16)
        t16 = np.float16(threshold)
        if np.float32(t16) < np.float32(threshold):
            t16 = np.nextafter(t16, np.float16(np.inf))
        if np.isfinite(t16):
            # Above 0x7C00 (+inf) are NaNs, and the sign bit marks negatives: neither passes.
            return (bits >= t16.view(np.uint16)) & (bits <= 0x7C00)
    return y_score >= np.float32(threshold)


THRESHOLD_GRID = np.round(np.arange(1, 100) / 100, 2).astype(np.float32)


def tune_threshold(y_true: np.ndarray, y_score: np.ndarray) -> tuple[float, float]:
    """(threshold, micro-F1): the threshold on the grid 0.01..0.99 that maximises micro-F1 of ``y_score >= t``.

    Micro-F1 = 2TP/(2TP+FP+FN) over every code and document, 0 when there is nothing to count; ties go to the
    lowest threshold. Counts come from sorted scores (one sort, no pass per threshold), so it stays fast at
    1,631 x 8,930. This is how a run's dev-tuned threshold is chosen, for RAC and for any model's dev scores.

    >>> tune_threshold(np.array([[1, 0], [0, 1]]), np.array([[0.9, 0.3], [0.2, 0.6]]))
    (0.31, 1.0)
    >>> tune_threshold(np.zeros((1, 2)), np.array([[0.5, 0.2]]))
    (0.01, 0.0)
    """
    y = np.asarray(y_true).astype(bool)
    y_score = np.asarray(y_score, dtype=np.float32)
    all_sorted, pos_sorted = np.sort(y_score, axis=None), np.sort(y_score[y])
    n_pred = all_sorted.size - np.searchsorted(all_sorted, THRESHOLD_GRID, side="left")
    tp = pos_sorted.size - np.searchsorted(pos_sorted, THRESHOLD_GRID, side="left")
    f1 = np.where(n_pred + y.sum() > 0, 2 * tp / np.maximum(n_pred + y.sum(), 1), 0.0)
    best = int(np.argmax(f1))
    return round(float(THRESHOLD_GRID[best]), 2), float(f1[best])


# --- ranking metrics ---------------------------------------------------------------------------------
def _order_keys(y_score: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer keys with the same order and ties as the scores, and how many key values exist.

    float16 scores (the prediction format) map their bits to a monotone uint16 key without sorting;
    other dtypes go through ``np.unique``.
    """
    if y_score.dtype == np.float16:
        bits = np.ascontiguousarray(y_score).view(np.uint16)
        if bits.max(initial=0) < 0x8000:  # no sign bit (probabilities): the bits already sort like the values
            return bits, 1 << 15
        bits = (y_score + np.float16(0)).view(np.uint16)  # +0 turns -0.0 into 0.0 so they tie
        negative = bits >= 0x8000
        return np.where(negative, np.uint16(0xFFFF) - bits, bits + np.uint16(0x8000)).astype(np.uint16), 1 << 16
    values, inverse = np.unique(y_score, return_inverse=True)
    return inverse.reshape(y_score.shape).astype(np.int64), len(values)


@dataclass
class _Ranked:
    """Validated scores as order keys, the positives' coordinates, and the global key histogram (lazy)."""

    y_true: np.ndarray
    keys: np.ndarray
    n_values: int
    rows: np.ndarray
    cols: np.ndarray
    key_pos: np.ndarray
    block: int = 256
    _hist: np.ndarray | None = None

    @classmethod
    def of(cls, y_true: np.ndarray, y_score: np.ndarray, block: int = 256) -> _Ranked:
        y_true, _, y_score, _ = _validate(y_true, y_score=y_score)
        keys, n_values = _order_keys(y_score)
        rows, cols = np.nonzero(y_true)
        return cls(y_true, keys, n_values, rows, cols, keys[rows, cols].astype(np.int64), block)

    @property
    def hist(self) -> np.ndarray:
        """How many scores take each key value (in row chunks: ``bincount`` widens its input to int64)."""
        if self._hist is None:
            self._hist = np.zeros(self.n_values, dtype=np.int64)
            for start in range(0, self.keys.shape[0], self.block):
                self._hist += np.bincount(self.keys[start:start + self.block].ravel(), minlength=self.n_values)
        return self._hist


def _negatives_below(key_pos: np.ndarray, hist_all: np.ndarray, hist_pos: np.ndarray) -> np.ndarray:
    """For each positive key: negatives strictly below it plus one half of the negatives tied with it."""
    below_all = np.cumsum(hist_all) - hist_all
    below_pos = np.cumsum(hist_pos) - hist_pos
    neg_below = below_all[key_pos] - below_pos[key_pos]
    neg_tied = hist_all[key_pos] - hist_pos[key_pos]
    return neg_below + 0.5 * neg_tied


def roc_auc(y_true: np.ndarray, y_score: np.ndarray, average: str = "macro", block: int = 256) -> tuple[float | None, int]:
    """Area under the ROC curve, rank-based; returns ``(auc, n_codes_used)``.

    AUC = P(score of a random positive > score of a random negative), ties counting one half, which is
    what ``sklearn.metrics.roc_auc_score`` computes from the curve. ``average="micro"`` pools every
    (document, code) pair into one problem: one histogram of all scores gives every positive's count of
    negatives below it. ``average="macro"`` averages the per-code AUC over the codes with at least one
    positive (and one negative: a code present in every document has no AUC), as caml-mimic and Edin et
    al. do; ``n_codes_used`` says how many. Columns go in blocks of ``block`` codes: sort the block's
    scores per code, then one ``searchsorted`` ranks every positive in its code, so there is no per-code
    Python loop.

    >>> y = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    >>> s = np.array([[0.9, 0.2], [0.4, 0.8], [0.4, 0.1], [0.1, 0.8]])
    >>> roc_auc(y, s, "macro")   # code 0: (2 + 1.5)/(2*2) = 0.875; code 1: (2 + 0.5)/(1*3); mean
    (0.8541666666666667, 2)
    >>> roc_auc(y, s, "micro")[0]
    0.8666666666666667
    """
    if average not in ("macro", "micro"):
        raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
    ranked = _Ranked.of(y_true, y_score, block)
    return _auc_micro(ranked) if average == "micro" else _auc_macro(ranked)


def _auc_micro(r: _Ranked) -> tuple[float | None, int]:
    n_pos = len(r.key_pos)
    n_neg = r.y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None, 0
    hist_pos = np.bincount(r.key_pos, minlength=r.n_values)
    return float(_negatives_below(r.key_pos, r.hist, hist_pos).sum() / (n_pos * n_neg)), r.y_true.shape[1]


def _auc_macro(r: _Ranked) -> tuple[float | None, int]:
    n_docs, n_codes = r.y_true.shape
    n_pos_code = np.bincount(r.cols, minlength=n_codes)
    n_neg_code = n_docs - n_pos_code
    wins = np.zeros(n_codes)
    # Global key = code * n_values + score key: one searchsorted finds each positive's rank in its code.
    order = np.lexsort((r.key_pos, r.cols))
    cols_s, key_s = r.cols[order], r.key_pos[order]
    offset_type = np.uint32 if r.block * r.n_values < 2**32 else np.int64
    offsets = np.arange(r.block, dtype=offset_type)[:, None] * offset_type(r.n_values)
    for start in range(0, n_codes, r.block):
        stop = min(start + r.block, n_codes)
        lo, hi = np.searchsorted(cols_s, [start, stop])
        if lo == hi:
            continue
        block = _transposed(r.keys, start, stop, r.block)
        block.sort(axis=1, kind="stable")  # radix sort for 16-bit keys
        sorted_all = (block + offsets[: stop - start]).ravel()
        local = cols_s[lo:hi] - start
        query = local * r.n_values + key_s[lo:hi]
        left, right = np.searchsorted(sorted_all, query, "left"), np.searchsorted(sorted_all, query, "right")
        # The same counts among the positives themselves (query is sorted), subtracted to leave negatives.
        left_pos, right_pos = np.searchsorted(query, query, "left"), np.searchsorted(query, query, "right")
        below = (left - local * n_docs) - (left_pos - np.searchsorted(local, local, "left"))
        tied = (right - left) - (right_pos - left_pos)
        wins += np.bincount(cols_s[lo:hi], weights=below + 0.5 * tied, minlength=n_codes)
    valid = (n_pos_code > 0) & (n_neg_code > 0)
    if not valid.any():
        return None, 0
    per_code = wins[valid] / (n_pos_code[valid] * n_neg_code[valid])
    return float(per_code.mean()), int(valid.sum())


def _transposed(keys: np.ndarray, start: int, stop: int, tile: int) -> np.ndarray:
    """``keys[:, start:stop].T`` as a contiguous array, copied in square tiles: a plain strided copy of a
    column block touches a new cache line per element and costs several times more."""
    out = np.empty((stop - start, keys.shape[0]), dtype=keys.dtype)
    for row in range(0, keys.shape[0], tile):
        out[:, row:row + tile] = keys[row:row + tile, start:stop].T
    return out


def precision_at_k(y_true: np.ndarray, y_score: np.ndarray, ks: Sequence[int] = (5, 8, 15)) -> dict[int, float]:
    """P@k = (hits among the k highest-scored codes)/k, averaged over documents.

    Tie rule: when the k-th highest score is shared by codes inside and outside the top k, each tied
    code is in the top k with equal probability, so a document scores ``(h + (k - g) * e / t) / k``: h hits
    strictly above the k-th score, g codes strictly above, t codes tied at it, e of them positive. This
    is the expected P@k under a uniformly random order of ties: deterministic, and independent of the
    column order (``argsort``-based P@k is not, and float16 scores tie often).

    >>> y = np.array([[1, 0, 1, 0], [0, 1, 0, 0]])
    >>> s = np.array([[0.9, 0.5, 0.5, 0.5], [0.3, 0.8, 0.2, 0.1]])
    >>> precision_at_k(y, s, ks=[1, 2])    # doc 0, k=2: 1 hit above + 1 of 3 tied slots * 1/3 positive
    {1: 1.0, 2: 0.5833333333333333}
    """
    return _precision_at_k(_Ranked.of(y_true, y_score), ks)


def _top_keys(r: _Ranked, width: int) -> np.ndarray:
    """The ``width`` highest keys of every row, descending.

    A cut read off the global histogram keeps about 4·width candidates per row, so most rows are
    settled from a short candidate list; rows with fewer candidates fall back to ``np.partition``.
    """
    n_docs, n_codes = r.keys.shape
    top = np.empty((n_docs, width), dtype=np.int64)
    from_top = np.cumsum(r.hist[::-1])
    cut = r.n_values - 1 - int(np.searchsorted(from_top, min(4 * width * n_docs, r.keys.size)))
    candidate = r.keys >= max(cut, 0)
    enough = np.count_nonzero(candidate, axis=1) >= width
    rows, cols = np.nonzero(candidate[enough])
    values = r.keys[np.flatnonzero(enough)[rows], cols].astype(np.int64)
    order = np.lexsort((-values, rows))
    rows, values = rows[order], values[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, "left")
    keep = rank < width
    top_enough = np.empty((int(enough.sum()), width), dtype=np.int64)
    top_enough[rows[keep], rank[keep]] = values[keep]
    top[enough] = top_enough
    lacking = np.flatnonzero(~enough)
    for start in range(0, len(lacking), 256):
        chunk = lacking[start:start + 256]
        desc = (r.n_values - 1) - r.keys[chunk].astype(np.int64)
        part = np.partition(desc, width - 1, axis=1)[:, :width] if width < n_codes else desc
        top[chunk] = (r.n_values - 1) - np.sort(part, axis=1)
    return top


def _precision_at_k(r: _Ranked, ks: Sequence[int]) -> dict[int, float]:
    n_docs, n_codes = r.y_true.shape
    ks = [int(k) for k in ks]
    if any(k < 1 or k > n_codes for k in ks):
        raise ValueError(f"every k must be between 1 and the number of codes ({n_codes}), got {ks}")
    width = min(max(ks) + 8, n_codes)  # a window past the largest k, so ties rarely need a full-row count
    top = _top_keys(r, width)
    out = {}
    for k in ks:
        kth = top[:, k - 1]
        above = (top > kth[:, None]).sum(1)
        tied = (top == kth[:, None]).sum(1)
        spill = (top[:, -1] == kth) & (width < n_codes)  # the tie block may run past the window
        if spill.any():
            tied[spill] = (r.keys[spill] == kth[spill, None]).sum(1)
        hits_above = np.bincount(r.rows, weights=r.key_pos > kth[r.rows], minlength=n_docs)
        hits_tied = np.bincount(r.rows, weights=r.key_pos == kth[r.rows], minlength=n_docs)
        expected = hits_above + (k - above) * hits_tied / tied
        out[k] = float(np.mean(expected / k))
    return out


def ranking_scores(y_true: np.ndarray, y_score: np.ndarray, ks: Sequence[int] = (5, 8, 15)) -> dict[str, object]:
    """Macro and micro AUC and P@k in one pass over the scores (validation, keys and histogram shared).

    >>> y = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    >>> s = np.array([[0.9, 0.2], [0.4, 0.8], [0.4, 0.1], [0.1, 0.8]])
    >>> ranking_scores(y, s, ks=[1])
    {'auc_macro': 0.8541666666666667, 'n_codes_auc': 2, 'auc_micro': 0.8666666666666667, 'p_at_k': {1: 0.75}}
    """
    ranked = _Ranked.of(y_true, y_score)
    auc_macro, n_codes = _auc_macro(ranked)
    return {"auc_macro": auc_macro, "n_codes_auc": n_codes, "auc_micro": _auc_micro(ranked)[0],
            "p_at_k": _precision_at_k(ranked, ks)}
