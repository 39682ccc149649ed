"""Table 1 (human coders vs models on the same admissions) and Table 2 (a model on the test split).

``score_table1`` turns parsed coder exports (``benchmark.exports``) and thresholded model predictions
into the rows of the seed paper's Table 1, under explicit conventions; ``evaluate_table2`` computes the
ranking metrics of the paper's Table 2; ``write_scores`` merges either into ``study/scores.json``
(schema: ``docs/scores-schema.md``). Metrics come from ``benchmark.metrics``; uncertainty from
``benchmark.uncertainty``; agreement from ``benchmark.agreement``.

Conventions (DESIGN.md §5) and the two profiles:

``paper``: label set = the coding shortlist, 0/0 -> 0, macro-F1 = harmonic mean of macro-P and macro-R.
    Inferred, not stated, by the seed paper (Kim & Ganapathi 2021). Its Table 2 puts RAC beside CAML and
    LAAT with numbers comparable to theirs, and those come from caml-mimic's ``evaluation.py``: macro
    values are means over a fixed label set (the columns of the label matrix) with ``+1e-10``
    denominators, so a code never predicted counts as precision 0, and ``macro_f1`` is 2PR/(P+R) of
    those means. RAC's reported macro-F1 of 12.7 against micro-F1 58.6 is the size this harmonic form
    gives over thousands of rare codes. For the human study, the fixed label set the coders could choose
    from is the 4,075-code shortlist, so that is the macro label set. "Jaccard" is CAML's "accuracy",
    which is why micro J, P and R in the paper's Table 1 satisfy 1/J = 1/P + 1/R - 1.
``corrected``: label set = the codes present in the scored references, 0/0 -> 0, macro-F1 = mean of
    per-code F1. This is Edin et al. (2023, medical-coding-reproducibility ``src/metrics.py``): metrics are
    computed after filtering to the codes that occur in the split's targets, precision of a reference
    code nobody predicted is 0 (their ``+1e-10``), recall and F1 are always defined for such codes, and
    macro F1 averages per-code F1 (their corrected twin of the "Mullenbach" metric).

For ``reference`` (and ``union``) the label set of a row is taken from the references of *that row's*
admissions: a coder who coded part of the sample is not charged for codes of notes they never saw. The
table-level ``label_set_size`` is the size over all scored admissions; each row carries its own.
``union`` is the references plus every code any compared system predicted, shared by all rows so that
their macro values share a denominator (scikit-learn's default union is per system).

Explicit ``label_set``/``undefined``/``macro_f1`` override a profile; a table whose conventions match
neither profile records ``profile: null``. Micro always counts every code (DESIGN.md §5).
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import __version__, icd, metrics
from benchmark.agreement import agreement
from benchmark.errors import UserError
from benchmark.exports import Annotation, CoderExports, normalise_code
from benchmark.io import atomic_write_text
from benchmark.predictions import (DEFAULT_THRESHOLD, ModelSource, Predictions, check_against_study,
                                   list_prediction_sets, read_predictions, with_threshold)
from benchmark.study import Study
from benchmark.uncertainty import DocumentStats, bootstrap_ci, randomization_test

SCHEMA = 1
LABEL_SETS = ("shortlist", "all", "reference", "union")
FREQUENCY_BUCKETS = (("0", 0, 0), ("1-5", 1, 5), ("6-50", 6, 50), ("51-500", 51, 500), (">500", 501, None))
COMPARED_METRICS = ("micro_jaccard", "micro_f1", "per_document_jaccard")
N_PERMUTATIONS = 10000
P_AT_K = (5, 8, 15)
REPORTED_TABLE2 = {"system": "RAC (Kim & Ganapathi 2021, reported)", "auc_macro": 0.948, "auc_micro": 0.991,
                   "f1_macro": None, "f1_macro_harmonic": 0.127, "f1_micro": 0.586, "p_at_5": None, "p_at_8": 0.737, "p_at_15": 0.591,
                   "note": "reported, not reproduced"}
DEFINITIONS = {
    "micro_jaccard": "TP/(TP+FP+FN), TP, FP, FN summed over all codes and documents (CAML's micro 'accuracy')",
    "micro_precision": "TP/(TP+FP) summed over all codes", "micro_recall": "TP/(TP+FN) summed over all codes",
    "micro_f1": "2TP/(2TP+FP+FN) summed over all codes",
    "macro": "per-code value averaged over the label set; 0/0 per the 'undefined' rule",
    "macro_f1_mean": "mean of per-code F1", "macro_f1_harmonic": "2PR/(P+R) of macro P and macro R",
    "per_document_jaccard": "mean over documents of |T∩P|/|T∪P|",
    "exact_match": "share of documents whose code set equals the reference",
    "vocabulary_coverage": "share of reference codes that the shortlist contains (caps coder recall)",
    "codes_per_note": "mean number of codes assigned per document",
    "pooled_humans": "every annotation scored; an admission coded by k coders weighs 1/k per annotation",
}


@dataclass(frozen=True)
class Conventions:
    """How macro values are formed (micro never depends on them, except the 0/0 rule)."""

    label_set: str = "reference"
    undefined: str = "zero"
    macro_f1: str = "mean"


PROFILES = {"paper": Conventions("shortlist", "zero", "harmonic"), "corrected": Conventions("reference", "zero", "mean")}
DEFAULT_PROFILE = "corrected"


def resolve_conventions(profile: str | None = None, label_set: str | None = None, undefined: str | None = None,
                        macro_f1: str | None = None) -> tuple[Conventions, str | None]:
    """A profile with explicit overrides; returns the conventions and the profile they match (or None).

    >>> resolve_conventions("paper", macro_f1="mean")
    (Conventions(label_set='shortlist', undefined='zero', macro_f1='mean'), None)
    >>> resolve_conventions(None, label_set="reference")[1]
    'corrected'
    """
    base = PROFILES[profile or DEFAULT_PROFILE]
    chosen = replace(base, **{k: v for k, v in (("label_set", label_set), ("undefined", undefined),
                                                ("macro_f1", macro_f1)) if v is not None})
    if chosen.label_set not in LABEL_SETS:
        raise UserError(f"--label-set must be one of {', '.join(LABEL_SETS)}, got {chosen.label_set!r}")
    matched = next((name for name, conv in PROFILES.items() if conv == chosen), None)
    return chosen, matched


# --- the study's reference side ---------------------------------------------------------------------
@dataclass
class Vocabulary:
    """Columns of every indicator matrix: the catalogue's codes, then any code outside it."""

    codes: list[str]
    index: dict[str, int]
    n_catalogue: int
    system: np.ndarray       # "dx" | "px" | "unknown" per column
    category: np.ndarray
    chapter: np.ndarray
    train_count: np.ndarray

    @classmethod
    def from_study(cls, study: Study) -> Vocabulary:
        import pandas as pd

        study.require("codes")
        cat = pd.read_parquet(study.codes, columns=["code", "system", "category", "chapter", "train_count"])
        return cls(list(cat["code"]), {c: i for i, c in enumerate(cat["code"])}, len(cat),
                   cat["system"].to_numpy(object), cat["category"].to_numpy(object),
                   cat["chapter"].to_numpy(object), cat["train_count"].to_numpy(np.int64))

    def add(self, codes: Sequence[str]) -> None:
        """Append codes outside the catalogue (scored as wrong), classified by their shape when possible."""
        extra = sorted({c for c in codes if c not in self.index})
        if not extra:
            return
        systems, categories, chapters = [], [], []
        for code in extra:
            try:
                system = icd.system_of(code)
                systems.append(system)
                categories.append(icd.category(code, system))
                chapters.append(icd.chapter(code, system))
            except (ValueError, KeyError):
                systems.append("unknown")
                categories.append(code)
                chapters.append("unknown")
        for code in extra:
            self.index[code] = len(self.codes)
            self.codes.append(code)
        self.system = np.concatenate([self.system, np.array(systems, object)])
        self.category = np.concatenate([self.category, np.array(categories, object)])
        self.chapter = np.concatenate([self.chapter, np.array(chapters, object)])
        self.train_count = np.concatenate([self.train_count, np.zeros(len(extra), np.int64)])

    def matrix(self, sets: Sequence[Sequence[str]]) -> np.ndarray:
        """A dense ``[len(sets), n_codes]`` indicator matrix."""
        out = np.zeros((len(sets), len(self.codes)), dtype=bool)
        for row, codes in enumerate(sets):
            out[row, [self.index[c] for c in codes]] = True
        return out


def read_references(study: Study, hadm_ids: Sequence[int] | None = None) -> dict[int, list[str]]:
    """Reference code sets per admission (only ``hadm_ids`` when given)."""
    import pandas as pd

    study.require("references")
    refs = pd.read_parquet(study.references, columns=["hadm_id", "code"])
    if hadm_ids is not None:
        refs = refs[refs["hadm_id"].isin(list(hadm_ids))]
    out: dict[int, list[str]] = {int(h): [] for h in (hadm_ids or [])}
    for hadm_id, code in zip(refs["hadm_id"].to_numpy(), refs["code"].to_numpy()):
        out.setdefault(int(hadm_id), []).append(str(code))
    return {h: sorted(c) for h, c in out.items()}


def read_shortlist(study: Study) -> list[str]:
    study.require("shortlist")
    return [line.strip() for line in study.shortlist.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- one system on its documents ---------------------------------------------------------------------
@dataclass
class SystemSets:
    """A row of Table 1 before scoring: code sets on admissions, with per-row weights."""

    name: str
    kind: str                        # "humans" | "coder" | "model"
    hadm_ids: list[int]              # one per row (repeats for pooled humans)
    sets: list[tuple[str, ...]]
    weights: np.ndarray
    simulated: bool = False
    coder: dict[str, Any] | None = None
    model: dict[str, Any] | None = None


def _scored(system: SystemSets, vocab: Vocabulary, refs: dict[int, list[str]], labels: np.ndarray,
            conv: Conventions, shortlist_mask: np.ndarray) -> tuple[dict[str, Any], DocumentStats, dict[str, Any]]:
    """The row dict, per-admission statistics for the bootstrap, and per-code counts for breakdowns."""
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
    return row, stats, {"tp": tp, "fp": fp, "fn": fn, "y_true": y_true, "y_pred": y_pred, "w": w}


def _slice(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, mask: np.ndarray, undefined: str) -> dict[str, Any]:
    s = metrics.micro_scores(tp[mask], fp[mask], fn[mask], undefined)
    return {"precision": s["precision"], "recall": s["recall"], "f1": s["f1"],
            "n_reference": float(tp[mask].sum() + fn[mask].sum())}


def _grouped(parts: dict[str, Any], groups: np.ndarray, undefined: str) -> dict[str, Any]:
    """Micro P/R/F1 after mapping every code to its group (category, chapter): sets of groups per document."""
    from scipy import sparse

    names, inverse = np.unique(groups.astype(str), return_inverse=True)
    member = sparse.csr_matrix((np.ones(len(inverse)), (np.arange(len(inverse)), inverse)), shape=(len(inverse), len(names)))
    yt = (sparse.csr_matrix(parts["y_true"].astype(np.float32)) @ member).toarray() > 0
    yp = (sparse.csr_matrix(parts["y_pred"].astype(np.float32)) @ member).toarray() > 0
    tp, fp, fn = metrics.code_counts(yt, yp, parts["w"])
    return _slice(tp, fp, fn, np.ones(len(tp), dtype=bool), undefined)


def _breakdowns(parts: dict[str, Any], vocab: Vocabulary, undefined: str) -> dict[str, Any]:
    tp, fp, fn = parts["tp"], parts["fp"], parts["fn"]
    out: dict[str, Any] = {
        "system": {s: _slice(tp, fp, fn, vocab.system == s, undefined) for s in ("dx", "px")},
        "level": {"code": _slice(tp, fp, fn, np.ones(len(tp), bool), undefined),
                  "category": _grouped(parts, vocab.category, undefined),
                  "chapter": _grouped(parts, vocab.chapter, undefined)},
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


# --- Table 1 -----------------------------------------------------------------------------------------
def human_systems(exports: CoderExports) -> list[SystemSets]:
    """The pooled "Human coders" row and one row per coder (simulated coders say so in their name)."""
    anns = exports.annotations
    if not anns:
        raise UserError("the coder exports hold no completed annotation to score (counts: "
                        f"{', '.join(f'{k} {v}' for k, v in exports.counts.items() if v)}); let coders finish tasks")
    per_task = defaultdict(int)
    for a in anns:
        per_task[a.hadm_id] += 1
    all_simulated = all(a.simulated for a in anns)
    arm = " (assisted)" if exports.arm == "assisted" else ""
    pooled = SystemSets(
        ("Simulated coders (pooled)" if all_simulated else "Human coders") + arm, "humans", [a.hadm_id for a in anns],
        [a.codes for a in anns], np.array([1.0 / per_task[a.hadm_id] for a in anns]), simulated=all_simulated)
    by_coder: dict[str, list[Annotation]] = defaultdict(list)
    for a in anns:
        by_coder[a.coder].append(a)
    rows = [pooled]
    for letter, (coder, items) in zip(_letters(), sorted(by_coder.items())):
        first = items[0]
        label = f"Simulated coder {letter}" if first.simulated else f"Coder {letter}"
        rows.append(SystemSets(f"{label} ({coder})", "coder", [a.hadm_id for a in items], [a.codes for a in items],
                               np.ones(len(items)), simulated=first.simulated,
                               coder={"id": first.coder_id, "email": coder if "@" in coder else None,
                                      "name": first.coder_name, "arm": first.arm}))
    return rows


def _letters():
    for i in range(10000):
        yield chr(ord("A") + i % 26) + (str(i // 26) if i >= 26 else "")


def model_systems(study: Study, admissions: Sequence[int],
                  explicit: Sequence[ModelSource | str] = ()) -> list[SystemSets]:
    """Thresholded model sets on ``admissions``: ``--predictions`` items, else every covering set.

    Without ``--predictions``, each run's ``-sample`` set is preferred, else its ``-test`` set; a set that
    does not cover every scored admission is left out (it cannot be compared on the same notes).
    """
    wanted = set(admissions)
    chosen: list[Predictions] = []
    catalogue = Vocabulary.from_study(study).index
    if explicit:
        for item in explicit:
            source = ModelSource(item) if isinstance(item, str) else item
            preds = load_model(study, source, ("sample", "test"), catalogue)
            missing = wanted - set(int(h) for h in preds.hadm_ids)
            if missing:
                raise UserError(f"{source.path}: has no predictions for {len(missing)} of the {len(wanted)} scored "
                                f"admissions (e.g. {sorted(missing)[:3]}); predict on the sample "
                                "(`bench predict --split sample`) or the whole test split")
            chosen.append(preds)
    else:
        by_run: dict[str, list[Predictions]] = defaultdict(list)
        for path in list_prediction_sets(study.predictions_dir):
            preds = read_predictions(path)
            if wanted <= set(int(h) for h in preds.hadm_ids):
                by_run[preds.run or preds.name].append(preds)
        for run, sets in sorted(by_run.items()):
            rank = {"sample": 0, "test": 1}
            chosen.append(min(sets, key=lambda p: (rank.get(p.split or p.name.rsplit("-", 1)[-1], 2), p.name)))
    out = []
    order = sorted(wanted)
    for preds in chosen:
        sets = _sets_on(preds, order, catalogue)
        out.append(SystemSets(preds.system, "model", order, [tuple(sets[h]) for h in order], np.ones(len(order)),
                              model={"name": preds.name, "run": preds.run, "threshold": preds.threshold,
                                     "threshold_source": preds.threshold_source, "split": preds.split}))
    return out


# --- any model's predictions: names, runs and files ------------------------------------------------------
def resolve_prediction_path(study: Study, item: str, splits: Sequence[str]) -> Path:
    """A path as given, else a set under study/predictions, else a run's set (the first of ``splits`` it has)."""
    path = Path(item)
    if path.exists():
        return path
    if (study.predictions_dir / item).exists():
        return study.predictions_dir / item
    if (study.runs_dir / item).is_dir():
        for split in splits:
            if (study.predictions_dir / f"{item}-{split}").exists():
                return study.predictions_dir / f"{item}-{split}"
        raise UserError(f"run {item} has no prediction set for the {' or '.join(splits)} split; run "
                        f"`bench predict --run {item} --split {splits[-1]}`")
    raise UserError(f"--predictions {item}: no such file, prediction set (under {study.predictions_dir}) or run")


def split_ids(study: Study, split: str) -> set[int]:
    """The admissions of one split (``sample`` counts as the test split it is drawn from)."""
    import pandas as pd

    study.require("documents")
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "split"])
    return set(docs.loc[docs["split"] == ("test" if split == "sample" else split), "hadm_id"].astype(int))


def load_model(study: Study, source: ModelSource | str, splits: Sequence[str],
               catalogue: dict[str, int]) -> Predictions:
    """One ``--predictions`` item, checked against the study when it is a model's file, with its threshold.

    Threshold: tuned on ``--dev-predictions`` (``metrics.tune_threshold``, the rule RAC's runs use), else
    ``--threshold``, else the set's own (a run's dev-tuned one; 0.5 for a file). A .psv has none.
    """
    source = ModelSource(source) if isinstance(source, str) else source
    path = resolve_prediction_path(study, source.path, splits)
    split = "test" if "test" in splits else splits[-1]
    preds = read_predictions(path)
    if path.is_file():
        preds = check_against_study(preds, path, catalogue, split_ids(study, split), split)
    if source.dev_path is not None and source.threshold is not None:
        raise UserError(f"--predictions {source.path}: give --dev-predictions or --threshold, not both")
    if source.dev_path is not None:
        dev_path = resolve_prediction_path(study, source.dev_path, ("dev",))
        dev = read_predictions(dev_path)
        if dev_path.is_file():
            dev = check_against_study(dev, dev_path, catalogue, split_ids(study, "dev"), "dev")
        if dev.probs is None:
            raise UserError(f"--dev-predictions {dev_path}: a .psv has no scores to tune a threshold on")
        y_true, _ = reference_matrix(study, dev)
        padded = np.zeros(y_true.shape, dtype=np.float32)
        padded[:, : len(dev.codes)] = dev.probs
        preds = with_threshold(preds, metrics.tune_threshold(y_true, padded)[0], "dev-tuned")
    elif source.threshold is not None:
        preds = with_threshold(preds, source.threshold, "given")
    elif path.is_file() and preds.probs is not None:
        preds = with_threshold(preds, DEFAULT_THRESHOLD, "default")
    return replace(preds, label=source.name) if source.name else preds


def reference_matrix(study: Study, preds: Predictions) -> tuple[np.ndarray, int]:
    """References of ``preds``' admissions as ``[n, len(codes) + extra]`` booleans, and how many extra columns:
    reference codes the model has no column for come last (never predicted, never scored)."""
    hadm_ids = [int(h) for h in preds.hadm_ids]
    refs = read_references(study, hadm_ids)
    if not any(refs.get(h) for h in hadm_ids):
        raise UserError(f"{preds.name}: none of its {len(hadm_ids)} admissions has reference codes in this study; "
                        "predict on this study's notes")
    index = {c: i for i, c in enumerate(preds.codes)}
    extra = sorted({c for h in hadm_ids for c in refs.get(h, []) if c not in index})
    index.update({c: len(preds.codes) + i for i, c in enumerate(extra)})
    y_true = np.zeros((len(hadm_ids), len(index)), dtype=bool)
    for row, h in enumerate(hadm_ids):
        y_true[row, [index[c] for c in refs.get(h, [])]] = True
    return y_true, len(extra)


def _sets_on(preds: Predictions, hadm_ids: Sequence[int], catalogue: dict[str, int]) -> dict[int, list[str]]:
    """Thresholded sets for the requested admissions only (probabilities thresholded on those rows).

    A .psv may hold undotted codes (CAML's own files do): they are normalised as coder codes are."""
    if preds.probs is None:
        return {h: sorted({normalise_code(c, catalogue) for c in preds.sets[h]}) for h in hadm_ids}
    row_of = {int(h): i for i, h in enumerate(preds.hadm_ids)}
    rows = np.array([row_of[h] for h in hadm_ids], dtype=np.int64)
    above = metrics.threshold_scores(np.asarray(preds.probs[rows]), preds.threshold)
    codes = np.asarray(preds.codes)
    return {h: codes[r].tolist() for h, r in zip(hadm_ids, above)}


def label_set_indices(name: str, vocab: Vocabulary, y_ref: np.ndarray, predicted: np.ndarray, shortlist: list[str]) -> np.ndarray:
    """Column indices of the macro label set (see ``Conventions``)."""
    if name == "shortlist":
        return np.array(sorted(vocab.index[c] for c in shortlist if c in vocab.index), dtype=np.int64)
    if name == "all":
        return np.arange(vocab.n_catalogue)
    if name == "reference":
        return np.flatnonzero(y_ref)
    return np.flatnonzero(y_ref | predicted)


def score_table1(study: Study, exports: CoderExports, models: list[SystemSets], conv: Conventions,
                 profile: str | None, refs: dict[int, list[str]], shortlist: list[str],
                 n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Table 1 under one set of conventions (the ``table1`` block of scores.json).

    ``refs`` (the scored admissions' reference codes) and ``shortlist`` are read once by ``score`` and shared
    by every convention's table.
    """
    systems = human_systems(exports) + models
    admissions = sorted({a.hadm_id for a in exports.annotations})
    vocab = Vocabulary.from_study(study)
    vocab.add([c for s in systems for codes in s.sets for c in codes] + [c for v in refs.values() for c in v]
              + shortlist)
    y_ref = vocab.matrix([refs[h] for h in admissions]).any(0)
    predicted = np.zeros(len(vocab.codes), dtype=bool)
    for s in systems:
        predicted |= vocab.matrix(s.sets).any(0)
    labels = label_set_indices(conv.label_set, vocab, y_ref, predicted, shortlist)
    if conv.label_set == "union":  # rows add their own documents' references to the predicted codes
        predicted_only = np.flatnonzero(predicted)
    shortlist_mask = np.zeros(len(vocab.codes), dtype=bool)
    shortlist_mask[[vocab.index[c] for c in shortlist if c in vocab.index]] = True

    rows, stats, breakdowns = [], {}, {"system": {}, "level": {}, "frequency": {}, "chapter": {}}
    for system in systems:
        row_labels = predicted_only if conv.label_set == "union" else labels
        row, doc_stats, parts = _scored(system, vocab, refs, row_labels, conv, shortlist_mask)
        stats[system.name] = doc_stats
        for key, value in _breakdowns(parts, vocab, conv.undefined).items():
            breakdowns[key][system.name] = value
        rows.append(row)
    # Paired intervals for the systems on all admissions; each coder on their own admissions.
    paired = {r["system"]: stats[r["system"]] for r in rows if r["kind"] != "coder"}
    ci = bootstrap_ci(paired, n_resamples, seed)
    for r in rows:
        if r["kind"] == "coder":
            ci.update(bootstrap_ci({r["system"]: stats[r["system"]]}, n_resamples, seed))
        r["ci95"] = ci[r["system"]]
    humans = rows[0]["system"]
    comparisons = []
    for model in (r for r in rows if r["kind"] == "model"):
        for metric in COMPARED_METRICS:
            diff, p = randomization_test(stats[humans], stats[model["system"]], metric, N_PERMUTATIONS, seed)
            comparisons.append({"a": humans, "b": model["system"], "metric": metric, "difference": diff,
                                "p_value": p, "n_permutations": N_PERMUTATIONS})
    coder_sets: dict[str, dict[int, frozenset[str]]] = defaultdict(dict)
    for a in exports.annotations:
        coder_sets[a.coder][a.hadm_id] = frozenset(a.codes)
    return {
        "profile": profile,
        "arm": exports.arm,
        "conventions": {**conv.__dict__, "label_set_size": int(len(labels)),
                        "threshold": {m.name: m.model["threshold"] for m in models},
                        "definitions": DEFINITIONS},
        "n_documents": len(admissions),
        "rows": rows,
        "comparisons": comparisons,
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "level": 0.95},
        "breakdowns": breakdowns,
        "agreement": agreement(coder_sets),
        "counts": exports.counts,
        "coders": _throughput(exports.annotations),
        "notes": ["Macro values over thousands of rare codes are unstable; they carry no interval."],
    }


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
          prediction_paths: Sequence[ModelSource | str] = (), n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Table 1 under the requested conventions and under both profiles, plus the per-document drill-down."""
    admissions = sorted({a.hadm_id for a in exports.annotations})
    models = model_systems(study, admissions, prediction_paths)
    refs, shortlist = read_references(study, admissions), read_shortlist(study)
    table1 = score_table1(study, exports, models, conv, profile, refs, shortlist, n_resamples, seed)
    profiles = {name: (table1 if p == conv else
                       score_table1(study, exports, models, p, name, refs, shortlist, n_resamples, seed))
                for name, p in PROFILES.items()}
    return {"exports": exports.exports, "table1": table1, "profiles": profiles,
            "per_document": per_document(exports, models, refs)}


# --- Table 2 -----------------------------------------------------------------------------------------
def evaluate_table2(study: Study, sources: Sequence[ModelSource | str] = ()) -> dict[str, Any]:
    """Ranking and set metrics of model prediction sets on the full test split (the ``table2`` block).

    ``sources``: ``--predictions`` items (a run name means that run's ``-test`` set); default every test-split set.
    """
    if sources:
        catalogue = Vocabulary.from_study(study).index
        sets = [load_model(study, source, ("test",), catalogue) for source in sources]
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
                                          "auc_macro": "mean over codes with at least one positive (and one negative)"},
            "reported": [REPORTED_TABLE2]}


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


# --- scores.json and the printed tables ----------------------------------------------------------------
def write_scores(study: Study, update: dict[str, Any]) -> Path:
    """Merge ``update`` into ``scores.json`` atomically, keeping the other table (score keeps table2 and
    evaluate keeps table1)."""
    current: dict[str, Any] = {}
    if study.scores.exists():
        try:
            current = json.loads(study.scores.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            current = {}
    if "table2" in update and "table2" in current:
        fresh = {r["system"] for r in update["table2"]["rows"]}
        update = {**update, "table2": {**update["table2"], "rows": [r for r in current["table2"].get("rows", [])
                                                                    if r["system"] not in fresh] + update["table2"]["rows"]}}
    prepare = study.step("prepare") or {}
    merged = {**current, **update, "schema": SCHEMA, "tool_version": __version__,
              "generated_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
              "data_source": prepare.get("data_source", current.get("data_source"))}
    return atomic_write_text(study.scores, json.dumps(_jsonable(merged), indent=1) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _pct(value: float | None) -> str:
    return "  -  " if value is None else f"{100 * value:5.1f}"


def format_table1(table: dict[str, Any]) -> str:
    """Table 1 as text, the paper's shape (macro then micro J/P/R, plus F1), conventions on top."""
    c = table["conventions"]
    width = max(len("System"), *(len(r["system"]) for r in table["rows"]))
    lines = [
        f"Table 1. Coders and models on the same {table['n_documents']} admissions (values in %)",
        f"Conventions: profile {table['profile'] or 'custom'}; macro label set {c['label_set']} "
        f"({c['label_set_size']} codes); 0/0 -> {c['undefined']}; macro-F1 {c['macro_f1']}; micro counts every code",
        f"{'System':<{width}} {'n':>4} | {'Macro J':>7} {'P':>5} {'R':>5} {'F1':>5} | {'Micro J':>7} {'P':>5} {'R':>5} {'F1':>5}"
        f" | {'codes':>5} {'docJ':>5} {'exact':>5} {'cover':>5}",
    ]
    lines.append("-" * len(lines[-1]))
    for r in table["rows"]:
        ma, mi = r["macro"], r["micro"]
        lines.append(
            f"{r['system']:<{width}} {r['n_documents']:>4} | {_pct(ma['jaccard']):>7} {_pct(ma['precision'])} "
            f"{_pct(ma['recall'])} {_pct(ma['f1'])} | {_pct(mi['jaccard']):>7} {_pct(mi['precision'])} "
            f"{_pct(mi['recall'])} {_pct(mi['f1'])} | {r['codes_per_note']:5.1f} {_pct(r['per_document_jaccard'])} "
            f"{_pct(r['exact_match'])} {_pct(r['vocabulary_coverage'])}")
    lo, hi = table["rows"][0]["ci95"]["micro_jaccard"]
    lines.append(f"95% bootstrap CI ({table['bootstrap']['n_resamples']} resamples) of {table['rows'][0]['system']}"
                 f" micro J: [{_pct(lo).strip()}, {_pct(hi).strip()}]")
    for comp in table["comparisons"]:
        if comp["metric"] == "micro_f1" and comp["difference"] is not None:
            lines.append(f"{comp['a']} - {comp['b']}: micro F1 difference {100 * comp['difference']:+.1f} points, "
                         f"p = {comp['p_value']:.4f} (paired randomization, {comp['n_permutations']} permutations)")
    if table.get("agreement"):
        ag = table["agreement"]
        alpha = ag["krippendorff_alpha_masi"]
        lines.append(f"Agreement on {ag['n_overlap_tasks']} shared tasks: Krippendorff alpha (MASI) "
                     f"{'-' if alpha is None else f'{alpha:.3f}'}; pairwise F1 "
                     + ", ".join(f"{p['f1']:.3f}" for p in ag["pairwise"] if p["f1"] is not None))
    counts = table["counts"]
    lines.append("Counts: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    return "\n".join(lines)


def format_table2(table2: dict[str, Any]) -> str:
    """Table 2 as text: AUC, F1, P@k, with the paper's reported RAC row labelled as such."""
    header = (f"{'System':<62} {'AUC mac':>7} {'mic':>5} | {'F1 mac':>6} {'(harm)':>6} {'mic':>5} | "
              f"{'P@5':>5} {'P@8':>5} {'P@15':>5}")
    lines = ["Table 2. Models on the test split (values in %; macro over all codes, 0/0 -> 0; macro-AUC over "
             "codes with a positive; P@k ties: expected hits under random tie order)", header, "-" * len(header)]
    for r in [*table2["rows"], *table2.get("reported", [])]:
        name = r["system"] + (f" [{r['note']}]" if r.get("note") else f" n={r['n_documents']}")
        if r.get("covers_test_split") is False:
            name += f" (of {r['n_test_split']} test)"
        lines.append(f"{name:<62} {_pct(r['auc_macro']):>7} {_pct(r['auc_micro'])} | {_pct(r['f1_macro']):>6} "
                     f"{_pct(r.get('f1_macro_harmonic')):>6} {_pct(r['f1_micro'])} | {_pct(r['p_at_5'])} "
                     f"{_pct(r['p_at_8'])} {_pct(r['p_at_15'])}")
    return "\n".join(lines)
