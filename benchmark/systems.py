"""Which code sets are scored: the rows of Table 1 before scoring ("systems").

``human_systems`` makes the pooled human row and one row per coder from parsed coder exports
(``benchmark.exports``); ``model_systems`` chooses the prediction sets (``benchmark.predictions``) that cover
the scored admissions and thresholds them on those admissions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import metrics, valid_codes
from benchmark.errors import UserError
from benchmark.exports import Annotation, CoderExports, normalise_code
from benchmark.predictions import Predictions, list_prediction_sets, read_predictions
from benchmark.study import Study


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


def human_systems(exports: CoderExports) -> list[SystemSets]:
    """The pooled "Human coders" row and one row per coder (simulated coders say so in their name)."""
    anns = exports.annotations
    if not anns:
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in exports.counts.items() if v)
        unassigned = "; --include-unassigned scores the unassigned annotators" if exports.counts.get("unassigned") else ""
        raise UserError("the coder exports hold no completed annotation to score ("
                        + (counts or "no task at all: Label Studio's JSON export leaves out tasks nobody annotated")
                        + f"){unassigned}; let coders finish tasks")
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
        label = (f"Unassigned annotator {letter}" if not any(a.assigned for a in items)
                 else f"Simulated coder {letter}" if first.simulated else f"Coder {letter}")
        rows.append(SystemSets(f"{label} ({coder})", "coder", [a.hadm_id for a in items], [a.codes for a in items],
                               np.ones(len(items)), simulated=first.simulated,
                               coder={"id": first.coder_id, "email": first.email,
                                      "name": first.coder_name, "arm": first.arm}))
    return rows


def _letters() -> Iterator[str]:
    for i in range(10000):
        yield chr(ord("A") + i % 26) + (str(i // 26) if i >= 26 else "")


def model_systems(study: Study, admissions: Sequence[int], explicit: Sequence[str] = (),
                  allow_unknown: bool = False) -> list[SystemSets]:
    """Thresholded model sets on ``admissions``: ``--predictions`` paths/names, else every covering set.

    Without ``--predictions``, each run's ``-sample`` set is preferred, else its ``-test`` set; a set that
    does not cover every scored admission is left out (it cannot be compared on the same notes). A .psv
    code that is not a code of the code system stops the score unless ``allow_unknown``, as a coder's does.
    """
    wanted = set(admissions)
    chosen: list[Predictions] = []
    if explicit:
        for item in explicit:
            path = Path(item)
            if not path.exists() and (study.predictions_dir / item).exists():
                path = study.predictions_dir / item
            preds = read_predictions(path)
            missing = wanted - set(int(h) for h in preds.hadm_ids)
            if missing:
                raise UserError(f"{path}: has no predictions for {len(missing)} of the {len(wanted)} scored admissions "
                                f"(e.g. {sorted(missing)[:3]}); predict on the sample (`bench predict --split sample`)")
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
    code_system = valid_codes.read(study)
    for preds in chosen:
        sets = _sets_on(preds, order, code_system, allow_unknown)
        name = f"RAC ({preds.run})" if preds.run else preds.name
        out.append(SystemSets(name, "model", order, [tuple(sets[h]) for h in order], np.ones(len(order)),
                              model={"name": preds.name, "run": preds.run, "threshold": preds.threshold,
                                     "threshold_source": preds.threshold_source, "split": preds.split}))
    return out


def _sets_on(preds: Predictions, hadm_ids: Sequence[int], code_system: valid_codes.ValidCodes,
             allow_unknown: bool) -> dict[int, list[str]]:
    """Thresholded sets for the requested admissions only (probabilities thresholded on those rows).

    A .psv may hold undotted codes (CAML's own files do): they are normalised and checked as coder codes are."""
    if preds.probs is None:
        sets = {h: sorted({normalise_code(c, code_system) for c in preds.sets[h]}) for h in hadm_ids}
        bad = {h: [c for c in sets[h] if c not in code_system] for h in hadm_ids}
        unknown = [f"hadm_id {h}: {', '.join(codes)}" for h, codes in bad.items() if codes]
        if unknown and not allow_unknown:
            raise code_system.unknown_error(unknown, "fix the file", where=f"{preds.name}.psv: ")
        return sets
    row_of = {int(h): i for i, h in enumerate(preds.hadm_ids)}
    rows = np.array([row_of[h] for h in hadm_ids], dtype=np.int64)
    above = metrics.threshold_scores(np.asarray(preds.probs[rows]), preds.threshold)
    codes = np.asarray(preds.codes)
    return {h: codes[r].tolist() for h, r in zip(hadm_ids, above)}
