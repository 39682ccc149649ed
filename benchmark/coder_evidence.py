"""Coder evidence: the spans the study's coders highlighted for their codes, scored against MDACE and between coders.

Coders mark evidence on the page of ``bench setup-labelstudio --evidence``; ``benchmark.exports`` reads each
annotation's ``evidence`` (``{code: ((start, end), ...)}``, offsets into the study's document, only codes the
coder picked). ``bench score`` calls :func:`score_coder_evidence` and stores the block as ``coder_evidence``
in scores.json. All measures are MDACE's (``benchmark.evidence``: exact span, token, and their
position-independent variants; counts summed over charts, then P/R/F1, 0/0 -> 0).

- **Against MDACE** (when the study imported MDACE, ``bench import-mdace``): on the charts both have (the
  coders' sample is drawn from the test split, where all of MDACE's charts lie), each coder's spans are the
  prediction and MDACE's spans placed in the discharge summary (of ``--mdace-types``, default all) the gold,
  as ``bench evidence`` scores RAC. *all codes*: every span of the chart; *correct codes*: only codes that
  the coder picked and MDACE annotated there, on both sides, so the spans are judged apart from the codes.
  One row per coder and one for all coders (their annotations pooled: a chart coded by two coders counts twice).
- **Between coders** (tasks both coders of a pair annotated, e.g. ``--design overlap:K``): one coder's spans
  as the reference, the other's as the prediction. F1 is symmetric (swapping them swaps P and R), so it is the
  agreement; P and R are kept with the pair's order. *all codes* compares every span; *shared codes* only the
  spans of codes both coders picked (agreement on the evidence, given agreement on the code).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from benchmark import study_files
from benchmark.evidence import MEASURES, Span, evidence_scores, measure_cells, measure_header
from benchmark.exports import Annotation, CoderExports
from benchmark.mdace import summary_evidence
from benchmark.study import Study

POOLED = "All coders"


def _spans(annotation: Annotation, codes: Iterable[str] | None = None) -> list[Span]:
    """The annotation's evidence as ``(start, end, code)``, restricted to ``codes`` when given."""
    keep = None if codes is None else set(codes)
    return [(b, e, code) for code, spans in annotation.evidence.items() if keep is None or code in keep
            for b, e in spans]


def against_mdace(annotations: list[Annotation], gold: dict[int, list[Span]], text: dict[int, str]) -> list[dict[str, Any]]:
    """One row per coder (and the pooled row) of evidence scores against ``gold`` on the charts both have."""
    by_coder: dict[str, list[Annotation]] = defaultdict(list)
    for a in annotations:
        if a.hadm_id in gold:
            by_coder[a.coder].append(a)
    groups = sorted(by_coder.items())
    if len(groups) > 1:
        groups.append((POOLED, [a for _, items in groups for a in items]))
    rows = []
    for coder, items in groups:
        charts_all, charts_correct = [], []
        for a in items:
            g = gold[a.hadm_id]
            correct = set(a.codes) & {c for _, _, c in g}
            charts_all.append((text[a.hadm_id], g, _spans(a)))
            charts_correct.append((text[a.hadm_id], [s for s in g if s[2] in correct], _spans(a, correct)))
        rows.append({"coder": coder, "simulated": all(a.simulated for a in items), "n_charts": len(items),
                     "n_coder_spans": sum(len(p) for _, _, p in charts_all),
                     "n_gold_spans": sum(len(g) for _, g, _ in charts_all),
                     "all_codes": evidence_scores(charts_all), "correct_codes": evidence_scores(charts_correct)})
    return rows


def between_coders(annotations: list[Annotation], text: dict[int, str]) -> list[dict[str, Any]]:
    """Evidence agreement of every pair of coders on the tasks both annotated (``a`` is the reference)."""
    by_coder: dict[str, dict[int, Annotation]] = defaultdict(dict)
    for a in annotations:
        by_coder[a.coder][a.hadm_id] = a
    pairs = []
    for first, second in itertools.combinations(sorted(by_coder), 2):
        shared = sorted(set(by_coder[first]) & set(by_coder[second]))
        if not shared:
            continue
        both = [(by_coder[first][h], by_coder[second][h]) for h in shared]
        common = [set(a.codes) & set(b.codes) for a, b in both]
        pairs.append({"a": first, "b": second, "n_tasks": len(shared),
                      "all_codes": evidence_scores((text[a.hadm_id], _spans(a), _spans(b)) for a, b in both),
                      "shared_codes": evidence_scores((text[a.hadm_id], _spans(a, c), _spans(b, c))
                                                      for (a, b), c in zip(both, common))})
    return pairs


def score_coder_evidence(study: Study, exports: CoderExports, types: str = "all") -> dict[str, Any] | None:
    """The ``coder_evidence`` block of scores.json, or None when no coder was asked for or gave evidence."""
    asked = bool((study.step("setup-labelstudio") or {}).get("evidence"))
    annotations = exports.annotations
    if not annotations or not (asked or any(a.evidence for a in annotations)):
        return None
    synthetic = (study.step("prepare") or {}).get("data_source") == "synthetic"
    gold = summary_evidence(study, types) if study.mdace_spans.exists() else None
    text = study_files.read_document_texts(study, {a.hadm_id for a in annotations})
    notes = ["Measures: benchmark.evidence (MDACE's definitions); counts summed over charts; 0/0 -> 0.",
             "Between coders: F1 is symmetric; precision and recall take coder a as the reference."]
    vs_mdace = None
    if gold is None:
        notes.append("No MDACE import: run `bench import-mdace DIR` to score the coders' evidence against MDACE.")
    else:
        rows = against_mdace(annotations, gold, text)
        vs_mdace = {"mdace_types": types, "n_shared_charts": len({a.hadm_id for a in annotations} & set(gold)),
                    "n_mdace_charts": len(gold), "rows": rows,
                    "gold": "MDACE spans placed in the discharge summary and addenda (trimmed as MDACE's results are)"}
        if not rows:
            notes.append(f"None of the {len({a.hadm_id for a in annotations})} coded admissions is one of MDACE's "
                         f"{len(gold)} test-split charts: nothing to score against MDACE.")
    return {"arm": exports.arm, "measures": list(MEASURES), "synthetic": synthetic,
            "n_annotations": len(annotations), "n_annotations_with_evidence": sum(1 for a in annotations if a.evidence),
            "n_spans": sum(len(v) for a in annotations for v in a.evidence.values()),
            "vs_mdace": vs_mdace, "agreement": between_coders(annotations, text), "notes": notes}


def format_coder_evidence(block: dict[str, Any]) -> str:
    """The printed block: coders against MDACE, then agreement between coders (P/R/F1 in %)."""
    lines = [f"Coder evidence: {block['n_spans']} highlighted span(s) in {block['n_annotations_with_evidence']} of "
             f"{block['n_annotations']} annotations (values in %, P/R/F1)"]
    vs = block["vs_mdace"]
    if vs and vs["rows"]:
        companion = " (synthetic companion)" if block["synthetic"] else ""
        lines.append(f"Against MDACE{companion} on {vs['n_shared_charts']} shared charts; MDACE types {vs['mdace_types']}")
        lines += measure_header("Coder / codes", 40)
        for row in vs["rows"]:
            for label in ("all_codes", "correct_codes"):
                lines.append(f"{(row['coder'] + ', ' + label.replace('_', ' '))[:40]:<40}{measure_cells(row[label])}")
    if block["agreement"]:
        lines.append("Between coders on overlapping tasks (a = reference; F1 is symmetric)")
        lines += measure_header("Pair / codes", 40)
        for pair in block["agreement"]:
            for label in ("all_codes", "shared_codes"):
                name = f"{pair['a']} vs {pair['b']} ({pair['n_tasks']}), {label.replace('_', ' ')}"
                lines.append(f"{name[:40]:<40}{measure_cells(pair[label])}")
    lines += [f"Note: {note}" for note in block["notes"][2:]]
    return "\n".join(lines)
