"""The assisted arm against the unassisted one (`bench compare-arms`): does showing RAC's codes change the coders?

``bench setup-labelstudio --assist RUN`` gives every coder a second project whose tasks carry RAC's proposed
codes (and, with ``--show-evidence``, their evidence windows); ``bench pull`` writes one export per arm. For
each coder and arm, against the study's references (micro, counts summed over the coder's notes, 0/0 -> 0):

- micro P/R/F1, codes per note, median seconds per chart (Label Studio's ``lead_time``);
- **agreement with the model**: micro F1 between the coder's codes and the codes RAC proposed (the run's
  thresholded codes on the shortlist: what the assisted page showed), in *both* arms. Assistance can anchor
  coders toward the model: agreement that rises in the assisted arm more than accuracy does is that.

The **paired test** runs over the notes coded in both arms (the crossover: under ``split`` each note is coded
once without help and once with it, by different coders, so the pairs are notes, not coders; under ``all`` a
coder meets a note in both arms). Each note's TP/FP/FN in an arm is the mean over that arm's coders of it, and
``benchmark.uncertainty.randomization_test`` swaps the arms note by note (micro F1, two-sided p). A coder with
notes in both arms gets the same test over their own notes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import metrics
from benchmark.errors import UserError
from benchmark.exports import Annotation, CoderExports
from benchmark.predictions import read_predictions
from benchmark.study import Study
from benchmark.uncertainty import DocumentStats, randomization_test

ARMS = ("unassisted", "assisted")
POOLED = "All coders"


def shown_predictions(study: Study, run: str) -> Path:
    """The prediction set an assisted arm shows (``setup-labelstudio --assist RUN``): ``<RUN>-sample``, else
    ``<RUN>-test``."""
    for split in ("sample", "test"):
        path = study.predictions_dir / f"{run}-{split}"
        if (path / "meta.json").exists():
            return path
    raise UserError(f"--assist {run}: no predictions at {study.predictions_dir}/{run}-sample or -test; "
                    f"run `bench predict` for run {run} first")


def proposed_codes(study: Study, run: str, shortlist: Sequence[str]) -> dict[int, frozenset[str]]:
    """The codes the assisted page proposed: the shown set's thresholded codes on the shortlist."""
    allowed = set(shortlist)
    return {int(h): frozenset(c for c in codes if c in allowed)
            for h, codes in read_predictions(shown_predictions(study, run)).code_sets().items()}


def _counts(codes: Sequence[str], truth: frozenset[str]) -> np.ndarray:
    """[TP, FP, FN] of one code set against another.

    >>> _counts(("428.0", "401.9"), frozenset({"428.0", "584.9"})).tolist()
    [1.0, 1.0, 1.0]
    """
    picked = set(codes)
    return np.array([len(picked & truth), len(picked - truth), len(truth - picked)], dtype=np.float64)


def _micro(counts: np.ndarray) -> dict[str, float | None]:
    tp, fp, fn = (counts[:, i] if len(counts) else np.zeros(1) for i in range(3))
    return {k: v for k, v in metrics.micro_scores(tp, fp, fn, "zero").items() if k in ("precision", "recall", "f1")}


def _arm_row(items: list[Annotation], refs: dict[int, frozenset[str]], proposed: dict[int, frozenset[str]]) -> dict[str, Any]:
    times = [a.lead_time for a in items if a.lead_time is not None and a.lead_time > 0]
    with_model = [a for a in items if a.hadm_id in proposed]
    return {"n_notes": len(items), **_micro(np.array([_counts(a.codes, refs[a.hadm_id]) for a in items])),
            "codes_per_note": float(np.mean([len(a.codes) for a in items])) if items else None,
            "median_lead_time_s": statistics.median(times) if times else None,
            "agreement_with_model_f1": _micro(np.array([_counts(a.codes, proposed[a.hadm_id]) for a in with_model]))["f1"]
            if with_model else None}


def _paired(first: list[Annotation], second: list[Annotation], refs: dict[int, frozenset[str]],
            n_permutations: int, seed: int) -> dict[str, Any] | None:
    """Micro-F1 difference (assisted - unassisted) over the notes both lists hold, and its randomization p."""
    per_arm: list[dict[int, list[np.ndarray]]] = [defaultdict(list), defaultdict(list)]
    for side, items in enumerate((first, second)):
        for a in items:
            per_arm[side][a.hadm_id].append(_counts(a.codes, refs[a.hadm_id]))
    notes = sorted(set(per_arm[0]) & set(per_arm[1]))
    if not notes:
        return None
    stats = [DocumentStats(np.array([np.mean(arm[h], axis=0) for h in notes]), np.full(len(notes), np.nan))
             for arm in per_arm]
    diff, p = randomization_test(stats[1], stats[0], "micro_f1", n_permutations, seed)
    return {"n_notes": len(notes), "metric": "micro_f1", "difference": diff, "p_value": p,
            "n_permutations": n_permutations}


def compare_arms(study: Study, unassisted: CoderExports, assisted: CoderExports, refs: dict[int, list[str]],
                 proposed: dict[int, frozenset[str]], n_permutations: int = 10000, seed: int = 0) -> dict[str, Any]:
    """The ``arms`` block of scores.json: per coder and pooled, each arm's row, the paired test."""
    for exports, arm in ((unassisted, "unassisted"), (assisted, "assisted")):
        if exports.arm not in (None, arm):
            raise UserError(f"{exports.exports[0]['source'] if exports.exports else 'export'}: holds the {exports.arm} "
                            f"arm where the {arm} arm was expected; pass the exports in the right order")
    truth = {int(h): frozenset(c) for h, c in refs.items()}
    by_coder: dict[str, dict[str, list[Annotation]]] = defaultdict(lambda: {arm: [] for arm in ARMS})
    for arm, exports in zip(ARMS, (unassisted, assisted)):
        for a in exports.annotations:
            by_coder[a.coder][arm].append(a)
            by_coder[POOLED][arm].append(a)
    rows = []
    for coder in [*sorted(c for c in by_coder if c != POOLED), POOLED]:
        arms = by_coder[coder]
        rows.append({"coder": coder, **{arm: _arm_row(arms[arm], truth, proposed) for arm in ARMS},
                     "paired": _paired(arms["unassisted"], arms["assisted"], truth, n_permutations, seed)})
    synthetic = (study.step("prepare") or {}).get("data_source") == "synthetic"
    return {"rows": rows, "synthetic": synthetic, "seed": seed,
            "notes": ["Micro P/R/F1 against the references; agreement with the model is micro F1 between the "
                      "coder's codes and RAC's proposed codes (shortlist), in both arms: a rise in the assisted "
                      "arm beyond the rise in accuracy is anchoring.",
                      "Paired test: over the notes coded in both arms (a note's counts: mean over its coders in "
                      "that arm); difference = assisted - unassisted micro F1."]}


def format_arms(block: dict[str, Any]) -> str:
    """The printed comparison: one line per coder and arm, then the paired test."""
    def pct(value: float | None) -> str:
        return "  -  " if value is None else f"{100 * value:5.1f}"

    lines = ["Assisted vs unassisted arm (values in %; time = median seconds per chart)",
             f"{'Coder':<28} {'arm':<10} {'notes':>5} {'P':>5} {'R':>5} {'F1':>5} {'codes':>5} {'time':>6} {'~model':>6}"]
    for row in block["rows"]:
        for arm in ARMS:
            r = row[arm]
            time = f"{r['median_lead_time_s']:6.0f}" if r["median_lead_time_s"] else "     -"
            codes = f"{r['codes_per_note']:5.1f}" if r["codes_per_note"] is not None else "  -  "
            lines.append(f"{row['coder'][:28]:<28} {arm:<10} {r['n_notes']:>5} {pct(r['precision'])} {pct(r['recall'])} "
                         f"{pct(r['f1'])} {codes} {time} {pct(r['agreement_with_model_f1']):>6}")
        test = row["paired"]
        if test:
            p = "-" if test["p_value"] is None else f"{test['p_value']:.4f}"
            lines.append(f"{'':<28} paired over {test['n_notes']} notes: micro-F1 assisted - unassisted "
                         f"{pct(test['difference'])}, p = {p}")
    return "\n".join(lines)


def default_exports(study: Study) -> tuple[Path, Path]:
    """`bench pull`'s merged files of the two arms."""
    return study.exports_dir / "merged-latest.json", study.exports_dir / "merged-assisted-latest.json"
