"""benchmark.evidence against a direct reimplementation of MDACE's definitions on random spans."""

from __future__ import annotations

import string

import numpy as np
import pytest

from benchmark.evidence import MEASURES, chart_counts, evidence_scores

SEEDS = range(30)
_WORDS = ("chf", "acute", "renal", "failure", "copd", "x3", "2", "25", "10", "11", "s/p", "cabg", "(ef", "30%)",
          "-", "hx.", "dm2,", "B12")


def _reference_counts(text, gold, predicted):
    """MDACE's measures written out literally: trim each annotation char by char, tokenise its covered text
    with a hand-written scanner, build lists of keys, deduplicate, count."""

    def trimmed(begin, end):
        while begin < end and (text[begin] in "-.,/ \n\t" or text[begin] == ")"):
            begin += 1
        while end > begin and (text[end - 1] in "-.,/ \n\t" or text[end - 1] == "("):
            end -= 1
        return begin, end

    def scan(covered):
        out, i = [], 0
        lowered = covered.lower()
        while i < len(lowered):
            if lowered[i].isalnum() or lowered[i] == "_":
                j = i
                while j < len(lowered) and (lowered[j].isalnum() or lowered[j] == "_"):
                    j += 1
                word = lowered[i:j]
                if not (word.isdigit() and int(word) > 10):
                    out.append((i, word))
                i = j
            else:
                i += 1
        return out

    def keys(spans):
        lists = {m: [] for m in MEASURES}
        for begin, end, code in spans:
            b, e = trimmed(begin, end)
            lists["exact_span"].append((b, e, code))
            lists["position_independent_span"].append((text[b:e].lower(), code))
            for start, word in scan(text[b:e]):
                lists["token"].append((b + start, code))
                lists["position_independent_token"].append((word, code))
        return {m: list(dict.fromkeys(v)) for m, v in lists.items()}

    g, p = keys(gold), keys(predicted)
    out = {}
    for m in MEASURES:
        tp = sum(1 for k in p[m] if k in g[m])
        out[m] = (tp, len(p[m]) - tp, len(g[m]) - tp)
    return out


def _random_chart(rng):
    text = " ".join(rng.choice(_WORDS, size=int(rng.integers(5, 40))))
    text = "".join(ch if rng.random() > 0.03 else rng.choice(list(string.punctuation + "\n")) for ch in text)
    codes = ["428.0", "584.9", "36.15"]

    def spans(n):
        out = []
        for _ in range(n):
            begin = int(rng.integers(0, len(text)))
            out.append((begin, int(rng.integers(begin, min(len(text), begin + 25) + 1)), str(rng.choice(codes))))
        return out

    gold = spans(int(rng.integers(0, 6)))
    # Predictions reuse some gold spans (hits), shift others by a character, and add fresh ones.
    predicted = [s for s in gold if rng.random() < 0.4]
    predicted += [(max(0, b - 1), e, c) for b, e, c in gold if rng.random() < 0.3]
    predicted += spans(int(rng.integers(0, 5)))
    return text, gold, predicted


@pytest.mark.parametrize("seed", SEEDS)
def test_chart_counts_match_the_definitions(seed):
    rng = np.random.default_rng(seed)
    text, gold, predicted = _random_chart(rng)
    ours = {m: (c.tp, c.fp, c.fn) for m, c in chart_counts(text, gold, predicted).items()}
    assert ours == _reference_counts(text, gold, predicted)


def test_scores_sum_counts_over_charts_then_divide():
    rng = np.random.default_rng(99)
    charts = [_random_chart(rng) for _ in range(40)]
    ours = evidence_scores(charts)
    for m in MEASURES:
        tp, fp, fn = (sum(_reference_counts(*c)[m][i] for c in charts) for i in range(3))
        assert (ours[m]["tp"], ours[m]["fp"], ours[m]["fn"]) == (tp, fp, fn)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        assert ours[m]["precision"] == pytest.approx(p) and ours[m]["recall"] == pytest.approx(r)
        assert ours[m]["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
        assert ours[m]["n_charts"] == 40


def test_no_prediction_and_no_gold_score_zero_not_undefined():
    scores = evidence_scores([("CHF", [], []), ("CHF", [(0, 3, "428.0")], [])])
    assert scores["exact_span"] == {"tp": 0, "fp": 0, "fn": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0,
                                   "n_charts": 2}
