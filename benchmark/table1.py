"""Table 1: human coders and models on the same admissions, with breakdowns, intervals and agreement.

``score_table1`` scores the systems of ``benchmark.systems`` (parsed coder exports and thresholded model
predictions) against the study's references (``benchmark.references``) under explicit conventions
(``benchmark.conventions``, which documents them and their sources); ``score`` does so under the requested
conventions and under both profiles, with the per-document drill-down. Metrics come from
``benchmark.metrics``, uncertainty from ``benchmark.uncertainty``, agreement from ``benchmark.agreement``.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchmark import codesystems, metrics, reported, valid_codes
from benchmark.agreement import agreement
from benchmark.conventions import DEFINITIONS, PROFILES, Conventions, label_set_indices
from benchmark.exports import Annotation, CoderExports
from benchmark.predictions import ModelSource
from benchmark.references import Vocabulary, read_references
from benchmark.sampling import read_shortlist
from benchmark.study import Study
from benchmark.systems import SystemSets, human_systems, model_systems
from benchmark.uncertainty import DocumentStats, bootstrap_ci, randomization_test

FREQUENCY_BUCKETS = (("0", 0, 0), ("1-5", 1, 5), ("6-50", 6, 50), ("51-500", 51, 500), (">500", 501, None))
COMPARED_METRICS = ("micro_jaccard", "micro_f1", "per_document_jaccard")
N_PERMUTATIONS = 10000


@dataclass(frozen=True)
class ScoredSystem:
    """One system's code sets against the references: what the breakdowns regroup and recount."""

    y_true: np.ndarray       # [rows, codes] reference indicators, one row per scored annotation
    y_pred: np.ndarray       # [rows, codes] the system's codes
    weights: np.ndarray      # per row (1/k for an admission k coders coded)
    tp: np.ndarray           # per code, weighted
    fp: np.ndarray
    fn: np.ndarray


def _scored(system: SystemSets, vocab: Vocabulary, refs: dict[int, list[str]], labels: np.ndarray,
            conv: Conventions, shortlist_mask: np.ndarray) -> tuple[dict[str, Any], DocumentStats, ScoredSystem]:
    """The row dict, per-admission statistics for the bootstrap, and the matrices and counts for breakdowns."""
    y_true = vocab.matrix([refs[h] for h in system.hadm_ids])
    y_pred = vocab.matrix(system.sets)
    w = system.weights
    tp, fp, fn = metrics.code_counts(y_true, y_pred, w)
    if conv.label_set in ("reference", "union"):
        # A coder who coded part of the sample is averaged over the codes of *their* documents' references.
        labels = np.union1d(np.flatnonzero(y_true.any(0)), labels if conv.label_set == "union" else [])
        labels = labels.astype(np.int64)
    scores = {"micro": metrics.micro_scores(tp, fp, fn, conv.undefined),
              "macro": metrics.macro_scores(tp, fp, fn, labels, conv.undefined, conv.macro_f1)}
    n_ref = y_true.sum(1)
    row = {
        "system": system.name, "kind": system.kind, "simulated": system.simulated,
        "n_documents": len(set(system.hadm_ids)), "n_annotations": len(system.hadm_ids),
        **scores,
        "label_set_size": int(len(labels)),
        "codes_per_note": float(np.average(y_pred.sum(1), weights=w)),
        "reference_codes_per_note": float(np.average(n_ref, weights=w)),
        "per_document_jaccard": metrics.per_document_jaccard(y_true, y_pred, conv.undefined, w),
        "exact_match": metrics.exact_match(y_true, y_pred, w),
        "vocabulary_coverage": float((w @ (y_true & shortlist_mask).sum(1)) / max(float(w @ n_ref), 1e-300)),
        "coder": system.coder, "model": system.model,
    }
    # Per admission: weighted sums of the rows (for pooled humans the mean over its coders).
    docs = sorted(set(system.hadm_ids))
    pos = {h: i for i, h in enumerate(docs)}
    rows = np.array([pos[h] for h in system.hadm_ids], dtype=np.int64)
    counts = metrics.document_counts(y_true, y_pred).astype(np.float64) * w[:, None]
    per_doc = np.zeros((len(docs), 3))
    np.add.at(per_doc, rows, counts)
    jac = metrics.document_jaccards(y_true, y_pred, conv.undefined)
    doc_w = np.bincount(rows, weights=w * ~np.isnan(jac), minlength=len(docs))
    with np.errstate(invalid="ignore"):
        doc_jac = np.bincount(rows, weights=np.nan_to_num(jac) * w, minlength=len(docs)) / doc_w
    stats = DocumentStats(per_doc, np.where(doc_w > 0, doc_jac, np.nan))
    return row, stats, ScoredSystem(y_true=y_true, y_pred=y_pred, weights=w, tp=tp, fp=fp, fn=fn)


def _slice(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, mask: np.ndarray, undefined: str) -> dict[str, Any]:
    s = metrics.micro_scores(tp[mask], fp[mask], fn[mask], undefined)
    return {"precision": s["precision"], "recall": s["recall"], "f1": s["f1"],
            "n_reference": float(tp[mask].sum() + fn[mask].sum())}


def _grouped(scored: ScoredSystem, groups: np.ndarray, undefined: str) -> dict[str, Any]:
    """Micro P/R/F1 after mapping every code to its group (category, chapter): sets of groups per document."""
    from scipy import sparse

    names, inverse = np.unique(groups.astype(str), return_inverse=True)
    member = sparse.csr_matrix((np.ones(len(inverse)), (np.arange(len(inverse)), inverse)), shape=(len(inverse), len(names)))
    yt = (sparse.csr_matrix(scored.y_true.astype(np.float32)) @ member).toarray() > 0
    yp = (sparse.csr_matrix(scored.y_pred.astype(np.float32)) @ member).toarray() > 0
    tp, fp, fn = metrics.code_counts(yt, yp, scored.weights)
    return _slice(tp, fp, fn, np.ones(len(tp), dtype=bool), undefined)


def _breakdowns(scored: ScoredSystem, vocab: Vocabulary, undefined: str) -> dict[str, Any]:
    tp, fp, fn = scored.tp, scored.fp, scored.fn
    out: dict[str, Any] = {
        "system": {s: _slice(tp, fp, fn, vocab.system == s, undefined) for s in ("dx", "px")},
        "level": {"code": _slice(tp, fp, fn, np.ones(len(tp), bool), undefined),
                  "category": _grouped(scored, vocab.category, undefined),
                  "chapter": _grouped(scored, vocab.chapter, undefined)},
        "frequency": {},
        "chapter": {},
    }
    for name, lo, hi in FREQUENCY_BUCKETS:
        mask = (vocab.train_count >= lo) & (vocab.train_count <= (hi if hi is not None else np.iinfo(np.int64).max))
        out["frequency"][name] = _slice(tp, fp, fn, mask, undefined)
    active = (tp + fp + fn) > 0
    for chapter in sorted(set(vocab.chapter[active])):
        out["chapter"][str(chapter)] = _slice(tp, fp, fn, vocab.chapter == chapter, undefined)
    return out


def score_table1(study: Study, exports: CoderExports, models: list[SystemSets], conv: Conventions,
                 profile: str | None, refs: dict[int, list[str]], shortlist: list[str],
                 n_resamples: int = 1000, seed: int = 0, humans: list[SystemSets] | None = None) -> dict[str, Any]:
    """Table 1 under one set of conventions (the ``table1`` block of scores.json).

    ``refs`` (the scored admissions' reference codes) and ``shortlist`` are read once by ``score`` and shared
    by every convention's table. ``humans`` replaces the rows made from ``exports`` (MDACE's coders); the
    first of them is the one compared with the models.
    """
    humans = human_systems(exports) if humans is None else humans
    systems = humans + models
    admissions = sorted({h for s in humans for h in s.hadm_ids})
    space = _label_space(study, systems, admissions, refs, shortlist, conv.label_set)
    rows, stats, breakdowns = [], {}, {"system": {}, "level": {}, "frequency": {}, "chapter": {}}
    for system in systems:
        row, doc_stats, scored = _scored(system, space.vocab, refs, space.row_labels, conv, space.shortlist_mask)
        stats[system.name] = doc_stats
        for key, value in _breakdowns(scored, space.vocab, conv.undefined).items():
            breakdowns[key][system.name] = value
        rows.append(row)
    _add_intervals(rows, stats, n_resamples, seed)
    coder_sets: dict[str, dict[int, frozenset[str]]] = defaultdict(dict)
    for a in exports.annotations:
        coder_sets[a.coder][a.hadm_id] = frozenset(a.codes)
    outside = Counter(code for a in exports.annotations for code in a.outside_label_space)
    return {
        "profile": profile,
        "arm": exports.arm,
        "conventions": {**conv.__dict__, "label_set_size": int(len(space.labels)),
                        "threshold": {m.name: m.model["threshold"] for m in models},
                        "validation": valid_codes.describe(study),
                        "definitions": DEFINITIONS},
        "n_documents": len(admissions),
        "rows": rows,
        "comparisons": _comparisons(rows, stats, seed),
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "level": 0.95},
        "breakdowns": breakdowns,
        "agreement": agreement(coder_sets),
        "counts": exports.counts,
        "outside_label_space": [{"code": code, "n_annotations": n}
                                for code, n in sorted(outside.items(), key=lambda item: (-item[1], item[0]))],
        "unassigned_annotators": [asdict(u) for u in exports.unassigned],
        "attribution": asdict(exports.attribution) if exports.attribution else None,
        "coders": _throughput(exports.annotations),
        "notes": ["Macro values over thousands of rare codes are unstable; they carry no interval."],
        # The paper's figures are MIMIC-III ICD-9: they sit beside an ICD-9 study only.
        "reported": reported.table1_rows() if codesystems.study_version(study) == 9 else [],
    }


@dataclass(frozen=True)
class _LabelSpace:
    """The columns every system of one table is scored over, and its macro label set."""

    vocab: Vocabulary
    labels: np.ndarray           # the table's macro label set (column indices)
    row_labels: np.ndarray       # what each row starts from; ``_scored`` adds the row's own references
    shortlist_mask: np.ndarray   # per column: on the shortlist (for the vocabulary coverage)


def _label_space(study: Study, systems: list[SystemSets], admissions: list[int], refs: dict[int, list[str]],
                 shortlist: list[str], label_set: str) -> _LabelSpace:
    vocab = Vocabulary.from_study(study)
    vocab.add([c for s in systems for codes in s.sets for c in codes] + [c for v in refs.values() for c in v]
              + shortlist)
    y_ref = vocab.matrix([refs[h] for h in admissions]).any(0)
    predicted = np.zeros(len(vocab.codes), dtype=bool)
    for s in systems:
        predicted |= vocab.matrix(s.sets).any(0)
    labels = label_set_indices(label_set, vocab, y_ref, predicted, shortlist)
    # Under union, rows add their own documents' references to the predicted codes.
    row_labels = np.flatnonzero(predicted) if label_set == "union" else labels
    shortlist_mask = np.zeros(len(vocab.codes), dtype=bool)
    shortlist_mask[[vocab.index[c] for c in shortlist if c in vocab.index]] = True
    return _LabelSpace(vocab, labels, row_labels, shortlist_mask)


def _add_intervals(rows: list[dict[str, Any]], stats: dict[str, DocumentStats], n_resamples: int, seed: int) -> None:
    """``ci95`` on every row: paired intervals for the systems on all admissions; each coder on their own."""
    paired = {r["system"]: stats[r["system"]] for r in rows if r["kind"] != "coder"}
    ci = bootstrap_ci(paired, n_resamples, seed)
    for r in rows:
        if r["kind"] == "coder":
            ci.update(bootstrap_ci({r["system"]: stats[r["system"]]}, n_resamples, seed))
        r["ci95"] = ci[r["system"]]


def _comparisons(rows: list[dict[str, Any]], stats: dict[str, DocumentStats], seed: int) -> list[dict[str, Any]]:
    """The first row (the pooled humans) against every model row: paired randomization tests."""
    humans = rows[0]["system"]
    comparisons = []
    for model in (r for r in rows if r["kind"] == "model"):
        for metric in COMPARED_METRICS:
            diff, p = randomization_test(stats[humans], stats[model["system"]], metric, N_PERMUTATIONS, seed)
            comparisons.append({"a": humans, "b": model["system"], "metric": metric, "difference": diff,
                                "p_value": p, "n_permutations": N_PERMUTATIONS})
    return comparisons


def _throughput(annotations: Sequence[Annotation]) -> list[dict[str, Any]]:
    by_coder: dict[str, list[Annotation]] = defaultdict(list)
    for a in annotations:
        by_coder[a.coder].append(a)
    out = []
    for coder, items in sorted(by_coder.items()):
        times = [a.lead_time for a in items if a.lead_time is not None and a.lead_time > 0]
        median = statistics.median(times) if times else None
        out.append({"coder": coder, "id": items[0].coder_id, "simulated": items[0].simulated, "n_tasks": len(items),
                    "median_lead_time_s": median, "charts_per_hour": 3600.0 / median if median else None})
    return out


def per_document(exports: CoderExports, models: list[SystemSets], refs: dict[int, list[str]]) -> list[dict[str, Any]]:
    """The drill-down for the report: reference, each coder's and each model's codes (no note text)."""
    humans: dict[int, dict[str, list[str]]] = defaultdict(dict)
    for a in exports.annotations:
        humans[a.hadm_id][a.coder] = list(a.codes)
    out = []
    for hadm_id in sorted(humans):
        out.append({"hadm_id": hadm_id, "reference": refs.get(hadm_id, []), "humans": humans[hadm_id],
                    "models": {m.name: list(m.sets[m.hadm_ids.index(hadm_id)]) for m in models}})
    return out


def score(study: Study, exports: CoderExports, conv: Conventions, profile: str | None,
          prediction_paths: Sequence[ModelSource | str] = (), n_resamples: int = 1000, seed: int = 0,
          allow_unknown: bool = False) -> dict[str, Any]:
    """Table 1 under the requested conventions and under both profiles, plus the per-document drill-down."""
    admissions = sorted({a.hadm_id for a in exports.annotations})
    models = model_systems(study, admissions, prediction_paths, allow_unknown)
    refs, shortlist = read_references(study, admissions), read_shortlist(study)
    table1 = score_table1(study, exports, models, conv, profile, refs, shortlist, n_resamples, seed)
    profiles = {name: (table1 if p == conv else
                       score_table1(study, exports, models, p, name, refs, shortlist, n_resamples, seed))
                for name, p in PROFILES.items()}
    return {"exports": exports.exports, "table1": table1, "profiles": profiles,
            "per_document": per_document(exports, models, refs)}
