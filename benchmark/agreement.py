"""Inter-coder agreement on the tasks that two or more coders coded (the overlap).

Two views, both computed over the overlapping admissions only:

- **pairwise F1** (positive specific agreement) for each pair of coders: 2·Σ|A∩B| / Σ(|A|+|B|) over the
  admissions both coded. It is symmetric and equals the micro F1 of one coder scored against the other,
  so it reads on the same scale as Table 1.
- **Krippendorff's α with the MASI distance** (Passonneau 2006) over all coders of the overlap, where each
  coder's answer on an admission is a *set* of codes: α = 1 − D_o/D_e, with observed disagreement D_o
  between coders on the same admission and expected disagreement D_e across all pairable answers.
  MASI = 1 − Jaccard × monotonicity (1 equal, 2/3 one set contains the other, 1/3 overlap, 0 disjoint).
  We use nltk's reference implementation (``nltk.metrics.agreement.AnnotationTask`` with
  ``nltk.metrics.distance.masi_distance``) rather than a second copy of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations


def overlap(sets: Mapping[str, Mapping[int, frozenset[str]]]) -> list[int]:
    """Admissions coded by at least two coders, sorted.

    >>> overlap({"a": {1: frozenset(), 2: frozenset()}, "b": {2: frozenset(), 3: frozenset()}})
    [2]
    """
    seen: dict[int, int] = {}
    for by_task in sets.values():
        for hadm_id in by_task:
            seen[hadm_id] = seen.get(hadm_id, 0) + 1
    return sorted(h for h, n in seen.items() if n >= 2)


def pairwise_f1(a: Mapping[int, frozenset[str]], b: Mapping[int, frozenset[str]]) -> tuple[float | None, int]:
    """Positive specific agreement of two coders over the admissions both coded: ``(f1, n_tasks)``.

    >>> pairwise_f1({1: frozenset({"428.0", "401.9"}), 2: frozenset({"V45.81"})},
    ...             {1: frozenset({"428.0"}), 2: frozenset({"V45.81"}), 3: frozenset({"36.15"})})
    (0.8, 2)
    """
    shared = sorted(set(a) & set(b))
    inter = sum(len(a[h] & b[h]) for h in shared)
    total = sum(len(a[h]) + len(b[h]) for h in shared)
    return (2 * inter / total if total else None), len(shared)


def krippendorff_alpha_masi(sets: Mapping[str, Mapping[int, frozenset[str]]]) -> float | None:
    """Krippendorff's α with MASI distance over the admissions two or more coders coded.

    None when it is undefined (no overlap, or every answer identical so D_e = 0). By hand below: the
    only disagreement is {3,4} vs {3} (MASI 1 - 1/2·2/3 = 2/3), so D_o = 2·(2/3)/6 = 2/9; over the 15
    pairs of the 6 answers, 12 are disjoint (1), 2 equal (0) and one is 2/3, so D_e = 2·(12+2/3)/30;
    α = 1 - D_o/D_e = 14/19.

    >>> round(krippendorff_alpha_masi({"a": {1: frozenset({"1"}), 2: frozenset({"2"}), 3: frozenset({"3", "4"})},
    ...                                "b": {1: frozenset({"1"}), 2: frozenset({"2"}), 3: frozenset({"3"})}}), 4)
    0.7368
    """
    from nltk.metrics.agreement import AnnotationTask
    from nltk.metrics.distance import masi_distance

    items = set(overlap(sets))
    data = [(coder, hadm_id, labels) for coder, by_task in sorted(sets.items())
            for hadm_id, labels in sorted(by_task.items()) if hadm_id in items]
    if not data:
        return None
    task = AnnotationTask(data=data, distance=masi_distance)
    try:
        return float(task.alpha())
    except ZeroDivisionError:
        return None


def agreement(sets: Mapping[str, Mapping[int, frozenset[str]]]) -> dict | None:
    """The ``agreement`` block of scores.json, or None when no two coders share a task."""
    shared = overlap(sets)
    if not shared:
        return None
    coders = sorted(c for c, by_task in sets.items() if set(by_task) & set(shared))
    pairs = []
    for a, b in combinations(coders, 2):
        f1, n_tasks = pairwise_f1(sets[a], sets[b])
        if n_tasks:
            pairs.append({"a": a, "b": b, "n_tasks": n_tasks, "f1": f1})
    return {"n_overlap_tasks": len(shared), "coders": coders, "pairwise": pairs,
            "krippendorff_alpha_masi": krippendorff_alpha_masi(sets)}
