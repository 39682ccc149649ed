"""The study's Label Studio records: ``labelstudio/coders.json`` and ``labelstudio/projects.json``.

``bench setup-labelstudio`` writes both (through ``annotation.accounts`` and ``annotation.projects``); the
scorer reads them to name coders and to check that an export comes from the study's own projects. This module
is the one place that knows their file names and layout, in the core package, so both sides share it without
the scorer importing ``annotation``.

- ``coders.json``: ``{"coders": [{"email", "id", "simulated", "name"}]}``, one entry per coder account (no
  secrets: passwords are shown once and stored nowhere).
- ``projects.json``: ``{"setup_id", "projects": [{"id", "coder", "coder_id", "arm", "task_ids", ...}], "tasks":
  {task id: hadm_id}}``, the projects made for the coders and the task map of all of them. ``setup_id`` is a
  random id drawn when the first project is made; every task of the setup carries it in its data, so an export
  from another server (or another setup of the study) is told apart even where its project and task ids happen
  to be the same numbers (two fresh servers count from 1). Records made before it existed have none.
  ``annotation.projects`` keeps more per project (config hashes, the assisted run); it edits the whole mapping
  (``load_state``, ``save_state``), the scorer reads the typed part (``read_study_projects``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import UserError
from benchmark.io import atomic_write_text

CODERS_FILE = "coders.json"
PROJECTS_FILE = "projects.json"
SETUP_ID_FIELD = "setup_id"  # the task data field that carries projects.json's setup_id


@dataclass(frozen=True)
class Coder:
    """A coder's Label Studio account in the study."""

    email: str
    id: int
    simulated: bool
    name: str


@dataclass(frozen=True)
class StudyProject:
    """A project ``bench setup-labelstudio`` made: whose queue it is, which arm, which tasks."""

    id: int
    coder: str | None       # the assigned coder's e-mail
    coder_id: int | None
    arm: str | None
    task_ids: frozenset[int]


def read_coders(data_dir: Path) -> list[Coder]:
    """The coder accounts recorded in ``data_dir`` (none when the study has no Label Studio accounts)."""
    path = Path(data_dir) / CODERS_FILE
    if not path.exists():
        return []
    try:
        return [Coder(**row) for row in json.loads(path.read_text(encoding="utf-8"))["coders"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a coders file ({exc}); re-run `bench setup-labelstudio`") from None


def write_coders(data_dir: Path, coders: list[Coder]) -> Path:
    rows = [asdict(c) for c in sorted(coders, key=lambda c: c.email)]
    return atomic_write_text(Path(data_dir) / CODERS_FILE, json.dumps({"coders": rows}, indent=1) + "\n")


def load_state(data_dir: Path) -> dict[str, Any]:
    """``projects.json`` as the mapping ``annotation.projects`` edits (empty projects and tasks when absent)."""
    path = Path(data_dir) / PROJECTS_FILE
    if not path.exists():
        return {"projects": [], "tasks": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        state.setdefault("projects", [])
        state.setdefault("tasks", {})
        return state
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); restore it from a backup") from None


def save_state(data_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_text(Path(data_dir) / PROJECTS_FILE, json.dumps(state, indent=1, sort_keys=True) + "\n")


def read_study_projects(data_dir: Path) -> tuple[dict[int, StudyProject], dict[int, int], str | None]:
    """The study's projects by id, their task map (task id -> hadm_id) and the setup id its tasks carry; empty
    (and None) without projects."""
    state = load_state(data_dir)
    try:
        projects = {int(p["id"]): StudyProject(
            id=int(p["id"]), coder=str(p["coder"]).lower() if p.get("coder") else None,
            coder_id=int(p["coder_id"]) if p.get("coder_id") is not None else None, arm=p.get("arm"),
            task_ids=frozenset(int(t) for t in p.get("task_ids", [])))
            for p in state["projects"] if p.get("id") is not None}
        task_map = {int(t): int(h) for t, h in state["tasks"].items()}
        setup_id = str(state["setup_id"]) if state.get("setup_id") else None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{Path(data_dir) / PROJECTS_FILE}: not what `bench setup-labelstudio` writes ({exc!r}); "
                        "re-run `bench setup-labelstudio`") from None
    return projects, task_map, setup_id
