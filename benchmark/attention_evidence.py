"""`bench evidence`: a model's per-code evidence windows against MDACE's coder spans on the discharge summaries.

Predicted evidence comes from a prediction set's ``evidence.jsonl`` (``bench predict``: for every predicted
code, the top attention windows as character offsets into the study's document). Gold evidence is the
imported MDACE spans placed in the same document (``bench import-mdace``; spans in other notes have no place
there and are left out), of the types chosen by ``--mdace-types``. Both are scored with MDACE's measures
(``benchmark.evidence``: exact span, token, and their position-independent variants), counts summed over the
MDACE charts the prediction set covers.

- **all codes**: every predicted code's windows against every gold span of the chart;
- **correctly predicted codes**: only codes that the model predicted *and* MDACE annotated in the discharge
  summary, on both sides, so evidence quality is judged apart from code accuracy;
- **random windows**: the same predicted codes, each window replaced by one of the same number of CAML tokens
  at a uniformly random token position of the document (seeded): what chance gives;
- **by frequency**: the all-codes measures per training-frequency bucket of the code (Table 1's buckets).

Without ``--predictions``, each run's test-split prediction set is scored (MDACE's charts are test charts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import study_files
from benchmark.errors import UserError
from benchmark.evidence import MEASURES, Span, evidence_scores, measure_cells, measure_header
from benchmark.mdace import summary_evidence
from benchmark.predictions import EVIDENCE_FILE, list_prediction_sets, read_evidence, read_predictions
from benchmark.table1 import FREQUENCY_BUCKETS
from benchmark.study import Study
from benchmark.text import token_spans



def _chosen_sets(study: Study, names: Sequence[str]) -> list[Path]:
    """``--predictions`` as given, else per run its test-split set with evidence (else its first such set)."""
    if names:
        paths = [Path(n) if Path(n).exists() else study.predictions_dir / n for n in names]
    else:
        by_run: dict[str, list[tuple[bool, Path]]] = {}
        for path in list_prediction_sets(study.predictions_dir):
            if (path / EVIDENCE_FILE).exists():
                preds = read_predictions(path)
                by_run.setdefault(preds.run or preds.name, []).append((preds.split != "test", path))
        paths = [min(sets)[1] for _, sets in sorted(by_run.items())]
    for path in paths:
        if not (path / EVIDENCE_FILE).exists():
            raise UserError(f"{path}: no {EVIDENCE_FILE}; evidence comes from `bench predict` (a .psv has none)")
    if not paths:
        raise UserError(f"no prediction set with {EVIDENCE_FILE} under {study.predictions_dir}; run `bench predict "
                        "--split test`, or pass --predictions NAME")
    return paths


def _random_windows(rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray, spans: list[Span]) -> list[Span]:
    """Each span replaced by a window of as many tokens at a random token position (same code)."""
    out = []
    for begin, end, code in spans:
        n = int(np.searchsorted(ends, end, "right") - np.searchsorted(starts, begin, "left"))
        if n <= 0 or n > len(starts):
            continue
        first = int(rng.integers(0, len(starts) - n + 1))
        out.append((int(starts[first]), int(ends[first + n - 1]), code))
    return out


def score_evidence(study: Study, names: Sequence[str] = (), types: str = "all", seed: int = 0) -> dict[str, Any]:
    """The ``evidence`` block of scores.json: one row per prediction set with evidence."""
    gold = summary_evidence(study, types)
    test_charts = set(gold)
    catalogue = study_files.read_catalogue(study, ["code", "train_count"])
    train_count = dict(zip(catalogue["code"], catalogue["train_count"].astype(int)))
    rows = []
    for path in _chosen_sets(study, names):
        preds = read_predictions(path)
        evidence = read_evidence(path / EVIDENCE_FILE)
        hadm_ids = sorted(test_charts & set(evidence))
        if not hadm_ids:
            raise UserError(f"{path}: covers none of the {len(test_charts)} MDACE test-split charts; "
                            "predict on the test split (`bench predict --split test`)")
        docs = study_files.read_documents(study, ["hadm_id", "text"], hadm_ids=hadm_ids)
        text = dict(zip(docs["hadm_id"].astype(int), docs["text"]))
        rng = np.random.default_rng(seed)
        charts_all, charts_correct, random_all, random_correct = [], [], [], []
        for h in hadm_ids:
            predicted = [(b, e, code) for code, windows in evidence[h].items() for b, e, _ in windows]
            correct = {c for _, _, c in predicted} & {c for _, _, c in gold[h]}
            _, starts, ends = token_spans(text[h])
            pick = [s for s in predicted if s[2] in correct]
            gold_correct = [s for s in gold[h] if s[2] in correct]
            charts_all.append((text[h], gold[h], predicted))
            charts_correct.append((text[h], gold_correct, pick))
            random_all.append((text[h], gold[h], _random_windows(rng, starts, ends, predicted)))
            random_correct.append((text[h], gold_correct, _random_windows(rng, starts, ends, pick)))
        by_frequency = {}
        for bucket, lo, hi in FREQUENCY_BUCKETS:
            def inside(spans: list[Span]) -> list[Span]:
                return [s for s in spans if lo <= train_count.get(s[2], 0) <= (hi if hi is not None else 1 << 62)]
            by_frequency[bucket] = evidence_scores((t, inside(g), inside(p)) for t, g, p in charts_all)
        rows.append({
            "system": f"RAC ({preds.run})" if preds.run else preds.name, "name": preds.name, "split": preds.split,
            "n_charts": len(hadm_ids), "n_gold_spans": sum(len(gold[h]) for h in hadm_ids),
            "n_predicted_windows": sum(len(p) for _, _, p in charts_all),
            "all_codes": evidence_scores(charts_all), "correct_codes": evidence_scores(charts_correct),
            "random_windows": {"all_codes": evidence_scores(random_all),
                               "correct_codes": evidence_scores(random_correct), "seed": seed},
            "by_frequency": by_frequency,
        })
    synthetic = (study.step("prepare") or {}).get("data_source") == "synthetic"
    return {"evidence": {
        "rows": rows, "mdace_types": types, "measures": list(MEASURES), "synthetic": synthetic,
        "gold": "MDACE spans placed in the discharge summary and addenda (trimmed as MDACE's results are)",
        "notes": ["Gold spans in other notes are left out: the model reads the discharge summary only.",
                  "Measures: benchmark.evidence (MDACE's definitions); counts summed over charts; 0/0 -> 0."],
    }}


def format_evidence(block: dict[str, Any]) -> str:
    """The evidence table as text: P/R/F1 per measure for all codes, correct codes and random windows."""
    title = "Evidence vs MDACE spans on discharge summaries" + (" (synthetic companion)" if block["synthetic"] else "")
    lines = [f"{title}; MDACE types {block['mdace_types']} (values in %, P/R/F1)"]
    lines += measure_header("System / codes", 44)
    for row in block["rows"]:
        for label, scores in (("all codes", row["all_codes"]), ("correct codes", row["correct_codes"]),
                              ("random windows, all", row["random_windows"]["all_codes"]),
                              ("random windows, correct", row["random_windows"]["correct_codes"])):
            lines.append(f"{(row['system'] + ', ' + label)[:44]:<44}{measure_cells(scores)}")
        lines.append(f"  {row['n_charts']} charts, {row['n_gold_spans']} gold spans, "
                     f"{row['n_predicted_windows']} predicted windows")
    return "\n".join(lines)
