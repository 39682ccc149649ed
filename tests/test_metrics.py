"""benchmark.metrics against scikit-learn (randomised, every convention), caml-mimic's definitions, and by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, jaccard_score, precision_recall_fscore_support, roc_auc_score

from benchmark import metrics

SEEDS = range(25)


def _case(seed: int, n: int = 40, m: int = 30):
    """A random multi-label case with sparse, skewed codes, some never predicted or never present."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.0, 0.3, m) * (rng.random(m) < 0.8)
    y_true = rng.random((n, m)) < rates
    flip = rng.random((n, m)) < rng.uniform(0.02, 0.2)
    y_pred = y_true ^ flip
    y_pred[:, rng.random(m) < 0.15] = False       # codes nobody predicts: precision 0/0
    weight = rng.uniform(0.2, 2.0, n) if seed % 2 else None
    labels = np.sort(rng.choice(m, size=rng.integers(5, m), replace=False))
    return y_true, y_pred, weight, labels


def _close(a, b):
    assert a is not None and b is not None and abs(a - b) <= 1e-9, (a, b)


@pytest.mark.parametrize("seed", SEEDS)
def test_micro_and_macro_match_sklearn(seed):
    y_true, y_pred, w, labels = _case(seed)
    ours = metrics.set_scores(y_true, y_pred, labels=labels, sample_weight=w)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0, sample_weight=w)
    _close(ours["micro"]["precision"], p), _close(ours["micro"]["recall"], r), _close(ours["micro"]["f1"], f)
    _close(ours["micro"]["jaccard"], jaccard_score(y_true, y_pred, average="micro", zero_division=0, sample_weight=w))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0,
                                                 sample_weight=w)
    _close(ours["macro"]["precision"], p), _close(ours["macro"]["recall"], r), _close(ours["macro"]["f1"], f)
    _close(ours["macro"]["jaccard"], jaccard_score(y_true, y_pred, labels=labels, average="macro", zero_division=0,
                                                   sample_weight=w))


@pytest.mark.parametrize("seed", SEEDS)
def test_skip_rule_matches_sklearn_nan_zero_division(seed):
    y_true, y_pred, w, labels = _case(seed)
    ours = metrics.set_scores(y_true, y_pred, labels=labels, undefined="skip", sample_weight=w)["macro"]
    per = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=np.nan,
                                          sample_weight=w)
    for value, name in zip(per[:3], ("precision", "recall", "f1")):
        expected = float(np.nanmean(value)) if not np.isnan(value).all() else None
        if expected is None:
            assert ours[name] is None
        else:
            _close(ours[name], expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_harmonic_and_zero_filled_macro_equal_caml(seed):
    """caml-mimic evaluation.py: macro_* = mean over label columns of intersect/(size + 1e-10); macro_f1 =
    2PR/(P+R), 0 when P+R = 0; "accuracy" = intersect/(union + 1e-10). Re-implemented here as the oracle."""
    y_true, y_pred, _, labels = _case(seed)
    yhat, y = y_pred[:, labels].astype(float), y_true[:, labels].astype(float)
    inter = np.logical_and(yhat, y).sum(0)
    caml_acc = np.mean(inter / (np.logical_or(yhat, y).sum(0) + 1e-10))
    caml_p = np.mean(inter / (yhat.sum(0) + 1e-10))
    caml_r = np.mean(inter / (y.sum(0) + 1e-10))
    caml_f1 = 0.0 if caml_p + caml_r == 0 else 2 * caml_p * caml_r / (caml_p + caml_r)
    ours = metrics.set_scores(y_true, y_pred, labels=labels, undefined="zero", macro_f1="harmonic")["macro"]
    _close(ours["jaccard"], caml_acc), _close(ours["precision"], caml_p), _close(ours["recall"], caml_r)
    _close(ours["f1"], caml_f1)
    # CAML's micro "accuracy" is micro Jaccard: 1/J = 1/P + 1/R - 1.
    micro = metrics.set_scores(y_true, y_pred)["micro"]
    _close(1 / micro["jaccard"], 1 / micro["precision"] + 1 / micro["recall"] - 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_document_metrics_match_sklearn(seed):
    y_true, y_pred, w, _ = _case(seed)
    y_true[0], y_pred[0] = False, False            # an empty document: 0/0
    _close(metrics.per_document_jaccard(y_true, y_pred, "zero", w),
           jaccard_score(y_true, y_pred, average="samples", zero_division=0, sample_weight=w))
    keep = (y_true | y_pred).any(1)
    _close(metrics.per_document_jaccard(y_true, y_pred, "skip", w),
           jaccard_score(y_true[keep], y_pred[keep], average="samples", sample_weight=None if w is None else w[keep]))
    _close(metrics.exact_match(y_true, y_pred, w), accuracy_score(y_true, y_pred, sample_weight=w))


def test_micro_counts_codes_outside_the_label_set():
    y_true = np.array([[1, 0, 0]])
    y_pred = np.array([[1, 0, 1]])
    s = metrics.set_scores(y_true, y_pred, labels=[0, 1])
    assert s["micro"]["precision"] == 0.5 and s["macro"]["precision"] == 0.5  # code 1: 0/0 -> 0
    assert metrics.set_scores(y_true, y_pred, labels=[0, 1], undefined="skip")["macro"]["precision"] == 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
@pytest.mark.parametrize("seed", range(12))
def test_roc_auc_matches_sklearn(seed, dtype):
    rng = np.random.default_rng(seed)
    n, m = 60, 25
    y_true = rng.random((n, m)) < rng.uniform(0, 0.3, m)
    y_true[:, 0] = False                           # no positive: left out of macro
    y_true[:, 1] = True                            # no negative: left out too
    scores = (rng.random((n, m)) * 0.6 + 0.4 * y_true).astype(dtype)
    if seed % 3 == 0:
        scores = np.round(scores, 1).astype(dtype)  # heavy ties
    if seed % 4 == 1:
        scores = (scores - 0.5).astype(dtype)       # negative scores (and -0.0 after rounding) order too
    s64 = scores.astype(np.float64)
    valid = [c for c in range(m) if 0 < y_true[:, c].sum() < n]
    expected = np.mean([roc_auc_score(y_true[:, c], s64[:, c]) for c in valid])
    got, n_codes = metrics.roc_auc(y_true, scores, "macro", block=7)
    _close(got, expected)
    assert n_codes == len(valid)
    _close(metrics.roc_auc(y_true, scores, "micro")[0], roc_auc_score(y_true.ravel(), s64.ravel()))


def test_precision_at_k_tie_rule_is_the_expectation_over_tie_orders():
    rng = np.random.default_rng(3)
    y_true = rng.random((6, 6)) < 0.4
    scores = rng.choice([0.1, 0.5, 0.5, 0.9], size=(6, 6)).astype(np.float16)
    for k in (1, 3, 5):
        got = metrics.precision_at_k(y_true, scores, [k])[k]
        # Brute force: P@k averaged over every tie-breaking order (all 6! permutations as secondary keys).
        totals = []
        for row in range(6):
            values = []
            for perm in itertools.permutations(range(6)):
                order = sorted(range(6), key=lambda c: (-float(scores[row, c]), perm[c]))
                values.append(y_true[row, order[:k]].sum() / k)
            totals.append(np.mean(values))
        assert got == pytest.approx(np.mean(totals), abs=1e-12)
    # Exact on a hand case: k=2, one hit above, then 3 codes tied of which 1 positive.
    y = np.array([[1, 0, 1, 0]])
    s = np.array([[0.9, 0.5, 0.5, 0.5]], dtype=np.float16)
    assert metrics.precision_at_k(y, s, [2])[2] == pytest.approx((1 + 1 / 3) / 2, abs=1e-12)
    # Column order does not change it (argsort-based P@k would).
    assert metrics.precision_at_k(y[:, ::-1], s[:, ::-1], [2]) == metrics.precision_at_k(y, s, [2])


def test_precision_at_k_matches_argsort_without_ties_and_handles_long_tie_blocks():
    rng = np.random.default_rng(0)
    y_true = rng.random((30, 200)) < 0.1
    scores = rng.permutation(30 * 200).reshape(30, 200).astype(np.float64)
    scores[::3] *= 1e-3        # low-scoring rows miss the global candidate cut: the partition fallback
    top = np.argsort(-scores, axis=1)
    for k in (5, 8, 15):
        expected = np.take_along_axis(y_true, top[:, :k], 1).sum(1).mean() / k
        assert metrics.precision_at_k(y_true, scores, [k])[k] == pytest.approx(expected, abs=1e-12)
    both = metrics.ranking_scores(y_true, scores, [5, 8])
    assert both["p_at_k"] == metrics.precision_at_k(y_true, scores, [5, 8])
    assert both["auc_macro"] == metrics.roc_auc(y_true, scores)[0]
    flat = np.zeros((2, 40), dtype=np.float16)     # every score tied: P@k = share of positives
    y = np.zeros((2, 40), dtype=bool)
    y[0, :10] = True
    assert metrics.precision_at_k(y, flat, [15])[15] == pytest.approx((10 / 40 + 0) / 2, abs=1e-12)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="must match"):
        metrics.set_scores(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="0/1"):
        metrics.set_scores(np.full((2, 3), 2), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="undefined"):
        metrics.set_scores(np.zeros((2, 3)), np.zeros((2, 3)), undefined="nan")
    with pytest.raises(ValueError, match="NaN"):
        metrics.roc_auc(np.zeros((2, 3)), np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="between 1"):
        metrics.precision_at_k(np.zeros((2, 3)), np.zeros((2, 3)), [5])


@pytest.mark.parametrize("threshold", [0.5, 0.37, 1e-4, 0.999, 0.0])
def test_threshold_scores_equals_the_float32_comparison(threshold):
    rng = np.random.default_rng(1)
    scores = rng.uniform(-0.2, 1.0, (50, 80)).astype(np.float16)
    scores[0, :3] = [np.nan, np.inf, -0.0]
    with np.errstate(invalid="ignore"):
        expected = scores >= np.float32(threshold)
    assert (metrics.threshold_scores(scores, threshold) == expected).all()


def test_bootstrap_equals_a_plain_loop_over_the_same_draws():
    from benchmark.uncertainty import DocumentStats, _resample_weights, bootstrap_ci, metric_values

    rng = np.random.default_rng(4)
    a = DocumentStats(rng.integers(0, 6, (40, 3)).astype(float), rng.random(40))
    b = DocumentStats(rng.integers(0, 6, (40, 3)).astype(float), rng.random(40))
    ci = bootstrap_ci({"a": a, "b": b}, n_resamples=300, seed=7)
    draws = np.random.default_rng(7).integers(0, 40, size=(300, 40))   # what _resample_weights draws
    assert (_resample_weights(40, 300, np.random.default_rng(7)) == np.stack(
        [np.bincount(d, minlength=40) for d in draws])).all()
    for name, stats in (("a", a), ("b", b)):
        f1 = [metric_values(stats.counts[d].sum(0), 0, "micro_f1") for d in draws]
        jac = [stats.jaccard[d].mean() for d in draws]
        assert ci[name]["micro_f1"] == pytest.approx(list(np.percentile(f1, [2.5, 97.5])), abs=1e-12)
        assert ci[name]["per_document_jaccard"] == pytest.approx(list(np.percentile(jac, [2.5, 97.5])), abs=1e-12)


def test_randomization_test_detects_a_real_difference_and_not_a_null_one():
    from benchmark.uncertainty import DocumentStats, randomization_test

    rng = np.random.default_rng(5)
    ref = rng.integers(5, 15, 200).astype(float)
    good_tp = np.floor(ref * 0.8)
    bad_tp = np.floor(ref * 0.4)
    good = DocumentStats(np.stack([good_tp, ref * 0.1, ref - good_tp], 1), good_tp / (ref + ref * 0.1))
    bad = DocumentStats(np.stack([bad_tp, ref * 0.5, ref - bad_tp], 1), bad_tp / (ref + ref * 0.5))
    diff, p = randomization_test(good, bad, "micro_f1", n_permutations=2000)
    assert diff > 0.2 and p == pytest.approx(1 / 2001)
    noisy = DocumentStats(good.counts[rng.permutation(200)], good.jaccard)
    _, p_null = randomization_test(good, noisy, "per_document_jaccard", n_permutations=2000)
    assert p_null > 0.05


def test_agreement_blocks():
    from benchmark.agreement import agreement

    same = {"a": {1: frozenset({"428.0"}), 2: frozenset({"401.9", "V45.81"}), 3: frozenset({"36.15"})},
            "b": {1: frozenset({"428.0"}), 2: frozenset({"401.9", "V45.81"}), 4: frozenset({"36.15"})}}
    block = agreement(same)
    assert block["n_overlap_tasks"] == 2 and block["krippendorff_alpha_masi"] == pytest.approx(1.0)
    assert block["pairwise"] == [{"a": "a", "b": "b", "n_tasks": 2, "f1": 1.0}]
    assert agreement({"a": {1: frozenset()}, "b": {2: frozenset()}}) is None
