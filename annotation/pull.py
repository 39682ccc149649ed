"""`bench pull`: export every coder project through the API, archive the raw bytes, write one merged file.

Each project in ``study/labelstudio/projects.json`` is read through ``/api/tasks?fields=all``: every
task of the project with its full annotations (``id``, ``completed_by`` as a user id, ``result``,
``lead_time``, ``was_cancelled``, ``created_at``, ``updated_at``), unannotated tasks included with empty
``annotations``. That is the content of Label Studio's "JSON" export with all tasks, and the scorer reads
both the same way. We do not call the export endpoint itself because, with a 4,000-code config, it costs
~0.1 s per task here (45 s for 528 *unannotated* tasks, 37 s for 264 annotated ones, loaded 2-core
machine) against ~8 s for the task list of 264 annotated tasks. The raw response of each project is
archived with ``Study.archive_export`` *before* it is parsed, so the scored data can always be traced to
bytes the server sent. Each merged task is tagged ``coding_bench = {"project", "coder", "arm"}``
(``coders.json`` maps ``completed_by`` to an e-mail). The arms are never mixed:

- unassisted projects -> ``study/exports/merged-latest.json`` (or ``--out``), what ``bench score --coders``
  reads for Table 1;
- assisted projects (``--assist``) -> ``study/exports/merged-assisted-latest.json`` beside it.

Only the API is used, through the URL in the credentials file, so it works after a restart (the port
may have changed; ``bench labelstudio start`` rewrites the URL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from annotation.client import Connection
from benchmark.errors import UserError
from benchmark.io import atomic_write_text
from benchmark.labelstudio_files import load_state
from benchmark.study import Study

DEFAULT_NAME = "merged-latest.json"
ASSISTED_NAME = "merged-assisted-latest.json"


@dataclass
class PullSummary:
    outputs: dict[str, Path]          # arm -> merged file
    archived: list[Path]
    n_tasks: dict[str, int]
    n_annotations: dict[str, int]


def project_tasks(conn: Connection, project_id: int, page_size: int = 1000) -> bytes:
    """Every task of the project with its annotations (``/api/tasks?fields=all``), as one JSON list in bytes."""
    headers = {"Authorization": f"Token {conn.creds.api_key}"}
    tasks: list[dict[str, Any]] = []
    page = 1
    while True:
        response = requests.get(f"{conn.url}/api/tasks", headers=headers, timeout=300, params={
            "project": project_id, "page": page, "page_size": page_size, "fields": "all"})
        if response.status_code == 404 and page > 1:  # past the last page
            break
        if not response.ok:
            raise UserError(f"{conn.url}: reading the tasks of project {project_id} failed "
                            f"(HTTP {response.status_code}); is it the server that `bench setup-labelstudio` used?")
        batch = response.json().get("tasks", [])
        tasks.extend(batch)
        if len(batch) < page_size:
            break
        page += 1
    return json.dumps(tasks, ensure_ascii=False).encode("utf-8")


def _parse(raw: bytes, archived: Path, what: str) -> list[dict[str, Any]]:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what}: the server's answer is not JSON ({exc}); it is archived at {archived}") from None


def pull(study: Study, conn: Connection, out: Path | None = None) -> PullSummary:
    """Export, archive and merge every recorded project; returns where the merged files went."""
    state = load_state(study.labelstudio_dir)
    if not state["projects"]:
        raise UserError(f"{study.labelstudio_dir / 'projects.json'}: no projects recorded; "
                        f"run `bench setup-labelstudio` first")
    merged: dict[str, list[dict[str, Any]]] = {}
    archived: list[Path] = []
    for entry in state["projects"]:
        raw = project_tasks(conn, entry["id"])
        archived.append(study.archive_export(raw, f"project-{entry['id']}-{entry['arm']}"))
        tasks = _parse(raw, archived[-1], f"project {entry['id']}")
        for task in tasks:
            task["coding_bench"] = {"project": entry["id"], "coder": entry["coder"], "arm": entry["arm"]}
        merged.setdefault(entry["arm"], []).extend(tasks)
    default_out = study.exports_dir / DEFAULT_NAME
    targets = {"unassisted": Path(out) if out else default_out,
               "assisted": (Path(out).with_name(Path(out).stem + "-assisted.json") if out
                            else study.exports_dir / ASSISTED_NAME)}
    outputs: dict[str, Path] = {}
    for arm, tasks in merged.items():
        tasks.sort(key=lambda t: (t["coding_bench"]["project"], t["id"]))
        outputs[arm] = atomic_write_text(targets[arm], json.dumps(tasks, ensure_ascii=False) + "\n")
    return PullSummary(
        outputs=outputs, archived=archived,
        n_tasks={arm: len(tasks) for arm, tasks in merged.items()},
        n_annotations={arm: sum(len(t.get("annotations") or []) for t in tasks) for arm, tasks in merged.items()},
    )
