"""Coder exports from Label Studio: every format a user hands over, read into one set of codes per coder and task.

Formats (DESIGN.md §7, and label-studio-sdk's converter, which writes the two flat ones):

- **full JSON** (``bench pull``, or Export → JSON): a list of tasks ``{"id", "project", "data": {"hadm_id",
  …}, "annotations": [{"id", "completed_by", "result", "was_cancelled", "lead_time", "created_at",
  "updated_at"}]}``. ``completed_by`` is an integer user id (older servers: a user dict with ``email``).
- **JSON_MIN**: one record per annotation, task data at the top level: ``{"id", "hadm_id", "codes",
  "annotator", "annotation_id", "lead_time", "created_at", "updated_at"}``. One choice is a bare string,
  several are ``{"choices": [...]}``; a taxonomy is ``{"taxonomy": [[chapter, category, code], …]}``.
  Cancelled annotations are not exported; a task without annotations has ``annotator`` null.
- **CSV**: JSON_MIN's columns, a non-string value JSON-encoded in its cell.

Codes come from the ``codes`` control, ``Choices`` or ``Taxonomy`` (the leaf, the last element of a path,
is the code), normalised by ``normalise_code`` (with or without a dot, any case). A choice stored
as ``"428.0 Congestive heart failure"`` (a config without ``alias``) counts as its first word.
Codes are checked against the study's code system (``benchmark.codesystem``), not its label space: a valid
code that no reference has is kept (a wrong answer, counted as outside the label space); a string that is
no code of the code system is an *unknown* code, refused unless ``allow_unknown``.

Nothing is silently dropped. Counted and reported: annotations a coder *skipped* (``was_cancelled`` with
no result, Label Studio's Skip button), *cancelled* (``was_cancelled`` with codes already chosen), tasks
with *no annotation*, and *duplicates*: several annotations by one coder on one task, of which the latest
(``updated_at``, then ``created_at``, then annotation id) counts. The same annotation seen in two files
(a merged export and a per-coder one) is one annotation, counted as ``repeated``.

Arms: a task's arm ("unassisted" or "assisted") comes from ``bench pull``'s ``coding_bench`` tag or the
study's project map; exports that mix the two arms are refused, since Table 1 compares one condition.

Every raw file is archived into ``study/exports/`` (``Study.archive_export``) before it is parsed.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import codesystem
from benchmark.codesystem import CodeSystem
from benchmark.errors import UserError
from benchmark.icd import normalize
from benchmark.io import sha256_bytes
from benchmark.study import Study

CODES_CONTROL = "codes"
INSUFFICIENT_CONTROL = "insufficient_documentation"


@dataclass(frozen=True)
class Annotation:
    """One coder's answer on one admission (the unit Table 1 scores)."""

    source: str                    # the export file it came from
    task_id: int | None
    hadm_id: int
    coder: str                     # email when known, else "user <id>"
    coder_id: int | None
    annotation_id: int | None
    codes: tuple[str, ...]         # normalised dotted codes, sorted (unknown codes included when allowed)
    unknown: tuple[str, ...] = ()  # the codes that are not codes of the code system
    lead_time: float | None = None
    updated_at: str = ""
    insufficient_documentation: bool = False
    simulated: bool = False
    coder_name: str | None = None
    arm: str | None = None         # "unassisted" | "assisted" when the study's project map says so
    outside_label_space: tuple[str, ...] = ()  # valid codes no reference has: scored as wrong, counted


@dataclass
class CoderExports:
    """The scored annotations of one or more exports, what was left out and why, and the archived files."""

    annotations: list[Annotation]
    counts: dict[str, int]
    exports: list[dict[str, str]] = field(default_factory=list)
    arm: str | None = None


@dataclass
class _Context:
    """What an export is checked against: the sample, the code system, the coder and project maps."""

    sample: set[int]
    code_system: CodeSystem
    coders_by_id: dict[int, dict[str, Any]]
    coders_by_email: dict[str, dict[str, Any]]
    project_ids: set[int] | None
    task_map: dict[int, int] | None
    project_arm: dict[int, str] = field(default_factory=dict)
    task_arm: dict[int, str] = field(default_factory=dict)


def load_context(study: Study) -> _Context:
    """Read the sample, the code system and (when present) ``labelstudio/coders.json`` and ``projects.json``."""
    from benchmark.sampling import read_sample

    study.require("sample")
    sample = set(read_sample(study))
    catalogue = codesystem.read(study)  # the code system, not the label space: see benchmark.codesystem
    coders = _read_optional_json(study.labelstudio_dir / "coders.json").get("coders", [])
    by_id = {int(c["id"]): c for c in coders if c.get("id") is not None}
    by_email = {str(c["email"]).lower(): c for c in coders if c.get("email")}
    projects = _read_optional_json(study.labelstudio_dir / "projects.json")
    project_ids = {int(p["id"]) for p in projects.get("projects", []) if p.get("id") is not None} or None
    task_map = {int(t): int(h) for t, h in projects.get("tasks", {}).items()} or None
    project_arm = {int(p["id"]): p["arm"] for p in projects.get("projects", []) if p.get("id") is not None and p.get("arm")}
    task_arm = {int(t): p["arm"] for p in projects.get("projects", []) if p.get("arm") for t in p.get("task_ids", [])}
    return _Context(sample, catalogue, by_id, by_email, project_ids, task_map, project_arm, task_arm)


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); re-run `bench setup-labelstudio`") from exc
    return data if isinstance(data, dict) else {}


def read_coder_exports(paths: Sequence[Path], study: Study, allow_unknown: bool = False) -> CoderExports:
    """Archive, then parse and merge, the coder exports ``paths`` (full JSON, JSON_MIN or CSV).

    Raises ``UserError`` naming the file and task for: an unreadable or truncated file, a task whose
    admission is not in the sample, an export from another Label Studio project, and strings that are not
    codes of the code system (all of them listed) unless ``allow_unknown``, which keeps them to be scored as
    wrong. Valid codes outside the label space are scored as wrong and counted, never refused.
    """
    if not paths:
        raise UserError("no coder export given; pass --coders FILE (a Label Studio export, or `bench pull`'s file)")
    ctx = load_context(study)
    records: list[dict[str, Any]] = []
    counts = dict.fromkeys(("tasks", "annotations", "scored", "skipped", "cancelled", "no_annotation",
                            "duplicates_replaced", "repeated", "unknown_codes", "insufficient_documentation"), 0)
    archived = []
    tasks_seen: set[tuple[int | None, int]] = set()
    for path in paths:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UserError(f"{path}: cannot read the coder export ({exc.strerror}); check the path") from exc
        kept = study.archive_export(raw, label=path.stem, suffix=path.suffix.lower() or ".json")
        archived.append({"path": str(kept.relative_to(study.root)), "sha256": sha256_bytes(raw), "source": str(path)})
        for record in _parse_file(path, raw, ctx):
            if record["kind"] == "no_annotation":
                counts["no_annotation"] += 1
            tasks_seen.add((record["task_id"], record["hadm_id"]))
            records.append(record)
    annotations = _resolve(records, ctx, counts, allow_unknown)
    arms = sorted({a.arm for a in annotations if a.arm})
    if len(arms) > 1:
        raise UserError(f"{', '.join(str(p) for p in paths)}: the exports mix the {' and '.join(arms)} arms; "
                        "score each arm on its own (`bench pull` writes one merged file per arm)")
    counts["tasks"] = len({hadm for _, hadm in tasks_seen})
    counts["scored"] = len(annotations)
    return CoderExports(annotations=annotations, counts=counts, exports=archived, arm=arms[0] if arms else None)


# --- parsing -----------------------------------------------------------------------------------------
def _parse_file(path: Path, raw: bytes, ctx: _Context) -> Iterable[dict[str, Any]]:
    """Yield one raw record per annotation (or per task without one), format detected from the content."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc}); export again from Label Studio as JSON or CSV") from exc
    if path.suffix.lower() == ".csv" or (text.lstrip()[:1] not in ("[", "{") and text.strip()):
        yield from _parse_csv(path, text, ctx)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); the file may be "
            "truncated: export it again (bench pull, or Label Studio Export as JSON)"
        ) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise UserError(f"{path}: expected a JSON list of Label Studio tasks; export as JSON, JSON_MIN or CSV")
    for index, item in enumerate(data):
        if "annotations" in item or "completions" in item or "data" in item:
            yield from _parse_full_task(path, item, index, ctx)
        else:
            yield _parse_min_record(path, item, index, ctx)


def _parse_full_task(path: Path, task: dict[str, Any], index: int, ctx: _Context) -> Iterable[dict[str, Any]]:
    task_id = _int_or_none(task.get("id"))
    where = f"{path}: task {task_id if task_id is not None else f'#{index + 1}'}"
    data = task.get("data") or {}
    hadm_id = _task_hadm(where, data.get("hadm_id"), task_id, ctx)
    project = _int_or_none(task.get("project"))
    if ctx.project_ids is not None and project is not None and project not in ctx.project_ids:
        raise UserError(
            f"{where}: comes from Label Studio project {project}, which is not one of this study's projects "
            f"({', '.join(map(str, sorted(ctx.project_ids)))}); export from the study's project or use --study"
        )
    arm = (task.get("coding_bench") or {}).get("arm") or ctx.project_arm.get(project) or ctx.task_arm.get(task_id)
    annotations = task.get("annotations", task.get("completions")) or []
    if not annotations:
        yield _record(where, "no_annotation", task_id, hadm_id)
        return
    for ann in annotations:
        by = ann.get("completed_by")
        coder_id = _int_or_none(by.get("id") if isinstance(by, dict) else by)
        email = by.get("email") if isinstance(by, dict) else (by if isinstance(by, str) and "@" in by else None)
        codes, insufficient = _codes_from_results(where, ann.get("result") or [])
        kind = "scored"
        if ann.get("was_cancelled") or ann.get("skipped"):
            kind = "cancelled" if codes else "skipped"
        yield _record(where, kind, task_id, hadm_id, coder_id=coder_id, email=email, codes=codes,
                      insufficient=insufficient, annotation_id=_int_or_none(ann.get("id")), lead_time=ann.get("lead_time"),
                      updated_at=str(ann.get("updated_at") or ann.get("created_at") or ""), arm=arm)


def _parse_min_record(path: Path, item: dict[str, Any], index: int, ctx: _Context) -> dict[str, Any]:
    task_id = _int_or_none(item.get("id"))
    where = f"{path}: task {task_id if task_id is not None else f'#{index + 1}'}"
    hadm_id = _task_hadm(where, item.get("hadm_id"), task_id, ctx)
    annotator = item.get("annotator")
    if annotator in (None, "", {}) and item.get("annotation_id") in (None, ""):
        return _record(where, "no_annotation", task_id, hadm_id)
    coder_id = _int_or_none(annotator)
    email = annotator if isinstance(annotator, str) and "@" in annotator else None
    codes = _codes_from_min_value(where, item.get(CODES_CONTROL))
    insufficient = bool(item.get(INSUFFICIENT_CONTROL))
    return _record(where, "scored", task_id, hadm_id, coder_id=coder_id, email=email, codes=codes,
                   insufficient=insufficient, annotation_id=_int_or_none(item.get("annotation_id")),
                   lead_time=_float_or_none(item.get("lead_time")),
                   updated_at=str(item.get("updated_at") or item.get("created_at") or ""), arm=ctx.task_arm.get(task_id))


def _parse_csv(path: Path, text: str, ctx: _Context) -> Iterable[dict[str, Any]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # note text can exceed the 128 KB default
    reader = csv.DictReader(io.StringIO(text))
    missing = {"hadm_id", "annotator"} - set(reader.fieldnames or [])
    if missing:
        raise UserError(f"{path}: CSV has no column {', '.join(sorted(missing))}; export the coding project as CSV "
                        "from Label Studio (its header has id, hadm_id, codes, annotator, ...)")
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV ({exc}); export it again from Label Studio") from None
    for index, row in enumerate(rows):
        item: dict[str, Any] = dict(row)
        value = (row.get(CODES_CONTROL) or "").strip()
        if value[:1] in ("{", "[", '"'):
            try:
                item[CODES_CONTROL] = json.loads(value)
            except json.JSONDecodeError:
                raise UserError(f"{path}: row {index + 2}: the codes cell is not valid JSON; export it again") from None
        yield _parse_min_record(path, item, index, ctx)


def _codes_from_results(where: str, results: list[Any]) -> tuple[list[str], bool]:
    """Codes from a full-JSON annotation's ``result`` (Choices or Taxonomy), and the insufficient flag."""
    codes: list[str] = []
    insufficient = False
    for result in results:
        if not isinstance(result, dict):
            raise UserError(f"{where}: an annotation result is not an object; export it again from Label Studio")
        value = result.get("value") or {}
        if result.get("from_name") == INSUFFICIENT_CONTROL:
            insufficient = insufficient or bool(value.get("choices"))
            continue
        name = result.get("from_name")
        if name != CODES_CONTROL and not (name is None and result.get("type") in ("choices", "taxonomy")):
            continue  # the comment TextArea and anything else that is not the code picker
        codes.extend(_codes_from_min_value(where, {k: v for k, v in value.items() if k in ("choices", "taxonomy")}))
    return codes, insufficient


def _codes_from_min_value(where: str, value: Any) -> list[str]:
    """Codes from a JSON_MIN/CSV value: a string, ``{"choices": [...]}``, ``{"taxonomy": [[...]]}`` or a list of those."""
    if value in (None, "", {}):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [code for part in value for code in _codes_from_min_value(where, part)]
    if isinstance(value, dict):
        out = [str(c) for c in value.get("choices", [])]
        for path in value.get("taxonomy", []):
            leaf = path[-1] if isinstance(path, list) and path else path
            out.append(str(leaf))
        return out
    raise UserError(f"{where}: cannot read codes from {str(value)[:60]!r}; expected Choices or Taxonomy results")


def _task_hadm(where: str, value: Any, task_id: int | None, ctx: _Context) -> int:
    """The task's admission, checked against the sample and (when known) the study's task map."""
    hadm_id = _int_or_none(value)
    if hadm_id is None:
        raise UserError(f"{where}: no hadm_id in the task data; this is not a coding-bench task "
                        "(tasks are created by `bench setup-labelstudio`)")
    if ctx.task_map is not None and task_id is not None:
        mapped = ctx.task_map.get(task_id)
        if mapped is None or mapped != hadm_id:
            raise UserError(f"{where}: task {task_id} (hadm_id {hadm_id}) is not a task of this study's Label Studio "
                            "projects (labelstudio/projects.json); export from the study's project or use --study")
    if hadm_id not in ctx.sample:
        raise UserError(f"{where}: hadm_id {hadm_id} is not in the study's sample ({len(ctx.sample)} admissions); "
                        "export from the project made for this study, or use --study")
    return hadm_id


def _record(where: str, kind: str, task_id: int | None, hadm_id: int, **fields: Any) -> dict[str, Any]:
    return {"where": where, "kind": kind, "task_id": task_id, "hadm_id": hadm_id, **fields}


# --- merging -----------------------------------------------------------------------------------------
def _resolve(records: list[dict[str, Any]], ctx: _Context, counts: dict[str, int], allow_unknown: bool) -> list[Annotation]:
    """Normalise codes, name coders, check unknown codes, and keep the latest annotation per coder and task."""
    unknown_by_task: list[str] = []
    seen_ids: set[tuple[int | None, int]] = set()
    latest: dict[tuple[str, int], Annotation] = {}
    for rec in records:
        if rec["kind"] == "no_annotation":
            continue
        if rec["annotation_id"] is not None:
            key = (rec["task_id"], rec["annotation_id"])
            if key in seen_ids:
                counts["repeated"] += 1
                continue
            seen_ids.add(key)
        counts["annotations"] += 1
        if rec["kind"] in ("skipped", "cancelled"):
            counts[rec["kind"]] += 1
            continue
        codes, unknown, outside = _normalise_codes(rec["codes"], ctx.code_system)
        if unknown:
            unknown_by_task.append(f"{rec['where']}: {', '.join(unknown)}")
            counts["unknown_codes"] += len(unknown)
        counts["insufficient_documentation"] += int(rec["insufficient"])
        entry = (ctx.coders_by_id.get(rec["coder_id"]) if rec["coder_id"] is not None else None) or (
            ctx.coders_by_email.get(rec["email"].lower()) if rec["email"] else None) or {}
        email = entry.get("email") or rec["email"]
        coder_id = rec["coder_id"] if rec["coder_id"] is not None else _int_or_none(entry.get("id"))
        coder = email or (f"user {coder_id}" if coder_id is not None else "unknown coder")
        ann = Annotation(
            source=rec["where"].split(": ")[0], task_id=rec["task_id"], hadm_id=rec["hadm_id"], coder=coder,
            coder_id=coder_id, annotation_id=rec["annotation_id"], codes=codes, unknown=unknown,
            lead_time=_float_or_none(rec["lead_time"]), updated_at=rec["updated_at"],
            insufficient_documentation=bool(rec["insufficient"]), simulated=bool(entry.get("simulated", False)),
            coder_name=entry.get("name"), arm=rec.get("arm"), outside_label_space=outside,
        )
        key2 = (coder, ann.hadm_id)
        earlier = latest.get(key2)
        if earlier is not None:
            counts["duplicates_replaced"] += 1
            if _order(earlier) > _order(ann):
                continue
        latest[key2] = ann
    # Valid codes no reference has are wrong answers, scored as such; how many is shown beside Table 1.
    counts["annotations_outside_label_space"] = sum(1 for a in latest.values() if a.outside_label_space)
    counts["codes_outside_label_space"] = sum(len(a.outside_label_space) for a in latest.values())
    if unknown_by_task and not allow_unknown:
        raise ctx.code_system.unknown_error(unknown_by_task, "correct them in Label Studio")
    return sorted(latest.values(), key=lambda a: (a.hadm_id, a.coder))


def _order(ann: Annotation) -> tuple[str, int]:
    return ann.updated_at, ann.annotation_id or 0


def _normalise_codes(raw: list[str], code_system: CodeSystem) -> tuple[tuple[str, ...], ...]:
    """Sorted dotted codes, those that are not codes of the code system, and valid ones outside the label space."""
    codes, unknown, outside = set(), set(), set()
    for value in raw:
        token = str(value).strip().split()[0] if str(value).strip() else ""
        if not token:
            continue
        code = normalise_code(token, code_system)
        codes.add(code)
        if code not in code_system:
            unknown.add(code)
        elif code not in code_system.label_space:
            outside.add(code)
    return tuple(sorted(codes)), tuple(sorted(unknown)), tuple(sorted(outside))


def normalise_code(token: str, code_system: CodeSystem) -> str:
    """The dotted form of one code (coders' and models' alike).

    An undotted code can read as a diagnosis or a procedure ("6751" is 675.1 or 67.51; 1,593 undotted CMS v32
    codes are valid both ways): the reading in the label space wins, then the reading in the code system,
    diagnosis first, else ``benchmark.icd.normalize``'s rule. A string that is no code comes back uppercased.

    >>> codes = CodeSystem(frozenset({"675.1", "67.51", "428.0", "42.80"}), frozenset({"67.51", "428.0"}))
    >>> normalise_code("6751", codes), normalise_code("4280", codes), normalise_code("v4581", codes)
    ('67.51', '428.0', 'V45.81')
    >>> normalise_code("67.51", codes), normalise_code("zzz", codes)
    ('67.51', 'ZZZ')
    """
    if "." not in token:
        readings = []
        for system in ("dx", "px"):
            try:
                readings.append(normalize(token, system))
            except ValueError:
                continue
        for catalogue in (code_system.label_space, code_system.codes):
            found = next((reading for reading in readings if reading in catalogue), None)
            if found is not None:
                return found
    try:
        return normalize(token)
    except ValueError:
        return token.upper()


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None
