"""Projects and tasks: turn the study's sample and shortlist into ready-to-code Label Studio projects.

**Blinding: one project per coder (and per arm) on one server.** The open-source edition has no roles:
every signed-in user can list, open, export and delete every project of the organization. Coders must
not see each other's work, and within one project they would (the data manager shows all annotations).
Separate projects keep each coder's queue, annotations and statistics apart; a coder would have to open
another coder's project on purpose to see it, and the instructions say not to. A server per coder would
*enforce* it, at ~0.5 GB RAM, a ~20 s first start and one more port and token per coder, and would
still not stop the admin. For a study where blinding must be enforced, run one server per coder and
point ``bench setup-labelstudio --url`` at each (one coder per run, separate study directories). We
chose per-coder projects as the default because they keep the study on one service that the admin can
back up, restart and pull in one step.

**Designs** (over the sample order, so they are reproducible):

- ``split``: note i goes to coder ``i mod n`` (disjoint shares, as in the paper);
- ``overlap:K``: the first K notes go to every coder (for agreement), the rest are split;
- ``all``: every coder codes every note.

**Assisted arm** (``--assist RUN``): separate projects per coder whose tasks carry RAC's predicted
codes as Label Studio predictions (``model_version = RUN``). Shares are rotated by one coder, so under
``split`` every note is coded once without help and once with it, by different coders (a crossover
that avoids a coder seeing the same note twice). Unassisted projects never hold predictions.

**Evidence** (``--evidence``): the coder page gets the evidence highlighter (``annotation.config``), in
both arms, so the arms differ only by the help. ``--show-evidence`` (with ``--assist RUN``) implies it and
also gives each assisted task, for every predicted code, RAC's evidence windows (``evidence.jsonl`` of the
same prediction set) as regions of the note carrying that code, inside the same Label Studio prediction
as the codes: the coder sees the highlighted words behind each proposed code, keeps the code (and its
regions) to accept it, or removes it to reject it. Which tasks carry evidence is fixed at import, so a
project whose tasks were imported with the other setting is refused.

**Idempotency.** ``study/labelstudio/projects.json`` holds
``{"setup_id", "projects": [{"id", "coder", "arm", "ui", "config_sha256", "task_ids", ...}], "tasks": {"<task id>":
hadm_id}}`` (``benchmark.labelstudio_files`` says what the setup id is for).
Tasks are imported in batches and the file is rewritten (atomically) after each batch, so a re-run
imports only what is missing. A crash between the server accepting a batch and the file being written
is detected by comparing the server's task count with the record; the project's tasks are then read
back from the server before anything else is imported, so nothing is imported twice. The config of a
project that already has annotations is never changed unless ``--force`` (then with a warning).

**The taxonomy's items file.** On the study's own server (``bench labelstudio start``) the taxonomy
picker loads its code tree from ``<server data dir>/files/picker/taxonomy-<sha256>.json``, served by Label
Studio itself (``annotation.config`` explains why this is the fast page). The name is the hash of the
content, so one server can hold several studies, and a changed shortlist is a changed config (which the
annotation guard above sees). Label Studio serves that folder only to users of a project with a
local-files storage on it, so each project gets one, with a file filter that matches nothing (a "Sync"
in the UI imports no tasks from it). On a server named by ``--url`` we cannot write to its disk, so the
tree is inlined as nested ``<Choice>`` tags (slower page, same results). A project first set up with the
inline tree keeps it on a re-run (same codes, so nothing to change).

Task data is exactly ``{"text", "hadm_id", "sample_index", "setup_id"}``: reference codes never enter Label
Studio.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from annotation.client import Connection
from annotation.config import EVIDENCE_CONTROL, code_paths, items_url, labeling_config, taxonomy_items
from annotation.server import files_dir
from benchmark import codesystems, study_files
from benchmark import study as study_mod
from benchmark.arms import shown_predictions
from benchmark.errors import UserError
from benchmark.io import atomic_write_bytes, sha256_bytes
from benchmark.labelstudio_files import PROJECTS_FILE, SETUP_ID_FIELD, Coder, load_state, save_state
from benchmark.predictions import EVIDENCE_FILE, read_evidence, read_predictions
from benchmark.sampling import read_sample, read_shortlist
from benchmark.study import Study

ITEMS_DIR = "picker"  # under the server's files folder: the local-files storage root of every project
MATCH_NOTHING = "(?!)"  # the storage's file filter: a sync in the UI must never import the items as tasks
BATCH_SIZE = 100
INSTRUCTIONS = (  # {codes}: the study's code system (benchmark.codesystems.study_label)
    "<p>Assign every {codes} code (diagnoses and procedures) that this discharge summary supports, "
    "as you would for billing. Search the picker by code number or by words of the title. Flag notes "
    "that do not document enough to code. Do not open other coders' projects.</p>"
)


def parse_design(design: str) -> tuple[str, int]:
    """``"split"`` / ``"all"`` / ``"overlap:K"`` -> (kind, K).

    >>> parse_design("overlap:40")
    ('overlap', 40)
    >>> parse_design("split")
    ('split', 0)
    """
    kind, _, k = design.partition(":")
    if kind in ("split", "all") and not k:
        return kind, 0
    if kind == "overlap" and k.isdigit() and int(k) > 0:
        return kind, int(k)
    raise UserError(f"--design {design!r}: expected split, all or overlap:K (K a positive number of notes)")


def assign(n_notes: int, coders: Sequence[str], design: str, rotate: int = 0) -> dict[str, list[int]]:
    """Sample positions each coder codes under ``design``; ``rotate`` shifts the shares (assisted arm).

    >>> assign(5, ["a", "b"], "split")
    {'a': [0, 2, 4], 'b': [1, 3]}
    >>> assign(5, ["a", "b"], "overlap:2")
    {'a': [0, 1, 2, 4], 'b': [0, 1, 3]}
    >>> assign(5, ["a", "b"], "split", rotate=1)
    {'a': [1, 3], 'b': [0, 2, 4]}
    """
    kind, k = parse_design(design)
    if kind == "overlap" and k > n_notes:
        raise UserError(f"--design overlap:{k}: the sample has only {n_notes} notes")
    n = len(coders)
    shares: dict[str, list[int]] = {c: [] for c in coders}
    for i in range(n_notes):
        if kind == "all" or (kind == "overlap" and i < k):
            for c in coders:
                shares[c].append(i)
        else:
            j = i - k if kind == "overlap" else i
            shares[coders[(j + n - rotate % n) % n]].append(i)
    return shares


@dataclass
class SetupSummary:
    """What a setup run did (the CLI prints it; the tests check it)."""

    projects: list[dict[str, Any]]
    imported: int = 0
    already_there: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


# --- study inputs ----------------------------------------------------------------------------------
def task_data(study: Study, sample: list[int], setup_id: str | None = None) -> list[dict[str, Any]]:
    """The task payloads in sample order: text, hadm_id, sample index and the setup id, nothing else."""
    docs = study_files.read_documents(study, ["hadm_id", "text"], hadm_ids=sample)
    text = dict(zip(docs["hadm_id"].astype(int), docs["text"]))
    missing = [h for h in sample if h not in text]
    if missing:
        raise UserError(f"{study.sample}: HADM_ID {missing[0]} is not in documents.parquet "
                        f"({len(missing)} missing); re-run `bench sample`")
    tag = {SETUP_ID_FIELD: setup_id} if setup_id else {}
    return [{"text": text[h], "hadm_id": int(h), "sample_index": i, **tag} for i, h in enumerate(sample)]


def assist_sets(study: Study, run: str, sample: list[int], shortlist: list[str]) -> dict[int, list[str]]:
    """RAC's predicted code sets for the sample, from ``<RUN>-sample`` (or ``<RUN>-test``), shortlist only.

    Codes outside the shortlist cannot be shown in the picker, so they are left out of the pre-annotation.
    """
    sets = read_predictions(shown_predictions(study, run)).code_sets()
    missing = [h for h in sample if h not in sets]
    if missing:
        raise UserError(f"--assist {run}: predictions lack {len(missing)} sampled admissions "
                        f"(first HADM_ID {missing[0]}); predict the sample or the test split")
    allowed = set(shortlist)
    return {h: [c for c in sets[h] if c in allowed] for h in sample}


def assist_evidence(study: Study, run: str, predicted: dict[int, list[str]]) -> dict[int, dict[str, list[tuple[int, int]]]]:
    """RAC's evidence windows of the shown codes, ``{hadm_id: {code: [(start, end), ...]}}``, same prediction set."""
    path = shown_predictions(study, run) / EVIDENCE_FILE
    if not path.exists():
        raise UserError(f"--show-evidence: {path} does not exist; evidence comes from `bench predict` for a run "
                        f"(a .psv has none)")
    evidence = read_evidence(path)
    missing = [h for h, codes in predicted.items() if codes and h not in evidence]
    if missing:
        raise UserError(f"--show-evidence: {path} lacks {len(missing)} sampled admissions (first HADM_ID "
                        f"{missing[0]}); re-run `bench predict` for run {run}")
    return {h: {c: [(b, e) for b, e, _ in evidence[h].get(c, [])] for c in codes}
            for h, codes in predicted.items() if codes}


def codes_result(codes: list[str], ui: str, catalogue: pd.DataFrame, version: int = 9) -> list[dict[str, Any]]:
    """A Label Studio result picking ``codes`` in the ``codes`` control of ``ui`` (predictions, simulator).

    A taxonomy pick is the code's path in the picker's tree (``annotation.config.code_paths``).

    >>> cat = pd.DataFrame({"code": ["I50.9"], "chapter": ["I00-I99"], "category": ["I50"]})
    >>> codes_result(["I50.9"], "taxonomy", cat, version=10)[0]["value"]["taxonomy"][0][1:]
    ['I30-I5A Other forms of heart disease', 'I50', 'I50.9']
    """
    if ui == "choices":
        value: dict[str, Any] = {"choices": codes}
    else:
        value = {"taxonomy": [list(path) for path in code_paths(codes, catalogue, version)]}
    return [{"from_name": "codes", "to_name": "text", "type": ui, "value": value}]


def evidence_result(windows: dict[str, list[tuple[int, int]]], text: str, catalogue: pd.DataFrame,
                    version: int = 9) -> list[dict[str, Any]]:
    """Regions of the note, one per evidence window, each carrying its code in the ``evidence`` control.

    Region ids are unique within the task (``ev<n>``): Label Studio tells regions apart by them.

    >>> cat = pd.DataFrame({"code": ["428.0"], "chapter": ["390-459"], "category": ["428"]})
    >>> evidence_result({"428.0": [(3, 6)]}, "Hx CHF.", cat)[0]["value"]
    {'start': 3, 'end': 6, 'text': 'CHF', 'taxonomy': [['390-459', '428', '428.0']]}
    """
    shown = [code for code, spans in windows.items() if spans]
    path = dict(zip(shown, code_paths(shown, catalogue, version)))
    return [{"id": f"ev{n}", "from_name": EVIDENCE_CONTROL, "to_name": "text", "type": "taxonomy",
             "value": {"start": start, "end": end, "text": text[start:end], "taxonomy": [list(path[code])]}}
            for n, (code, start, end) in enumerate((c, b, e) for c, spans in windows.items() for b, e in spans)]


# --- setup -----------------------------------------------------------------------------------------
def setup_projects(
    study: Study, conn: Connection, coders: list[Coder], design: str = "split", ui: str = "taxonomy",
    assist: str | None = None, force: bool = False, batch_size: int = BATCH_SIZE, progress: bool = True,
    evidence: bool = False, show_evidence: bool = False,
) -> SetupSummary:
    """Create or complete one project per coder and arm, and import each coder's share of tasks.

    ``evidence`` adds the evidence highlighter to every project; ``show_evidence`` (assisted arm only)
    implies it and pre-annotates each predicted code's evidence windows.
    """
    started = time.perf_counter()
    if show_evidence and not assist:
        raise UserError("--show-evidence shows RAC's evidence in the assisted arm: give the run with --assist RUN")
    evidence = evidence or show_evidence
    study.require("documents", "codes", "sample", "shortlist")
    data_dir = study.labelstudio_dir
    sample, shortlist = read_sample(study), read_shortlist(study)
    catalogue = study_files.read_catalogue(study, ["code", "short_title", "long_title", "category", "chapter"])
    version = codesystems.study_version(study)
    label = codesystems.study_label(version)
    config = labeling_config(shortlist, catalogue, ui, codes_label=label, evidence=evidence, version=version)
    inline_sha = sha256_bytes(config.encode("utf-8"))  # a project set up with the inline tree keeps it
    items_folder = None
    if ui == "taxonomy" and conn.local_dir is not None:
        items_folder, name = write_items(conn.local_dir, taxonomy_items(shortlist, catalogue, version=version))
        config = labeling_config(shortlist, catalogue, ui, items_url=items_url(f"{ITEMS_DIR}/{name}"),
                                 codes_label=label, evidence=evidence, version=version)
    config_sha = sha256_bytes(config.encode("utf-8"))
    state = load_state(data_dir)
    if not state["projects"]:  # a first setup; one made before setup ids existed keeps none (its tasks have none)
        state.setdefault("setup_id", uuid.uuid4().hex)
    payloads = task_data(study, sample, state.get("setup_id"))
    emails = [c.email for c in coders]
    arms: list[tuple[str, dict[str, list[int]]]] = [("unassisted", assign(len(sample), emails, design))]
    predicted: dict[int, list[str]] = {}
    windows: dict[int, dict[str, list[tuple[int, int]]]] = {}
    if assist:
        predicted = assist_sets(study, assist, sample, shortlist)
        if show_evidence:
            windows = assist_evidence(study, assist, predicted)
        arms.append(("assisted", assign(len(sample), emails, design, rotate=1)))

    summary = SetupSummary(projects=[])
    for arm, shares in arms:
        for coder in coders:
            entry = _ensure_project(conn, state, coder, arm, ui, config, config_sha, inline_sha, assist, force, version,
                                    summary)
            _check_shown_evidence(entry, arm == "assisted" and show_evidence)
            save_state(data_dir, state)
            if items_folder is not None and entry["config_sha256"] == config_sha:
                ensure_items_storage(conn, entry["id"], items_folder)
            wanted = [payloads[i] for i in shares[coder.email]]
            _import_missing(conn, data_dir, state, entry, wanted, arm, assist, predicted, windows, ui, catalogue,
                            version, force, batch_size, progress, summary)
            summary.projects.append(entry)
    study.record_step("setup-labelstudio", {
        "fingerprint": study_mod.fingerprint({"sample": study.file_hashes(study.sample), "shortlist":
                                              study.file_hashes(study.shortlist), "coders": emails,
                                              "design": design, "ui": ui, "assist": assist or "",
                                              "evidence": evidence, "show_evidence": show_evidence}),
        "server": conn.url, "label_studio_version": conn.version, "design": design, "ui": ui,
        "assist": assist, "evidence": evidence, "show_evidence": show_evidence, "coders": emails, "projects": [p["id"] for p in summary.projects],
        "n_tasks": sum(len(p["task_ids"]) for p in summary.projects), "config_sha256": config_sha,
    })
    summary.seconds = time.perf_counter() - started
    return summary


def write_items(server_dir: Path, items: list[dict[str, Any]]) -> tuple[Path, str]:
    """Write the taxonomy items JSON into the local server's served folder; return (folder, file name)."""
    data = json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    folder = files_dir(server_dir) / ITEMS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"taxonomy-{sha256_bytes(data)[:16]}.json"
    if not (folder / name).exists():
        atomic_write_bytes(folder / name, data)
    return folder, name


def ensure_items_storage(conn: Connection, project_id: int, folder: Path) -> None:
    """Give the project a local-files storage on ``folder``: Label Studio's permission to serve the items."""
    from label_studio_sdk.core.api_error import ApiError

    storages = conn.client.import_storage.local
    if any(getattr(s, "path", None) == str(folder) for s in storages.list(project=project_id)):
        return
    try:
        storages.create(project=project_id, path=str(folder), regex_filter=MATCH_NOTHING, use_blob_urls=True,
                        title="code picker items (do not sync)")
    except ApiError as exc:
        errors = exc.body.get("validation_errors") if isinstance(exc.body, dict) else None
        reason = " ".join(str(m) for ms in (errors or {}).values() for m in (ms if isinstance(ms, list) else [ms]))
        raise UserError(f"Label Studio at {conn.url} refused to serve the code picker's items from {folder} "
                        f"({(reason or str(exc.body))[:200]}); a server started by an older coding-bench does "
                        f"not serve them: restart it with `bench labelstudio stop` and `bench labelstudio start`"
                        ) from None


def _ensure_project(conn: Connection, state: dict[str, Any], coder: Coder, arm: str, ui: str, config: str,
                    config_sha: str, inline_sha: str, assist: str | None, force: bool, version: int,
                    summary: SetupSummary) -> dict[str, Any]:
    """The state entry of (coder, arm): created, or checked and updated on the server."""
    from label_studio_sdk.core.api_error import ApiError

    client = conn.client
    entry = next((p for p in state["projects"] if p["coder"] == coder.email and p["arm"] == arm), None)
    settings: dict[str, Any] = {
        "title": f"ICD-{version} coding: {coder.email} ({arm})"[:50], "label_config": config,
        "expert_instruction": INSTRUCTIONS.format(codes=codesystems.study_label(version)), "show_instruction": True,
        "show_skip_button": True,
        "maximum_annotations": 1, "show_collab_predictions": arm == "assisted",
        "model_version": assist if arm == "assisted" else None,
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    if entry is not None:
        try:
            project = client.projects.get(entry["id"])
        except ApiError as exc:
            if exc.status_code != 404:
                raise
            if not force:
                raise UserError(f"{PROJECTS_FILE}: project {entry['id']} ({coder.email}, {arm}) is gone from "
                                f"{conn.url}; use --force to create it again (its record is replaced)") from None
            _forget_project(state, entry)
            entry = None
    if entry is None:
        project = client.projects.create(**settings)
        entry = {"id": int(project.id), "coder": coder.email, "coder_id": coder.id, "arm": arm, "ui": ui,
                 "config_sha256": config_sha, "assist_run": assist, "task_ids": []}
        state["projects"].append(entry)
        return entry
    if entry.get("config_sha256") not in (config_sha, inline_sha):
        n_annotations = int(getattr(project, "total_annotations_number", 0) or 0)
        if n_annotations and not force:
            raise UserError(f"project {entry['id']} ({coder.email}, {arm}) already has {n_annotations} "
                            f"annotation(s): refusing to change its code list or config (--ui, shortlist); "
                            f"use --force to change it anyway")
        if n_annotations:
            message = (f"warning: changing the config of project {entry['id']} ({coder.email}), which has "
                       f"{n_annotations} annotation(s); codes no longer offered stay in those annotations")
            print(message, file=sys.stderr)
            summary.warnings.append(message)
        try:
            client.projects.update(entry["id"], **settings)
        except ApiError as exc:
            raise UserError(f"Label Studio refused the new config for project {entry['id']}: "
                            f"{str(exc.body)[:200]}") from None
        entry.update(config_sha256=config_sha, ui=ui, assist_run=assist)
    return entry


def _check_shown_evidence(entry: dict[str, Any], show_evidence: bool) -> None:
    """Tasks carry RAC's evidence or not from their import on: refuse to mix both in one project."""
    before = bool(entry.get("show_evidence", False))
    if entry["task_ids"] and before != show_evidence:
        raise UserError(f"project {entry['id']} ({entry['coder']}, {entry['arm']}) holds tasks imported "
                        f"{'with' if before else 'without'} RAC's evidence; re-run "
                        f"{'with' if before else 'without'} --show-evidence, or set the study up in a new directory")
    entry["show_evidence"] = show_evidence


def _forget_project(state: dict[str, Any], entry: dict[str, Any]) -> None:
    for task_id in entry.get("task_ids", []):
        state["tasks"].pop(str(task_id), None)
    state["projects"].remove(entry)


def _server_tasks(conn: Connection, project_id: int) -> dict[int, int]:
    """{task id: hadm_id} of a project, read back from the server (used after an interrupted import)."""
    found: dict[int, int] = {}
    for task in conn.client.tasks.list(project=project_id, page_size=500, fields="task_only"):
        found[int(task.id)] = int(task.data["hadm_id"])
    return found


def _import_missing(conn: Connection, data_dir: Path, state: dict[str, Any], entry: dict[str, Any],
                    wanted: list[dict[str, Any]], arm: str, assist: str | None, predicted: dict[int, list[str]],
                    windows: dict[int, dict[str, list[tuple[int, int]]]], ui: str, catalogue: pd.DataFrame,
                    version: int, force: bool, batch_size: int, progress: bool, summary: SetupSummary) -> None:
    from tqdm.auto import tqdm

    project = conn.client.projects.get(entry["id"])
    on_server = int(getattr(project, "task_number", 0) or 0)
    if on_server != len(entry["task_ids"]):  # an import was interrupted after the server took a batch
        found = _server_tasks(conn, entry["id"])
        for task_id in entry["task_ids"]:
            state["tasks"].pop(str(task_id), None)
        entry["task_ids"] = sorted(found)
        state["tasks"].update({str(t): h for t, h in found.items()})
        save_state(data_dir, state)
    present = {state["tasks"][str(t)] for t in entry["task_ids"]}
    wanted_ids = {p["hadm_id"] for p in wanted}
    extra = present - wanted_ids
    if extra:
        message = (f"project {entry['id']} ({entry['coder']}, {arm}) holds {len(extra)} note(s) that the "
                   f"current design does not assign to this coder; they are kept (nothing is deleted)")
        if not force:
            raise UserError(f"{message}. The coders or --design changed since the first setup: use the "
                            f"earlier ones, or --force to keep going")
        summary.warnings.append(message)
    todo = [p for p in wanted if p["hadm_id"] not in present]
    summary.already_there += len(wanted) - len(todo)
    if not todo:
        return
    bar = tqdm(total=len(todo), desc=f"import {entry['coder']} ({arm})", unit="task", disable=not progress,
               leave=False)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        tasks = [{"data": p} for p in batch]
        if arm == "assisted":
            for task in tasks:
                hadm_id = task["data"]["hadm_id"]
                result = codes_result(predicted.get(hadm_id, []), ui, catalogue, version)
                if windows:
                    result += evidence_result(windows.get(hadm_id, {}), task["data"]["text"], catalogue, version)
                task["predictions"] = [{"model_version": assist, "result": result}]
        response = conn.client.projects.import_tasks(entry["id"], request=tasks, return_task_ids=True)
        task_ids = sorted(int(t) for t in (response.task_ids or []))
        if len(task_ids) != len(batch):
            raise UserError(f"project {entry['id']}: Label Studio created {len(task_ids)} of {len(batch)} tasks; "
                            f"re-run `bench setup-labelstudio` to resume")
        for task_id, payload in zip(task_ids, batch):  # bulk creation keeps order: ids ascend with the batch
            state["tasks"][str(task_id)] = payload["hadm_id"]
        entry["task_ids"] = sorted([*entry["task_ids"], *task_ids])
        save_state(data_dir, state)
        summary.imported += len(batch)
        bar.update(len(batch))
    bar.close()
