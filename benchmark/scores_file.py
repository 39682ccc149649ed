"""``scores.json``: the one file Table 1, Table 2 and the MDACE and evidence blocks are merged into.

Each command writes its own blocks and keeps the others (schema: ``docs/scores-schema.md``).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import __version__, codesystems
from benchmark.io import atomic_write_text
from benchmark.study import Study

SCHEMA = 1


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
              "data_source": prepare.get("data_source", current.get("data_source")),
              # Which study the numbers describe, so a scores.json read alone says MIMIC-IV / ICD-10.
              "dataset": prepare.get("dataset", "MIMIC-III") if prepare else current.get("dataset"),
              "code_system": codesystems.study_label(codesystems.study_version(study))}
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
