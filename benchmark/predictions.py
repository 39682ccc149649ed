"""Model predictions on disk: the contract between `bench predict` (writer) and `bench score`/`evaluate`.

One prediction set is a directory ``study/predictions/<name>/``::

    probs.npy        float16 [n_admissions, n_codes]: the probability of every code for every admission
    meta.json        {"schema": 1, "name", "run", "split", "threshold", "threshold_source",
                      "hadm_ids": [...], "codes": [...], "tool_version"}
    predicted.psv    CAML's interchange format: "hadm_id|code|code..." (thresholded sets), one line each
    evidence.jsonl   optional: {"hadm_id": int, "codes": {code: [{"start", "end", "score"}, ...]}} per line,
                     the top attention windows as character offsets into the note text

float16 keeps a full test split (3,372 x 8,930) at 60 MB; its ties are handled by the metrics' tie rule.
A ``.psv`` file alone (any model's output in CAML's format) is also a prediction set, with sets but no scores.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark import __version__
from benchmark.errors import UserError
from benchmark.io import atomic_path, atomic_write_text

SCHEMA = 1
DEFAULT_THRESHOLD = 0.5


@dataclass
class Predictions:
    """Scores (optional) and thresholded code sets of one model on a list of admissions."""

    name: str
    hadm_ids: np.ndarray                      # int64 [n]
    codes: list[str]                          # dotted codes, the columns of ``probs``
    probs: np.ndarray | None                  # float [n, len(codes)], None for a .psv-only set
    threshold: float = DEFAULT_THRESHOLD
    threshold_source: str = "default"         # "default" | "dev-tuned" | "psv"
    run: str | None = None
    split: str | None = None
    sets: dict[int, list[str]] = field(default_factory=dict)

    def code_sets(self) -> dict[int, list[str]]:
        """Thresholded code sets per admission (``probs >= threshold``), or the stored sets."""
        if self.probs is None:
            return self.sets
        codes = np.asarray(self.codes)
        above = self.probs >= np.float32(self.threshold)
        return {int(h): codes[row].tolist() for h, row in zip(self.hadm_ids, above)}


def write_predictions(
    directory: Path, preds: Predictions, evidence: Iterable[Mapping[str, object]] | None = None
) -> Path:
    """Write ``preds`` (with ``probs``) and optional evidence rows atomically into ``directory``."""
    if preds.probs is None:
        raise ValueError("write_predictions needs probabilities")
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "probs.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, preds.probs.astype(np.float16))
    meta = {
        "schema": SCHEMA, "name": preds.name, "run": preds.run, "split": preds.split,
        "threshold": float(preds.threshold), "threshold_source": preds.threshold_source,
        "hadm_ids": [int(h) for h in preds.hadm_ids], "codes": list(preds.codes), "tool_version": __version__,
    }
    atomic_write_text(directory / "meta.json", json.dumps(meta, indent=1) + "\n")
    lines = ["|".join([str(h), *codes]) for h, codes in preds.code_sets().items()]
    atomic_write_text(directory / "predicted.psv", "\n".join(lines) + "\n")
    if evidence is not None:
        atomic_write_text(
            directory / "evidence.jsonl", "".join(json.dumps(row, sort_keys=True) + "\n" for row in evidence)
        )
    return directory


def read_predictions(path: Path) -> Predictions:
    """Read a prediction directory, or a CAML ``.psv`` file (sets only)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".psv":
        return _read_psv(path)
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise UserError(f"{path} is neither a prediction directory (no meta.json) nor a .psv file; run `bench predict`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{meta_path} is not valid JSON ({exc}); re-run `bench predict`") from exc
    if meta.get("schema") != SCHEMA:
        raise UserError(f"{meta_path} has schema {meta.get('schema')!r}, this tool reads schema {SCHEMA}")
    try:
        probs = np.load(path / "probs.npy", mmap_mode="r")
        expected = (len(meta["hadm_ids"]), len(meta["codes"]))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: incomplete prediction set ({exc!r}); re-run `bench predict`") from None
    if probs.shape != expected:
        raise UserError(f"{path}/probs.npy has shape {probs.shape}, meta.json says {expected}; re-run `bench predict`")
    return Predictions(
        name=meta.get("name") or path.name, hadm_ids=np.asarray(meta["hadm_ids"], dtype=np.int64),
        codes=list(meta["codes"]), probs=probs, threshold=float(meta.get("threshold", DEFAULT_THRESHOLD)),
        threshold_source=meta.get("threshold_source", "default"), run=meta.get("run"), split=meta.get("split"),
    )


def _read_psv(path: Path) -> Predictions:
    sets: dict[int, list[str]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        head, *codes = line.strip().split("|")
        try:
            hadm_id = int(head)
        except ValueError:
            raise UserError(f"{path}:{lineno}: expected 'hadm_id|code|code...', got {line[:60]!r}") from None
        sets[hadm_id] = sorted({c.strip() for c in codes if c.strip()})
    if not sets:
        raise UserError(f"{path} holds no predictions (expected lines 'hadm_id|code|code...')")
    return Predictions(name=path.stem, hadm_ids=np.asarray(list(sets), dtype=np.int64), codes=[], probs=None,
                       threshold_source="psv", sets=sets)


def list_prediction_sets(predictions_dir: Path) -> list[Path]:
    """Prediction directories under ``study/predictions/``, sorted by name."""
    if not predictions_dir.exists():
        return []
    return sorted(p for p in predictions_dir.iterdir() if (p / "meta.json").exists())
