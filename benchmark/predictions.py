"""Model predictions on disk: the contract between `bench predict` (writer) and `bench score`/`evaluate`.

One prediction set is a directory ``study/predictions/<name>/``::

    probs.npy        float16 [n_admissions, n_codes]: the probability of every code for every admission
    meta.json        {"schema": 1, "name", "run", "split", "threshold", "threshold_source",
                      "hadm_ids": [...], "codes": [...], "tool_version"}
    predicted.psv    CAML's interchange format: "hadm_id|code|code..." (thresholded sets), one line each
    evidence.jsonl   optional: {"hadm_id": int, "codes": {code: [{"start", "end", "score"}, ...]}} per line,
                     the top attention windows as character offsets into the note text

float16 keeps a full test split (3,372 x 8,930) at 60 MB; its ties are handled by the metrics' tie rule.
``model`` in meta.json names the model kind ("RAC", "TF-IDF + LR"); sets written before it existed are RAC's.

Any model's output is also read as a prediction set (``read_predictions`` picks the reader by suffix):

- ``.psv``: CAML's format, code sets without scores;
- ``.feather``: Edin et al.'s ``predictions_<split>.feather`` (medical-coding-reproducibility,
  ``Trainer.save_predictions``): one column per code holding its *logit*, the admission id in ``_id`` and
  the reference codes in ``target``. Scores are ``sigmoid(logit)``; ``target`` is ignored, because the
  references come from the study;
- ``.csv`` / ``.parquet``: a long table with columns ``hadm_id``, ``code``, ``score`` (a probability in
  [0, 1]), one row per scored pair. A pair the table leaves out scores 0: never predicted, ranked last.

Such files carry no threshold: the caller sets one (``--threshold``, a threshold tuned on the model's dev
file, else 0.5), and ``check_against_study`` refuses ids outside the split and strings that are not codes of the code system.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark import __version__
from benchmark.errors import UserError
from benchmark.io import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from benchmark.valid_codes import ValidCodes

SCHEMA = 1
EVIDENCE_FILE = "evidence.jsonl"  # per prediction set: each predicted code's evidence windows
DEFAULT_THRESHOLD = 0.5
EDIN_ID, EDIN_TARGET = "_id", "target"      # medical-coding-reproducibility src/settings.py
LONG_COLUMNS = ("hadm_id", "code", "score")
MODEL_FILE_SUFFIXES = (".psv", ".feather", ".csv", ".parquet")


@dataclass(frozen=True)
class ModelSource:
    """One ``--predictions`` item and the options given right after it on the command line."""

    path: str                                 # a prediction directory, a set or run name, or a model's file
    name: str | None = None                   # the row's name in Table 1 and Table 2
    dev_path: str | None = None               # the same model's dev-split scores: tune the threshold on them
    threshold: float | None = None            # an explicit threshold


@dataclass
class Predictions:
    """Scores (optional) and thresholded code sets of one model on a list of admissions."""

    name: str
    hadm_ids: np.ndarray                      # int64 [n]
    codes: list[str]                          # dotted codes, the columns of ``probs``
    probs: np.ndarray | None                  # float [n, len(codes)], None for a .psv-only set
    threshold: float = DEFAULT_THRESHOLD
    threshold_source: str = "default"         # "default" | "dev-tuned" | "given" | "psv"
    run: str | None = None
    split: str | None = None
    sets: dict[int, list[str]] = field(default_factory=dict)
    model: str | None = None                  # the model kind of a run's set ("RAC", "TF-IDF + LR")
    label: str | None = None                  # a name given with --name

    @property
    def system(self) -> str:
        """The row name in Table 1 and Table 2: the given name, else "MODEL (RUN)", else the set's name."""
        if self.label:
            return self.label
        return f"{self.model or 'RAC'} ({self.run})" if self.run else self.name

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
        "threshold": float(preds.threshold), "threshold_source": preds.threshold_source, "model": preds.model,
        "hadm_ids": [int(h) for h in preds.hadm_ids], "codes": list(preds.codes), "tool_version": __version__,
    }
    atomic_write_text(directory / "meta.json", json.dumps(meta, indent=1) + "\n")
    lines = ["|".join([str(h), *codes]) for h, codes in preds.code_sets().items()]
    atomic_write_text(directory / "predicted.psv", "\n".join(lines) + "\n")
    if evidence is not None:
        atomic_write_text(
            directory / EVIDENCE_FILE, "".join(json.dumps(row, sort_keys=True) + "\n" for row in evidence)
        )
    return directory


def read_predictions(path: Path) -> Predictions:
    """Read a prediction directory, or a model's file: CAML ``.psv``, Edin ``.feather``, long ``.csv``/``.parquet``."""
    path = Path(path)
    if path.is_file():
        readers = {".psv": _read_psv, ".feather": _read_edin, ".csv": _read_long, ".parquet": _read_long}
        if path.suffix not in readers:
            raise UserError(f"{path}: unknown prediction format {path.suffix!r}; give a prediction directory or a "
                            f"{', '.join(MODEL_FILE_SUFFIXES)} file")
        return readers[path.suffix](path)
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise UserError(f"{path} is neither a prediction directory (no meta.json) nor a model's "
                        f"{'/'.join(MODEL_FILE_SUFFIXES)} file; run `bench predict`")
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
        model=meta.get("model"),
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


def _read_edin(path: Path) -> Predictions:
    """Edin et al.'s wide table: logits per code column, ``_id``, and ``target`` (ignored)."""
    import pandas as pd
    from scipy.special import expit

    try:
        table = pd.read_feather(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"{path}: not a readable feather file ({type(exc).__name__}: {exc})") from None
    if EDIN_ID not in table.columns:
        raise UserError(f"{path}: missing column {EDIN_ID!r} (the admission id of Edin et al.'s "
                        "predictions_<split>.feather)")
    logits = table.drop(columns=[c for c in (EDIN_ID, EDIN_TARGET) if c in table.columns])
    codes = [str(c) for c in logits.columns]
    if not codes:
        raise UserError(f"{path}: no code columns besides {EDIN_ID!r} and {EDIN_TARGET!r}")
    not_numeric = [str(c) for c, kind in logits.dtypes.items() if kind.kind not in "fiu"]
    if not_numeric:
        raise UserError(f"{path}: code columns must hold logits (numbers); {not_numeric[:3]} do not")
    hadm_ids = _ids(path, table[EDIN_ID], EDIN_ID)
    if len(np.unique(hadm_ids)) < len(hadm_ids):
        raise UserError(f"{path}: repeated {EDIN_ID} values; one row per admission")
    values = logits.to_numpy(np.float32)
    nan = np.argwhere(np.isnan(values))
    if len(nan):
        row, col = nan[0]
        raise UserError(f"{path}: {len(nan)} NaN scores (first: {EDIN_ID} {hadm_ids[row]}, code {codes[col]}); "
                        "a model's file must score every code")
    return Predictions(name=path.stem, hadm_ids=hadm_ids, codes=codes, probs=expit(values).astype(np.float32))


def _read_long(path: Path) -> Predictions:
    """A long table ``hadm_id, code, score`` (CSV or parquet) pivoted to one row per admission."""
    import pandas as pd

    try:
        table = (pd.read_csv(path, dtype={"code": str}) if path.suffix == ".csv" else pd.read_parquet(path))
    except Exception as exc:  # pandas/pyarrow raise several types for a damaged file
        raise UserError(f"{path}: not a readable {path.suffix[1:]} table ({type(exc).__name__}: {exc})") from None
    missing = [c for c in LONG_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; a long prediction table has columns "
                        f"{', '.join(LONG_COLUMNS)} (one row per admission and code)")
    if table.empty:
        raise UserError(f"{path} holds no predictions (no rows)")
    hadm_ids = _ids(path, table["hadm_id"], "hadm_id")
    scores = pd.to_numeric(table["score"], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(scores) | (scores < 0) | (scores > 1))
    if len(bad):
        row = int(bad[0])
        raise UserError(f"{path}: {len(bad)} rows have a score that is not a probability in [0, 1] (first: row "
                        f"{row + 1}, hadm_id {hadm_ids[row]}, score {table['score'].iloc[row]!r}); fill NaN scores, "
                        "and apply a sigmoid to logits")
    codes_col = table["code"].astype(str).str.strip()
    pairs = pd.DataFrame({"hadm_id": hadm_ids, "code": codes_col})
    dup = pairs.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise UserError(f"{path}: {int(dup.sum())} repeated (hadm_id, code) pairs (first: row {row + 1}, "
                        f"{hadm_ids[row]} {codes_col.iloc[row]}); keep one score per pair")
    ids, rows = np.unique(hadm_ids, return_inverse=True)
    codes, cols = np.unique(codes_col.to_numpy(str), return_inverse=True)
    probs = np.zeros((len(ids), len(codes)), dtype=np.float32)
    probs[rows, cols] = scores
    return Predictions(name=path.stem, hadm_ids=ids.astype(np.int64), codes=codes.tolist(), probs=probs)


def _ids(path: Path, column, name: str) -> np.ndarray:
    """Admission ids as int64; a missing or non-integer id is refused."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
    if len(bad):
        raise UserError(f"{path}: {len(bad)} rows have no integer {name} (first: row {int(bad[0]) + 1}, "
                        f"{column.iloc[int(bad[0])]!r})")
    return values.astype(np.int64)


def check_against_study(preds: Predictions, path: Path, code_system: ValidCodes, split_ids: set[int],
                        split: str, allow_unknown: bool | None = None) -> Predictions:
    """``preds`` with codes in the code system's dotted form; refuses ids outside ``split`` and strings that are
    not codes of the study's code system (``allow_unknown``: True keeps them, to be scored as wrong; None means
    the command has no ``--allow-unknown``, so the error does not offer it).

    Undotted codes (MIMIC's own form, CAML's files) are read as coder codes are (``normalise_code``).
    """
    from benchmark.exports import normalise_code

    outside = sorted(set(int(h) for h in preds.hadm_ids) - split_ids)
    if outside:
        raise UserError(f"{path}: {len(outside)} of its {len(preds.hadm_ids)} admissions are not in this study's "
                        f"{split} split (e.g. {outside[:3]}); give predictions on the {split} split of this study")
    raw = preds.codes if preds.probs is not None else sorted({c for s in preds.sets.values() for c in s})
    dotted = {code: normalise_code(code, code_system) for code in raw}
    unknown = sorted(code for code, norm in dotted.items() if norm not in code_system)
    if unknown and not allow_unknown:
        listed = unknown if preds.probs is not None else [  # code sets: name the admissions, as for coders
            f"hadm_id {h}: {', '.join(sorted({c for c in s if dotted[c] not in code_system}))}"
            for h, s in preds.sets.items() if any(dotted[c] not in code_system for c in s)]
        raise code_system.unknown_error(listed, "map them to codes of the code system or drop them",
                                        where=f"{path}: ", offer_flag=allow_unknown is not None)
    if preds.probs is None:
        return replace(preds, sets={h: sorted({dotted[c] for c in s}) for h, s in preds.sets.items()})
    codes = [dotted[c] for c in preds.codes]
    if len(set(codes)) < len(codes):
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        raise UserError(f"{path}: codes {repeated[:3]} are written two ways (dotted and undotted); "
                        "write each code one way")
    return replace(preds, codes=codes)


def with_threshold(preds: Predictions, threshold: float, source: str) -> Predictions:
    """``preds`` thresholded at ``threshold`` (recorded with its source: "dev-tuned", "given", "default")."""
    if preds.probs is None:
        raise UserError(f"{preds.name}: a .psv holds code sets without scores; there is no threshold to set")
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"{preds.name}: threshold {threshold} is not in [0, 1]")
    return replace(preds, threshold=float(threshold), threshold_source=source)


def read_evidence(path: Path) -> dict[int, dict[str, list[tuple[int, int, float]]]]:
    """``{hadm_id: {code: [(start, end, score), ...]}}`` from a prediction set's ``evidence.jsonl`` (``path``):
    each predicted code's top token windows, as character offsets into the study's document."""
    out: dict[int, dict[str, list[tuple[int, int, float]]]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[int(row["hadm_id"])] = {
                str(code): [(int(w["start"]), int(w["end"]), float(w.get("score", 0.0))) for w in windows]
                for code, windows in row["codes"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{path} line {number}: not an evidence row {{hadm_id, codes: {{code: [{{start, end}}]}}}} "
                            f"({exc!r}); re-run `bench predict`") from None
    return out


def list_prediction_sets(predictions_dir: Path) -> list[Path]:
    """Prediction directories under ``study/predictions/``, sorted by name."""
    if not predictions_dir.exists():
        return []
    return sorted(p for p in predictions_dir.iterdir() if (p / "meta.json").exists())
