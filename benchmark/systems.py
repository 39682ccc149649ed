"""Which code sets are scored: the rows of Table 1 before scoring ("systems").

``human_systems`` makes the pooled human row and one row per coder from parsed coder exports
(``benchmark.exports``); ``model_systems`` chooses the prediction sets (``benchmark.predictions``) that cover
the scored admissions and thresholds them on those admissions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import metrics, valid_codes
from benchmark.errors import UserError
from benchmark.exports import Annotation, CoderExports
from benchmark.predictions import (DEFAULT_THRESHOLD, ModelSource, Predictions, check_against_study,
                                   list_prediction_sets, read_predictions, with_threshold)
from benchmark.references import reference_matrix, split_ids
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


def model_systems(study: Study, admissions: Sequence[int], explicit: Sequence[ModelSource | str] = (),
                  allow_unknown: bool = False) -> list[SystemSets]:
    """Thresholded model sets on ``admissions``: ``--predictions`` items, else every covering set.

    Without ``--predictions``, each run's ``-sample`` set is preferred, else its ``-test`` set; a set that
    does not cover every scored admission is left out (it cannot be compared on the same notes). A .psv
    code that is not a code of the code system stops the score unless ``allow_unknown``, as a coder's does.
    """
    wanted = set(admissions)
    chosen: list[Predictions] = []
    code_system = valid_codes.read(study)
    if explicit:
        for item in explicit:
            source = ModelSource(item) if isinstance(item, str) else item
            preds = load_model(study, source, ("sample", "test"), code_system, allow_unknown)
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
        sets = _sets_on(preds, order)
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


def load_model(study: Study, source: ModelSource | str, splits: Sequence[str], code_system: valid_codes.ValidCodes,
               allow_unknown: bool | None = None) -> Predictions:
    """One ``--predictions`` item, checked against the study when it is a model's file, with its threshold.

    Threshold: tuned on ``--dev-predictions`` (``metrics.tune_threshold``, the rule RAC's runs use), else
    ``--threshold``, else the set's own (a run's dev-tuned one; 0.5 for a file). A .psv has none.
    ``allow_unknown`` as in ``check_against_study`` (None: the command has no ``--allow-unknown``).
    """
    source = ModelSource(source) if isinstance(source, str) else source
    path = resolve_prediction_path(study, source.path, splits)
    split = "test" if "test" in splits else splits[-1]
    preds = read_predictions(path)
    if path.is_file():
        preds = check_against_study(preds, path, code_system, split_ids(study, split), split, allow_unknown)
    if source.dev_path is not None and source.threshold is not None:
        raise UserError(f"--predictions {source.path}: give --dev-predictions or --threshold, not both")
    if source.dev_path is not None:
        dev_path = resolve_prediction_path(study, source.dev_path, ("dev",))
        dev = read_predictions(dev_path)
        if dev_path.is_file():
            dev = check_against_study(dev, dev_path, code_system, split_ids(study, "dev"), "dev")
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


def _sets_on(preds: Predictions, hadm_ids: Sequence[int]) -> dict[int, list[str]]:
    """Thresholded sets for the requested admissions only (probabilities thresholded on those rows).

    A .psv's codes were normalised and checked against the code system when it was read (``load_model``)."""
    if preds.probs is None:
        return {h: preds.sets[h] for h in hadm_ids}
    row_of = {int(h): i for i, h in enumerate(preds.hadm_ids)}
    rows = np.array([row_of[h] for h in hadm_ids], dtype=np.int64)
    above = metrics.threshold_scores(np.asarray(preds.probs[rows]), preds.threshold)
    codes = np.asarray(preds.codes)
    return {h: codes[r].tolist() for h, r in zip(hadm_ids, above)}
