"""Evidence measures: predicted evidence spans against coders' spans, as MDACE scores them.

MDACE (Cheng et al., ACL 2023; github.com/3mcloud/MDACE, ``mdace/metrics.py``, ``mdace/text.py``,
``mdace/cleanup.py``) defines four measures over *evidence annotations*. An annotation is a span of one
chart's text tied to one code: ``(begin, end, code)`` with character offsets ``text[begin:end]``. Every
measure turns the gold and the predicted annotations of a chart into two **sets of keys**, then counts

    TP = |gold keys ∩ predicted keys|,  FP = |predicted keys − gold keys|,  FN = |gold keys − predicted keys|

per chart and **sums the counts over charts** (micro averaging; MDACE's ``AllErrorRates.observe`` per
admission). Because keys form sets, a span given twice counts once. The keys:

- **exact span**: ``(begin, end, code)``; a prediction counts only if both offsets and the code match.
- **token**: each span is split into MDACE's tokens (see :func:`tokens`) and each token is a key
  ``(token begin, code)``; partial overlaps earn partial credit.
- **position-independent span**: ``(lowercased span text, code)``: the same words anywhere in the chart
  count, so "CHF" in the history matches "CHF" in the discharge diagnoses.
- **position-independent token**: ``(token text, code)``.

Then precision P = TP/(TP+FP), recall R = TP/(TP+FN) and F1 = 2PR/(P+R). Zero division: a 0/0 is 0
(no prediction gives P = 0, no gold span gives R = 0). MDACE adds 1e-6 to each denominator instead, which
gives the same 0 and moves other values by less than 1e-6.

Before keys are built, every span is **trimmed** as MDACE's published results do (``--trim-annotations``):
leading ``-.,/`` whitespace and ``)``, trailing ``-.,/`` whitespace and ``(`` are dropped; a span trimmed to
nothing keeps no token and an empty text key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MEASURES = ("exact_span", "token", "position_independent_span", "position_independent_token")
_WORD = re.compile(r"\w+")
_TRIM = frozenset("-.,/ \n\t")
_TRIM_LEFT = _TRIM | {")"}
_TRIM_RIGHT = _TRIM | {"("}
# MDACE drops pure numbers above this (Mullenbach's rule, loosened: 1..10 stay).
_MAX_NUMBER_KEPT = 10

Span = tuple[int, int, str]  # (begin, end, code): character offsets into one chart's text, and a dotted code


@dataclass(frozen=True)
class EvidenceCounts:
    """TP, FP and FN of one measure, summed over charts; P, R and F1 with 0/0 -> 0."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: EvidenceCounts) -> EvidenceCounts:
        return EvidenceCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        """TP / (TP + FP), 0 when nothing was predicted.

        >>> EvidenceCounts(1, 3, 0).precision, EvidenceCounts(0, 0, 5).precision
        (0.25, 0.0)
        """
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN), 0 when there is no gold key.

        >>> EvidenceCounts(1, 3, 1).recall, EvidenceCounts(0, 2, 0).recall
        (0.5, 0.0)
        """
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """2PR / (P + R), 0 when P + R = 0.

        >>> round(EvidenceCounts(1, 3, 1).f1, 4)  # P 0.25, R 0.5
        0.3333
        """
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision, "recall": self.recall,
                "f1": self.f1}


def tokens(text: str) -> list[tuple[int, int, str]]:
    """MDACE's tokens ``(begin, end, lowercased text)``: ``\\w+`` runs, pure numbers above 10 dropped.

    This differs from the study's CAML tokens (``benchmark.text``), which drop every pure number; the
    measures follow MDACE so their values compare with MDACE's published ones.

    >>> tokens("CHF x3, EF 25%; 2 stents")
    [(0, 3, 'chf'), (4, 6, 'x3'), (8, 10, 'ef'), (16, 17, '2'), (18, 24, 'stents')]
    """
    out = []
    for match in _WORD.finditer(text.lower()):
        word = match.group()
        if word.isdigit() and int(word) > _MAX_NUMBER_KEPT:
            continue
        out.append((match.start(), match.end(), word))
    return out


def trim(text: str, begin: int, end: int) -> tuple[int, int]:
    """The span without MDACE's trim characters at its edges (``mdace/cleanup.py``).

    >>> text = "Dx: (CHF), s/p CABG."
    >>> b, e = trim(text, 4, 11); text[b:e]  # a stray ")" goes at the start, a stray "(" at the end
    '(CHF)'
    >>> b, e = trim(text, 8, 19); text[b:e]
    's/p CABG'
    >>> trim(text, 10, 11)  # ", " trims to nothing: an empty span at the end
    (11, 11)
    """
    while begin < end and text[begin] in _TRIM_LEFT:
        begin += 1
    while end > begin and text[end - 1] in _TRIM_RIGHT:
        end -= 1
    return begin, end


def _keys(text: str, spans: Iterable[Span]) -> dict[str, set]:
    """The key sets of every measure for one chart's spans (trimmed first)."""
    out: dict[str, set] = {name: set() for name in MEASURES}
    for begin, end, code in spans:
        begin, end = trim(text, begin, end)
        covered = text[begin:end]
        out["exact_span"].add((begin, end, code))
        out["position_independent_span"].add((covered.lower(), code))
        for start, _, word in tokens(covered):
            out["token"].add((begin + start, code))
            out["position_independent_token"].add((word, code))
    return out


def chart_counts(text: str, gold: Iterable[Span], predicted: Iterable[Span]) -> dict[str, EvidenceCounts]:
    """TP/FP/FN of every measure on one chart (``text`` is the text the offsets index).

    A hand-computed case: the coder marked "CHF" and "acute renal failure" for two codes; the model
    points at "CHF" twice (once where the coder did, once in the history) and at "renal failure".

    >>> text = "Hx CHF. Dx: CHF; acute renal failure."
    >>> gold = [(12, 15, "428.0"), (17, 36, "584.9")]
    >>> pred = [(12, 15, "428.0"), (3, 6, "428.0"), (23, 36, "584.9")]
    >>> {m: (c.tp, c.fp, c.fn) for m, c in chart_counts(text, gold, pred).items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'exact_span': (1, 2, 1), 'token': (3, 1, 1), 'position_independent_span': (1, 1, 1),
     'position_independent_token': (3, 0, 1)}

    Exact span: only (12, 15, 428.0) matches. Token: gold keys are chf@12, acute@17, renal@23, failure@29;
    predicted chf@12, chf@3, renal@23, failure@29, so 3 hit, chf@3 is a false positive, acute a miss.
    Position-independent span: ("chf", 428.0) matches once (a set), "renal failure" is not "acute renal
    failure". Position-independent token: chf, renal, failure hit; acute is missed.
    """
    g, p = _keys(text, gold), _keys(text, predicted)
    return {name: EvidenceCounts(len(g[name] & p[name]), len(p[name] - g[name]), len(g[name] - p[name]))
            for name in MEASURES}


def evidence_scores(charts: Iterable[tuple[str, Iterable[Span], Iterable[Span]]]) -> dict[str, dict[str, float | int]]:
    """Every measure over many charts ``(text, gold spans, predicted spans)``: counts summed, then P/R/F1.

    >>> a = ("CHF", [(0, 3, "428.0")], [(0, 3, "428.0")])
    >>> b = ("no CHF", [(3, 6, "428.0")], [])
    >>> s = evidence_scores([a, b])["exact_span"]
    >>> s["tp"], s["fp"], s["fn"], s["precision"], s["recall"], round(s["f1"], 4)
    (1, 0, 1, 1.0, 0.5, 0.6667)
    """
    total = {name: EvidenceCounts() for name in MEASURES}
    n = 0
    for text, gold, predicted in charts:
        n += 1
        for name, counts in chart_counts(text, gold, predicted).items():
            total[name] = total[name] + counts
    return {name: {**counts.as_dict(), "n_charts": n} for name, counts in total.items()}


def measure_cells(scores: dict[str, dict[str, float | int]]) -> str:
    """P, R and F1 (in %) of every measure of ``evidence_scores``'s output, as table cells.

    >>> measure_cells(evidence_scores([("CHF", [(0, 3, "428.0")], [(0, 3, "428.0")])]))[:21]
    ' | 100.0 100.0 100.0 '
    """
    return "".join(f" | {100 * s['precision']:5.1f} {100 * s['recall']:5.1f} {100 * s['f1']:5.1f} "
                   for s in (scores[m] for m in MEASURES))


def measure_header(label: str, width: int) -> list[str]:
    """The header line of a ``measure_cells`` table, and its rule."""
    header = f"{label:<{width}}" + "".join(f" | {m.replace('position_independent', 'pos-indep'):^18}" for m in MEASURES)
    return [header, "-" * len(header)]
