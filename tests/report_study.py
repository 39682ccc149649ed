"""Builds study directories for the report's tests and perf script, following the data contracts exactly.

The files match the brief's contracts (documents, references and codes parquet, sample.csv, shortlist.txt,
study.toml through ``Study.record_step``, a prediction set through ``write_predictions`` with evidence) and
``scores.json`` follows docs/scores-schema.md field by field. The metric values are arbitrary fractions
(seeded): the report must show whatever the scorer wrote, so the tests compare the page against this file.

Every note carries ``NOTE_MARKER``, a string that occurs nowhere else, so a test can prove that a report
without ``--include-text`` holds no note text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import reported
from benchmark.conventions import DEFINITIONS
from benchmark.io import atomic_write_text
from benchmark.predictions import Predictions, write_predictions
from benchmark.study import Study

NOTE_MARKER = "QZXNOTEMARKERQZX"
MODEL_SYSTEM = "RAC (small)"
CODER_EMAILS = ("coder.a@demo.invalid", "coder.b@demo.invalid")
# A title with markup in it: the page must show it as text, never run it.
HOSTILE_TITLE = '<script>window.__pwned = 1</script><img src="https://example.invalid/x.png"> & "quoted"'

_DX_CHAPTERS = (
    (1, 139, "001-139 Infectious and parasitic diseases"), (140, 239, "140-239 Neoplasms"),
    (240, 279, "240-279 Endocrine, nutritional and metabolic diseases, and immunity disorders"),
    (280, 289, "280-289 Diseases of the blood and blood-forming organs"), (290, 319, "290-319 Mental disorders"),
    (320, 389, "320-389 Diseases of the nervous system and sense organs"),
    (390, 459, "390-459 Diseases of the circulatory system"), (460, 519, "460-519 Diseases of the respiratory system"),
    (520, 579, "520-579 Diseases of the digestive system"), (580, 629, "580-629 Diseases of the genitourinary system"),
    (630, 679, "630-679 Complications of pregnancy, childbirth, and the puerperium"),
    (680, 709, "680-709 Diseases of the skin and subcutaneous tissue"),
    (710, 739, "710-739 Diseases of the musculoskeletal system and connective tissue"),
    (740, 759, "740-759 Congenital anomalies"), (760, 779, "760-779 Certain conditions originating in the perinatal period"),
    (780, 799, "780-799 Symptoms, signs, and ill-defined conditions"), (800, 999, "800-999 Injury and poisoning"),
)
_PX_CHAPTERS = ((0, 5, "01-05 Operations on the nervous system"), (6, 34, "06-34 Operations on other organ systems"),
                (35, 39, "35-39 Operations on the cardiovascular system"), (40, 99, "40-99 Other procedures"))


@dataclass(frozen=True)
class Size:
    """How big a study to build; ``Size.full()`` is the paper's size."""

    n_test: int = 30
    n_train: int = 10
    n_sample: int = 12
    n_dx: int = 160
    n_px: int = 40
    words: int = 120
    codes_per_note: int = 16

    @classmethod
    def full(cls) -> Size:
        return cls(n_test=3372, n_train=20, n_sample=508, n_dx=7930, n_px=1000, words=1800)


def build_study(root: Path, size: Size = Size(), *, coders: bool = True, model: bool = True,
                scores: bool = True, table2: bool = True, sample: bool = True, seed: int = 0) -> Study:
    """Write a study under ``root`` with the pieces asked for; return it."""
    rng = np.random.default_rng(seed)
    study = Study(root)
    root.mkdir(parents=True, exist_ok=True)
    catalogue = _catalogue(size)
    hadm_ids = np.arange(100_001, 100_001 + size.n_test + size.n_train, dtype=np.int64)
    splits = ["test"] * size.n_test + ["train"] * size.n_train
    # Zipf-like code frequencies, so the frequency buckets and chapters all get some codes.
    weights = 1.0 / np.arange(1, len(catalogue) + 1)
    weights /= weights.sum()
    codes = catalogue["code"].to_numpy()
    references = {int(h): sorted(rng.choice(codes, size=size.codes_per_note, replace=False, p=weights).tolist())
                  for h in hadm_ids}
    # A title with markup, on a code the drill-down shows.
    catalogue.loc[catalogue["code"] == references[int(hadm_ids[0])][0], "long_title"] = HOSTILE_TITLE
    catalogue.to_parquet(study.codes, index=False)
    texts = [_note(int(h), references[int(h)], size.words, rng) for h in hadm_ids]
    documents = pd.DataFrame({
        "hadm_id": hadm_ids, "subject_id": hadm_ids + 5_000_000, "split": splits, "text": texts,
        "sent_starts": [np.array([0], dtype=np.int32)] * len(texts),
        "sent_ends": [np.array([len(t)], dtype=np.int32) for t in texts],
        "tokens": [" ".join(w.lower() for w in t.split() if w.isalpha()) for t in texts],
        "n_tokens": np.array([len(t.split()) for t in texts], dtype=np.int32),
    })
    documents.to_parquet(study.documents, index=False)
    ref_rows = [(h, c, "px" if _is_px(c) else "dx") for h, cs in references.items() for c in cs]
    pd.DataFrame(ref_rows, columns=["hadm_id", "code", "system"]).to_parquet(study.references, index=False)
    split_dir = root / "splits"
    split_dir.mkdir(exist_ok=True)
    for name in ("train", "dev", "test"):
        ids = [str(h) for h, s in zip(hadm_ids, splits) if s == name]
        atomic_write_text(split_dir / f"{name}_full_hadm_ids.csv", "\n".join(ids) + "\n")
    study.record_step("prepare", {
        "fingerprint": f"prepare-{seed}", "data_source": "synthetic",
        "inputs": {"splits": study.file_hashes(*sorted(split_dir.glob("*.csv")))},
        "outputs": study.file_hashes(study.documents, study.references, study.codes),
        "counts": {"test": size.n_test, "train": size.n_train, "codes": len(catalogue)},
    })
    order = rng.permutation(size.n_test - 1)[: size.n_sample - 1] + 1  # the first note (hostile title) is always sampled
    sampled = [int(hadm_ids[0])] + [int(h) for h in hadm_ids[order]]
    if sample:
        atomic_write_text(study.sample, "".join(f"{h}\n" for h in sampled))
        shortlist = sorted({c for h in hadm_ids[: size.n_test] for c in references[int(h)]})
        atomic_write_text(study.shortlist, "".join(f"{c}\n" for c in shortlist))
        # The record's shape is `bench sample`'s (benchmark.sampling.sample): params, outputs, figures.
        study.record_step("sample", {"fingerprint": f"sample-{seed}", "params": {"n": size.n_sample, "seed": seed},
                                     "outputs": study.file_hashes(study.sample, study.shortlist),
                                     "figures": {"n": size.n_sample, "seed": seed, "shortlist_codes": len(shortlist),
                                                 "rule": "test-codes: the codes in the test-split references"}})
    model_sets = {h: _perturb(references[h], codes, rng) for h in sampled}
    if model:
        _write_model(study, sampled, codes, model_sets, texts=dict(zip(hadm_ids.tolist(), texts)), rng=rng)
    if scores:
        data = scores_json(sampled, references, model_sets, catalogue, rng, coders=coders, model=model,
                           table2=table2, n_test=size.n_test)
        atomic_write_text(study.scores, json.dumps(data, indent=1))
    return study


def _catalogue(size: Size) -> pd.DataFrame:
    rows = []
    for i in range(size.n_dx):
        category = 1 + (i * 997 // max(size.n_dx, 1)) % 999 if size.n_dx < 999 else 1 + (i // 10) % 999
        code = f"{category:03d}.{i % 10}"
        chapter = next(label for lo, hi, label in _DX_CHAPTERS if lo <= category <= hi)
        rows.append((code, "dx", chapter, f"{category:03d}"))
    for i in range(size.n_px):
        category = (i // 10) % 100
        rows.append((f"{category:02d}.{i % 10}", "px",
                     next(label for lo, hi, label in _PX_CHAPTERS if lo <= category <= hi), f"{category:02d}"))
    frame = pd.DataFrame(rows, columns=["code", "system", "chapter", "category"]).drop_duplicates("code")
    frame["short_title"] = [f"Short title {c}" for c in frame["code"]]
    frame["long_title"] = [f"Long title of code {c}" for c in frame["code"]]
    frame["train_count"] = np.arange(len(frame))[::-1] % 700
    frame["in_test"] = True
    frame["title_source"] = "mimic"
    return frame.sort_values("code").reset_index(drop=True)[
        ["code", "system", "short_title", "long_title", "chapter", "category", "train_count", "in_test", "title_source"]]


def _is_px(code: str) -> bool:
    return len(code.split(".")[0]) == 2


def _note(hadm_id: int, codes: list[str], words: int, rng: np.random.Generator) -> str:
    vocabulary = ("patient", "admitted", "with", "chest", "pain", "history", "of", "hypertension", "discharged",
                  "stable", "denies", "fever", "cough", "started", "on", "aspirin", "follow", "up")
    body = " ".join(rng.choice(vocabulary, size=words))
    lines = [body[i:i + 78] for i in range(0, len(body), 78)]
    return (f"Admission Date: [**2150-1-1**]\n\nHistory of Present Illness:\n" + "\n".join(lines)
            + f"\n\n{NOTE_MARKER} {hadm_id}\n\nDischarge Diagnosis:\n" + "\n".join(f"code {c}" for c in codes))


def _perturb(reference: list[str], codes: np.ndarray, rng: np.random.Generator) -> list[str]:
    """A system's code set: most of the reference, a few misses and a few extras."""
    kept = [c for c in reference if rng.random() < 0.7]
    extra = rng.choice(codes[:300], size=3, replace=False).tolist()
    return sorted(set(kept) | set(extra))


def _write_model(study: Study, sampled: list[int], codes: np.ndarray, sets: dict[int, list[str]],
                 texts: dict[int, str], rng: np.random.Generator) -> None:
    index = {c: i for i, c in enumerate(codes)}
    probs = (rng.random((len(sampled), len(codes)), dtype=np.float32) * 0.4).astype(np.float16)
    for row, h in enumerate(sampled):
        for c in sets[h]:
            probs[row, index[c]] = 0.9
    evidence = []
    for h in sampled:
        n = len(texts[h])
        evidence.append({"hadm_id": h, "codes": {
            c: [{"start": s, "end": min(s + 30, n), "score": 0.5 - 0.1 * k}
                for k, s in enumerate(sorted(rng.integers(0, max(n - 30, 1), size=3).tolist()))]
            for c in sets[h]}})
    preds = Predictions(name="small-sample", hadm_ids=np.asarray(sampled, dtype=np.int64), codes=list(codes),
                        probs=probs, threshold=0.5, threshold_source="dev-tuned", run="small", split="sample")
    write_predictions(study.predictions_dir / "small-sample", preds, evidence)


def _fraction(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.2, 0.9))


def _metric_block(rng: np.random.Generator) -> dict[str, float]:
    return {k: _fraction(rng) for k in ("jaccard", "precision", "recall", "f1")}


def _row(system: str, kind: str, n: int, rng: np.random.Generator, simulated: bool = False,
         coder: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    micro = _metric_block(rng)
    row = {
        "system": system, "kind": kind, "simulated": simulated, "n_documents": n,
        "micro": micro, "macro": _metric_block(rng),
        "codes_per_note": float(rng.uniform(8, 16)), "reference_codes_per_note": 15.8,
        "per_document_jaccard": _fraction(rng), "exact_match": 0.0 if kind != "model" else None,
        "vocabulary_coverage": 0.97,
        "coder": coder, "model": model,
    }
    row["ci95"] = {f"micro_{k}": [micro[k] - 0.03, micro[k] + 0.025] for k in micro}
    row["ci95"]["per_document_jaccard"] = [row["per_document_jaccard"] - 0.04, row["per_document_jaccard"] + 0.04]
    return row


def _table1(profile: str, sampled: list[int], rng: np.random.Generator, coders: bool, model: bool) -> dict[str, Any]:
    n = len(sampled)
    rows = []
    if coders:
        rows.append(_row("Human coders", "humans", n, rng, simulated=True))
        for i, email in enumerate(CODER_EMAILS):
            # named as the scorer names coder rows: long enough to test that labels fit
            rows.append(_row(f"Simulated coder {'AB'[i]} ({email})", "coder", n // 2, rng, simulated=True,
                             coder={"id": 3 + i, "email": email}))
    if model:
        rows.append(_row(MODEL_SYSTEM, "model", n, rng, model={"name": "small-sample", "run": "small",
                                                               "threshold": 0.5, "threshold_source": "dev-tuned"}))
    systems = [r["system"] for r in rows]
    slice_ = lambda: {"precision": _fraction(rng), "recall": _fraction(rng), "f1": _fraction(rng), "n_reference": 40}
    chapters = [label for _, _, label in _DX_CHAPTERS + _PX_CHAPTERS]
    macro_f1 = "harmonic" if profile == "paper" else "mean"
    return {
        "profile": profile,
        "conventions": {
            "label_set": "shortlist" if profile == "paper" else "reference", "label_set_size": 4075,
            "undefined": "zero" if profile == "paper" else "skip", "macro_f1": macro_f1,
            "threshold": {MODEL_SYSTEM: 0.5} if model else {},
            "definitions": DEFINITIONS,
        },
        "n_documents": n,
        "rows": rows,
        "comparisons": [{"a": "Human coders", "b": MODEL_SYSTEM, "metric": "micro_f1",
                         "difference": float(rng.uniform(-0.2, 0.2)), "p_value": float(rng.uniform(0, 0.2)),
                         "n_permutations": 10000}] if coders and model else [],
        "bootstrap": {"n_resamples": 1000, "seed": 0, "level": 0.95},
        "breakdowns": {
            "system": {s: {"dx": slice_(), "px": slice_()} for s in systems},
            "level": {s: {"code": slice_(), "category": slice_(), "chapter": slice_()} for s in systems},
            "frequency": {s: {b: slice_() for b in ("0", "1-5", "6-50", "51-500", ">500")} for s in systems},
            "chapter": {s: {c: slice_() for c in chapters} for s in systems},
        },
        "agreement": {"n_overlap_tasks": 4, "coders": list(CODER_EMAILS),
                      "pairwise": [{"a": CODER_EMAILS[0], "b": CODER_EMAILS[1], "n_tasks": 4, "f1": 0.61}],
                      "krippendorff_alpha_masi": 0.52} if coders else None,
        "counts": {"tasks": n, "annotations": n + 4 if coders else 0, "scored": n if coders else 0, "skipped": 0,
                   "cancelled": 0, "no_annotation": 0 if coders else n, "duplicates_replaced": 1, "unknown_codes": 0},
        "coders": [{"coder": e, "id": 3 + i, "simulated": True, "n_tasks": n // 2 + 2,
                    "median_lead_time_s": 300.0 + 60 * i, "charts_per_hour": 11.6 - 2 * i}
                   for i, e in enumerate(CODER_EMAILS)] if coders else [],
        "reported": reported.table1_rows(),
    }


def scores_json(sampled: list[int], references: dict[int, list[str]], model_sets: dict[int, list[str]],
                catalogue: pd.DataFrame, rng: np.random.Generator, *, coders: bool, model: bool, table2: bool,
                n_test: int) -> dict[str, Any]:
    """A scores.json (schema 1) for a study; sets in ``per_document`` are consistent with the study."""
    codes = catalogue["code"].to_numpy()
    per_document = []
    for i, h in enumerate(sampled):
        humans = {}
        if coders:
            humans[CODER_EMAILS[i % 2]] = _perturb(references[h], codes, rng)
            if i < 4:  # the overlap subset, coded by both
                humans[CODER_EMAILS[(i + 1) % 2]] = _perturb(references[h], codes, rng)
        per_document.append({"hadm_id": h, "reference": references[h], "humans": humans,
                             "models": {MODEL_SYSTEM: model_sets[h]} if model else {}})
    paper = _table1("paper", sampled, rng, coders, model)
    corrected = _table1("corrected", sampled, rng, coders, model)
    data: dict[str, Any] = {
        "schema": 1, "tool_version": "0.1.0", "generated_at": "2026-11-25T12:00:00+00:00",
        "data_source": "synthetic",
        "exports": [{"path": "exports/20261125T120000Z-pull-0123456789abcdef.json", "sha256": "0" * 64}] if coders else [],
        "table1": corrected, "profiles": {"paper": paper, "corrected": corrected}, "per_document": per_document,
    }
    if table2 and model:
        data["table2"] = {
            "rows": [{"system": MODEL_SYSTEM, "n_documents": n_test, "split": "test", "threshold": 0.5,
                      "threshold_source": "dev-tuned", "auc_macro": _fraction(rng), "auc_micro": _fraction(rng),
                      "f1_macro": _fraction(rng), "f1_macro_harmonic": _fraction(rng), "f1_micro": _fraction(rng),
                      "precision_micro": _fraction(rng), "recall_micro": _fraction(rng), "p_at_5": _fraction(rng),
                      "p_at_8": _fraction(rng), "p_at_15": _fraction(rng), "n_codes_auc": 4000}],
            "conventions": {"label_set": "all", "undefined": "zero",
                            "p_at_k_ties": "expected hits under random tie order",
                            "reported_macro_f1": reported.MACRO_F1_NOTE},
            "reported": reported.table2_rows(),
        }
    return data
