"""The study directory: the single source of truth for one coding study.

Layout (every file is written atomically; ``study.toml`` records how each one was made; the parquet files
are read and written through ``benchmark.study_files``)::

    study.toml             provenance: one [steps.<name>] table per step (inputs + SHA-256, params,
                           outputs + SHA-256, counts, tool version)
    documents.parquet      hadm_id, subject_id, split, text, sent_starts, sent_ends, tokens, n_tokens
    references.parquet     hadm_id, code (dotted), system ("dx" | "px"); one row per admission and code
    note_map.parquet       hadm_id, note_id (NOTEEVENTS ROW_ID), begin, end: each note's place in the document
    codes.parquet          the label space: every code of the references, with titles and counts
    code_system.parquet    every valid code (D_ICD tables + CMS v32), which validates coder codes
                           (see benchmark.valid_codes)
    sample.csv             the coding sample: one HADM_ID per line, in sample order, no header
    shortlist.txt          the coding shortlist: one dotted code per line
    runs/<name>/           RAC training runs (config, word2vec, checkpoints, metrics log, models)
    predictions/<name>/    model predictions (see benchmark.predictions)
    labelstudio/           local Label Studio data, credentials (0600) and project map
    exports/               raw coder exports, archived before parsing (timestamp + SHA-256 in the name)
    mdace_spans.parquet    MDACE's coder annotations placed in the study, mdace_charts.parquet its charts
                           (both made by benchmark.mdace; `bench import-mdace`)
    scores.json            Table 1 and Table 2 (see benchmark.scores_file)
    report/index.html      the HTML report

A step that finds an earlier record made from *different* inputs refuses to overwrite it unless forced,
so a study never silently mixes two corpora.
"""

from __future__ import annotations

import datetime as _dt
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from benchmark import __version__
from benchmark.errors import UserError
from benchmark.io import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file

DEFAULT_STUDY = "study"
STUDY_ENV = "BENCH_STUDY"

# Which command produces each study file, for "run X first" messages.
_PRODUCERS = {
    "documents": "bench prepare",
    "references": "bench prepare",
    "codes": "bench prepare",
    "code_system": "bench prepare",
    "note_map": "bench prepare",
    "sample": "bench sample",
    "shortlist": "bench sample",
    "scores": "bench score",
}


@dataclass(frozen=True)
class Study:
    """Paths and provenance of one study directory."""

    root: Path

    @classmethod
    def locate(cls, path: str | os.PathLike[str] | None = None) -> Study:
        """``--study DIR``, else ``$BENCH_STUDY``, else ``./study``."""
        chosen = path or os.environ.get(STUDY_ENV) or DEFAULT_STUDY
        return cls(Path(chosen).expanduser().resolve())

    # --- paths -------------------------------------------------------------------------------
    @property
    def provenance_path(self) -> Path:
        return self.root / "study.toml"

    @property
    def documents(self) -> Path:
        return self.root / "documents.parquet"

    @property
    def references(self) -> Path:
        return self.root / "references.parquet"

    @property
    def codes(self) -> Path:
        return self.root / "codes.parquet"

    @property
    def code_system(self) -> Path:
        return self.root / "code_system.parquet"

    @property
    def note_map(self) -> Path:
        return self.root / "note_map.parquet"

    @property
    def sample(self) -> Path:
        return self.root / "sample.csv"

    @property
    def shortlist(self) -> Path:
        return self.root / "shortlist.txt"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def predictions_dir(self) -> Path:
        return self.root / "predictions"

    @property
    def labelstudio_dir(self) -> Path:
        return self.root / "labelstudio"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def mdace_spans(self) -> Path:
        return self.root / "mdace_spans.parquet"

    @property
    def mdace_charts(self) -> Path:
        return self.root / "mdace_charts.parquet"

    @property
    def scores(self) -> Path:
        return self.root / "scores.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def require(self, *names: str) -> None:
        """Raise a UserError naming the command to run when a study file is missing."""
        for name in names:
            path: Path = getattr(self, name)
            if not path.exists():
                producer = _PRODUCERS.get(name, "the step that writes it")
                raise UserError(
                    f"{path} does not exist: run `{producer}` on this study first "
                    f"(study directory: {self.root})"
                )

    # --- provenance --------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """The parsed ``study.toml`` (empty when the study is new)."""
        if not self.provenance_path.exists():
            return {}
        try:
            return tomllib.loads(self.provenance_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{self.provenance_path} is not valid TOML ({exc}); restore it or start a new study") from exc

    def step(self, name: str) -> dict[str, Any] | None:
        """The provenance record of step ``name``, or None if it never ran."""
        return self.provenance().get("steps", {}).get(name)

    def check_inputs(self, name: str, fingerprint: str, force: bool, what: str) -> None:
        """Refuse to redo step ``name`` from different inputs unless ``force``.

        ``fingerprint`` is a hash over the step's inputs and parameters; ``what`` describes them in
        the error ("MIMIC files and split files", "sample size and seed").
        """
        earlier = self.step(name)
        if earlier is None or force or earlier.get("fingerprint") == fingerprint:
            return
        raise UserError(
            f"{self.provenance_path}: step '{name}' was made from different {what} "
            f"(recorded {earlier.get('fingerprint', '?')[:12]}, now {fingerprint[:12]}); "
            f"use --force to replace it, or --study to start a new study"
        )

    def record_step(self, name: str, record: dict[str, Any]) -> None:
        """Store ``record`` as ``[steps.<name>]`` with the tool version; re-recording is idempotent.

        The first completion time is kept when the fingerprint is unchanged, so a re-run with the same
        inputs leaves ``study.toml`` byte-identical.
        """
        data = self.provenance()
        steps = data.setdefault("steps", {})
        earlier = steps.get(name, {})
        entry = {"tool_version": __version__, **record}
        same = earlier.get("fingerprint") is not None and earlier.get("fingerprint") == entry.get("fingerprint")
        entry["completed_at"] = earlier["completed_at"] if same and "completed_at" in earlier else _now()
        steps[name] = entry
        data.setdefault("study", {"created_at": _now(), "tool": "coding-bench"})
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.provenance_path, tomli_w.dumps(_toml_safe(data)))

    def file_hashes(self, *paths: Path) -> dict[str, str]:
        """``{relative path: sha256}`` for study outputs, for a step record."""
        return {str(p.relative_to(self.root)): sha256_file(p) for p in paths}

    # --- raw exports -------------------------------------------------------------------------
    def archive_export(self, data: bytes, label: str, suffix: str = ".json") -> Path:
        """Keep a raw coder export under ``exports/`` before anything parses it.

        The name holds a UTC timestamp, the label and the SHA-256 prefix; identical bytes archived
        earlier are not stored twice (the earlier file is returned).
        """
        digest = sha256_bytes(data)
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        for existing in self.exports_dir.glob(f"*-{digest[:16]}{suffix}"):
            return existing
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        safe_label = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)[:60]
        return atomic_write_bytes(self.exports_dir / f"{stamp}-{safe_label}-{digest[:16]}{suffix}", data)


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable hash of a step's inputs and parameters (keys sorted, values stringified)."""
    text = "\n".join(f"{key}={parts[key]}" for key in sorted(parts))
    return sha256_bytes(text.encode("utf-8"))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _toml_safe(value: Any) -> Any:
    """TOML has no null: drop None values, and turn tuples and paths into lists and strings."""
    if isinstance(value, dict):
        return {str(k): _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_safe(v) for v in value if v is not None]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value
