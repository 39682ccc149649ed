"""Coder exports from Label Studio: every format a user hands over, read into one set of codes per coder and task.

Formats (as Label Studio 1.23 and label-studio-sdk's converter write them):

- **full JSON** (``bench pull``, or Export → JSON): a list of tasks ``{"id", "project", "data": {"hadm_id",
  …}, "annotations": [{"id", "completed_by", "result", "was_cancelled", "lead_time", "created_at",
  "updated_at"}]}``. ``completed_by`` is an integer user id (older servers: a user dict with ``email``).
- **JSON_MIN**: one record per annotation, task data at the top level, one key per control:
  ``{"id", "hadm_id", "codes", "annotator", "annotation_id", "lead_time", "created_at", "updated_at"}``.
  One choice is a bare string, several are ``{"choices": [...]}``; a taxonomy is
  ``[{"taxonomy": [[chapter, …, code], …]}]`` (its picker's path to each code: ICD-9 chapter, category, code;
  ICD-10 four levels). Cancelled annotations are not exported; a task
  without annotations has ``annotator`` null.
- **CSV**: JSON_MIN's columns, a non-string value JSON-encoded in its cell.

**Which control holds the codes.** Projects made by ``bench setup-labelstudio`` name the code picker
``codes``. A project built elsewhere (the paper's team built their own) names it as it likes
(``<Choices name="icd9">``, ``<Taxonomy name="dx">``). Each file is searched for the controls that hold
Choices or Taxonomy values (in JSON_MIN and CSV: ``{"choices"}``/``{"taxonomy"}`` values, or bare strings
shaped like ICD-9 codes, in a column that is not task data). Anything but exactly ``codes`` (with
``insufficient_documentation``, the study's flag, aside) stops with an error that names the control(s)
and ``--control NAME``; with ``--control`` (repeatable: a site with separate diagnosis and procedure
pickers) those controls are read, and their codes merged. So no annotation is ever scored as empty
because its codes sit under a name the scorer did not expect.

Codes are the chosen values (a taxonomy's leaf, the last element of its path), normalised by
``normalise_code`` (with or without a dot, any case). A choice stored as
``"428.0 Congestive heart failure"`` (a config without ``alias``) counts as its first word.
Codes are checked against the study's code system (``benchmark.valid_codes``), not its label space: a valid
code that no reference has is kept (a wrong answer, counted as outside the label space); a string that is
no code of the code system is an *unknown* code, refused unless ``allow_unknown``.

**Which server, and who coded.** In a study whose projects ``bench setup-labelstudio`` made
(``labelstudio/projects.json``), an export must come from those projects: a task whose ``setup_id`` (task
data) is not the study's, a ``project`` id that is not the study's, or a task id whose admission differs
from the study's task map, means another Label Studio server (or another setup of the study), and is
refused, since its user ids mean other people. The setup id catches the case the ids cannot: two fresh
servers set up alike number their projects and tasks alike. There, an annotation by anyone but the
coder assigned to the project (an admin testing the page, another coder) is an *unassigned annotator*:
counted, listed by id or e-mail, and left out of the scores unless ``include_unassigned``. In a study
without projects of its own (exports handed over by another site), every annotator is a coder. Integer
user ids are named only through the study's own accounts (``labelstudio/coders.json``, which
``bench setup-labelstudio`` writes with the projects) or an explicit coder map (``--coder-map FILE``,
:func:`read_coder_map`, which wins), else by e-mail or as ``user <id>``; never by guessing.

Nothing is silently dropped. Counted and reported: annotations a coder *skipped* (``was_cancelled`` with
no result, Label Studio's Skip button), *cancelled* (``was_cancelled`` with codes already chosen), tasks
with *no annotation*, annotations by *unassigned* annotators, ``lead_time`` values that are not a number
(missing for the throughput, and said so), and *duplicates*: several annotations by one coder on one task,
of which the latest (``updated_at``, then ``created_at``, then annotation id) counts. The same annotation
seen in two files (a merged export and a per-coder one) is one annotation, counted as ``repeated``.

**Evidence spans** (``bench setup-labelstudio --evidence``). A region of the note is a result whose value has
``start`` and ``end``: in full JSON ``{"from_name": "evidence", "type": "taxonomy", "value": {"start", "end",
"text", "taxonomy": [[chapter, …, code]]}}`` (a ``{"labels": [code]}`` value is read the same way); in
JSON_MIN and CSV a list of such values under the control's key. Regions of the control ``evidence`` become
the annotation's ``evidence``, ``{code: ((start, end), ...)}``, with ``start``/``end`` character offsets into
the study's document (the task text). Refused, naming the file and task: offsets that are not integers with
0 <= start < end <= the text's length, a region with no code or several, and a region whose ``text`` differs
from the document's text at its offsets (another text, or offsets counted otherwise). Its codes are checked
like the picked codes (unknown ones refused unless ``allow_unknown``). Counted and said beside the table:
spans whose code the coder did not pick in ``codes`` (left out of ``evidence``: removing a proposed code
rejects its evidence too) and regions of other controls (not evidence: a site's own span labels). A region is
never taken for a picked code, so a project with evidence needs no ``--control``.

Arms: a task's arm ("unassisted" or "assisted") comes from ``bench pull``'s ``coding_bench`` tag or the
study's project map; exports that mix the two arms are refused, since Table 1 compares one condition.

Every raw file (exports and the coder map) is archived into ``study/exports/`` (``Study.archive_export``)
before it is parsed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import codesystems, study_files, valid_codes
from benchmark.valid_codes import ValidCodes
from benchmark.errors import UserError
from benchmark.io import sha256_bytes
from benchmark.labelstudio_files import SETUP_ID_FIELD, Coder, StudyProject, read_coders, read_study_projects
from benchmark.study import Study

CODES_CONTROL = "codes"
INSUFFICIENT_CONTROL = "insufficient_documentation"
COMMENT_CONTROL = "comment"
EVIDENCE_CONTROL = "evidence"
# JSON_MIN/CSV keys that are never a control: the converter's annotation fields and this study's task data.
_MIN_FIELDS = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement",
                         "history", "hadm_id", "text", "sample_index", SETUP_ID_FIELD, INSUFFICIENT_CONTROL,
                         COMMENT_CONTROL})


@dataclass(frozen=True)
class Annotation:
    """One coder's answer on one admission (the unit Table 1 scores)."""

    source: str                    # the export file it came from
    task_id: int | None
    hadm_id: int
    coder: str                     # the coder-map name, else the email, else "user <id>"
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
    assigned: bool = True          # False: not the coder of the study's project it sits in (--include-unassigned)
    email: str | None = None
    # code -> its highlighted spans (start, end) in the document, sorted; only codes among ``codes``
    evidence: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class UnassignedAnnotator:
    """A user whose annotations sit in a study project made for another coder (or who is no study coder)."""

    annotator: str              # email, else "user <id>"
    id: int | None
    email: str | None
    projects: tuple[int, ...]   # the study projects they annotated in
    n_annotations: int


@dataclass(frozen=True)
class Attribution:
    """How annotations were read and given to coders (stored beside Table 1)."""

    controls: tuple[str, ...]               # the controls whose values are the codes
    coder_map: dict[str, str] | None        # the archived --coder-map file: path, sha256, source
    include_unassigned: bool
    study_projects: bool                    # the study has Label Studio projects, so exports were checked against them


@dataclass
class CoderExports:
    """The scored annotations of one or more exports, what was left out and why, and the archived files."""

    annotations: list[Annotation]
    counts: dict[str, int]
    attribution: Attribution | None = None      # None: the rows were not read from coder exports (MDACE's coders)
    exports: list[dict[str, str]] = field(default_factory=list)
    arm: str | None = None
    unassigned: list[UnassignedAnnotator] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the CLI says beside the table


@dataclass
class _Record:
    """One annotation (or one task without any) as a file holds it, before coders are named."""

    where: str
    kind: str                                  # "scored" | "skipped" | "cancelled" | "no_annotation"
    task_id: int | None
    hadm_id: int
    project: int | None = None
    coder_id: int | None = None
    email: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # control name -> raw Choices/Taxonomy value(s)
    regions: list[tuple[str, Any]] = field(default_factory=list)  # (control name, raw value) of each region
    codes: list[str] = field(default_factory=list)        # from the controls that hold codes (_select_controls)
    insufficient: bool = False
    annotation_id: int | None = None
    lead_time: Any = None                      # as exported; checked in _resolve
    updated_at: str = ""
    arm: str | None = None


@dataclass
class _Context:
    """What an export is checked against (sample, code system, the study's accounts and projects) and how to read it."""

    sample: set[int]
    code_system: ValidCodes
    accounts_by_id: dict[int, Coder]
    accounts_by_email: dict[str, Coder]
    projects: dict[int, StudyProject]  # empty: the study has no Label Studio projects of its own
    task_map: dict[int, int]       # task id -> hadm_id of those projects
    setup_id: str | None = None    # what every task of those projects carries (None: projects made before it)
    controls: tuple[str, ...] = ()          # --control; empty: the study's own "codes"
    texts: dict[int, str] = field(default_factory=dict)  # documents of admissions with regions (offsets check)
    coder_map: dict[str, str] = field(default_factory=dict)  # --coder-map: user id or email -> coder name
    include_unassigned: bool = False

    def project_of(self, task_id: int | None) -> StudyProject | None:
        return next((p for p in self.projects.values() if task_id in p.task_ids), None)


def load_context(study: Study) -> _Context:
    """Read the sample, the code system and (when present) ``labelstudio/coders.json`` and ``projects.json``."""
    from benchmark.sampling import read_sample

    study.require("sample")
    sample = set(read_sample(study))
    code_system = valid_codes.read(study)  # the code system, not the label space: see benchmark.valid_codes
    accounts, projects, task_map, setup_id = _read_labelstudio_records(study)
    by_id = {a.id: a for a in accounts if a.id is not None}
    by_email = {a.email.lower(): a for a in accounts if a.email}
    return _Context(sample, code_system, by_id, by_email, projects, task_map, setup_id)


def _read_labelstudio_records(study: Study) -> tuple[list[Coder], dict[int, StudyProject], dict[int, int], str | None]:
    """The study's coder accounts, its projects, their task map and setup id, as ``bench setup-labelstudio`` wrote
    them."""
    return (read_coders(study.labelstudio_dir), *read_study_projects(study.labelstudio_dir))


def read_coder_map(path: Path, raw: bytes) -> dict[str, str]:
    """``--coder-map FILE``: a JSON object from an export's user to the coder's name.

    Keys are what the export holds in ``completed_by``/``annotator``: an integer user id (as a string,
    JSON keys are strings) or an e-mail address (any case); values are the names the rows get. Two keys
    with one name make one coder (a coder with two accounts).

    >>> read_coder_map(Path("map.json"), b'{"17": "Coder Smith", "Jo@Site.org": "Coder Jones"}')
    {'17': 'Coder Smith', 'jo@site.org': 'Coder Jones'}
    >>> read_coder_map(Path("map.json"), b'{"jo": "Coder Jones"}')
    Traceback (most recent call last):
    ...
    benchmark.errors.UserError: map.json: key 'jo' is neither an integer user id nor an e-mail address; write {"17": "Coder Smith", "jo@site.org": "Coder Jones"}
    """
    example = '{"17": "Coder Smith", "jo@site.org": "Coder Jones"}'
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a JSON coder map ({exc}); write {example}") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: a coder map is a non-empty JSON object from user id or e-mail to coder name; "
                        f"write {example}")
    out: dict[str, str] = {}
    for key, name in data.items():
        user = str(key).strip().lower()
        if not (user.isdigit() or "@" in user):
            raise UserError(f"{path}: key {key!r} is neither an integer user id nor an e-mail address; write {example}")
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{path}: the coder name for {key!r} must be a non-empty string; write {example}")
        out[user] = name.strip()
    return out


def read_coder_exports(paths: Sequence[Path], study: Study, allow_unknown: bool = False, *,
                       controls: Sequence[str] = (), coder_map: Path | None = None,
                       include_unassigned: bool = False) -> CoderExports:
    """Archive, then parse and merge, the coder exports ``paths`` (full JSON, JSON_MIN or CSV).

    ``controls`` names the controls that hold the codes (default ``codes``), ``coder_map`` a file for
    :func:`read_coder_map`, and ``include_unassigned`` scores annotations by unassigned annotators too.

    Raises ``UserError`` naming the file and task for: an unreadable or truncated file, codes under a
    control other than the ones expected, a task whose admission is not in the sample, an export from
    another Label Studio server or project, and strings that are not codes of the code system (all of them
    listed) unless ``allow_unknown``, which keeps them to be scored as wrong. Valid codes outside the label
    space are scored as wrong and counted, never refused.
    """
    if not paths:
        raise UserError("no coder export given; pass --coders FILE (a Label Studio export, or `bench pull`'s file)")
    ctx = load_context(study)
    ctx.controls, ctx.include_unassigned = tuple(controls), include_unassigned
    archived_map = None
    if coder_map is not None:
        raw_map = _read_bytes(Path(coder_map), "coder map")
        kept = study.archive_export(raw_map, label=f"coder-map-{Path(coder_map).stem}", suffix=".json")
        archived_map = {"path": str(kept.relative_to(study.root)), "sha256": sha256_bytes(raw_map),
                        "source": str(coder_map)}
        ctx.coder_map = read_coder_map(Path(coder_map), raw_map)
    records: list[_Record] = []
    counts = dict.fromkeys(("tasks", "annotations", "scored", "skipped", "cancelled", "no_annotation",
                            "duplicates_replaced", "repeated", "unknown_codes", "insufficient_documentation",
                            "unassigned", "lead_time_not_a_number", "evidence_spans", "evidence_spans_code_not_picked",
                            "regions_other_controls"), 0)
    archived = []
    tasks_seen: set[tuple[int | None, int]] = set()
    for path in paths:
        path = Path(path)
        raw = _read_bytes(path, "coder export")
        kept = study.archive_export(raw, label=path.stem, suffix=path.suffix.lower() or ".json")
        archived.append({"path": str(kept.relative_to(study.root)), "sha256": sha256_bytes(raw), "source": str(path)})
        file_records = _parse_file(path, raw, ctx)
        _select_controls(path, file_records, ctx)
        for record in file_records:
            if record.kind == "no_annotation":
                counts["no_annotation"] += 1
            tasks_seen.add((record.task_id, record.hadm_id))
            records.append(record)
    notes: list[str] = []
    ctx.texts = study_files.read_document_texts(study, {r.hadm_id for r in records if r.regions})
    annotations, unassigned = _resolve(records, ctx, counts, allow_unknown, notes)
    if ctx.coder_map:
        notes.extend(_coder_map_gaps(coder_map, records, annotations, ctx.coder_map))
    arms = sorted({a.arm for a in annotations if a.arm})
    if len(arms) > 1:
        raise UserError(f"{', '.join(str(p) for p in paths)}: the exports mix the {' and '.join(arms)} arms; "
                        "score each arm on its own (`bench pull` writes one merged file per arm)")
    counts["tasks"] = len({hadm for _, hadm in tasks_seen})
    counts["scored"] = len(annotations)
    attribution = Attribution(controls=tuple(sorted(ctx.controls or (CODES_CONTROL,))), coder_map=archived_map,
                              include_unassigned=include_unassigned, study_projects=bool(ctx.projects))
    return CoderExports(annotations=annotations, counts=counts, exports=archived, arm=arms[0] if arms else None,
                        unassigned=unassigned, attribution=attribution, notes=notes)


def _coder_map_gaps(path: Path | None, records: list[_Record], annotations: list[Annotation],
                    coder_map: dict[str, str]) -> list[str]:
    """What the CLI says when the coder map and the exports do not cover each other (a typo in an id, say)."""
    seen = {str(r.coder_id) for r in records if r.coder_id is not None} | {r.email for r in records if r.email}
    unused = sorted(set(coder_map) - seen)
    unnamed = sorted({a.coder for a in annotations if a.coder not in coder_map.values()})
    gaps = []
    if unused:
        match = "entry matches" if len(unused) == 1 else "entries match"
        gaps.append(f"--coder-map {path}: {len(unused)} {match} no annotator of the exports ({', '.join(unused[:5])})")
    if unnamed:
        gaps.append(f"--coder-map {path} does not name {len(unnamed)} annotator(s), shown by e-mail or id: "
                    f"{', '.join(unnamed[:5])}")
    return gaps


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror}); check the path") from exc


# --- parsing -----------------------------------------------------------------------------------------
def _parse_file(path: Path, raw: bytes, ctx: _Context) -> list[_Record]:
    """One raw record per annotation (or per task without one), format detected from the content."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc}); export again from Label Studio as JSON or CSV") from exc
    if path.suffix.lower() == ".csv" or (text.lstrip()[:1] not in ("[", "{") and text.strip()):
        return _min_records(path, _csv_items(path, text, set(ctx.controls) or {CODES_CONTROL}), ctx)
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
    if any("annotations" in item or "completions" in item or "data" in item for item in data):
        return [rec for index, item in enumerate(data) for rec in _parse_full_task(path, item, index, ctx)]
    return _min_records(path, data, ctx)


def _where(path: Path, task_id: int | None, index: int) -> str:
    return f"{path}: task {task_id if task_id is not None else f'#{index + 1}'}"


def _parse_full_task(path: Path, task: dict[str, Any], index: int, ctx: _Context) -> Iterable[_Record]:
    task_id = _int_or_none(task.get("id"))
    where = _where(path, task_id, index)
    tag = task.get("coding_bench") or {}
    project = _int_or_none(task.get("project", tag.get("project")))
    if ctx.projects and project is not None and project not in ctx.projects:
        raise UserError(
            f"{where}: comes from Label Studio project {project}, which is not one of this study's projects "
            f"({', '.join(map(str, sorted(ctx.projects)))}): a different Label Studio server (or project), whose user "
            f"ids are other people; {_FOREIGN_ADVICE}")
    hadm_id = _task_hadm(where, task.get("data") or {}, task_id, ctx)
    own = ctx.projects.get(project) if project is not None else ctx.project_of(task_id)
    arm = tag.get("arm") or (own.arm if own else None)
    annotations = task.get("annotations", task.get("completions")) or []
    if not annotations:
        yield _Record(where, "no_annotation", task_id, hadm_id, project=project)
        return
    for ann in annotations:
        by = ann.get("completed_by")
        coder_id = _int_or_none(by.get("id") if isinstance(by, dict) else by)
        email = by.get("email") if isinstance(by, dict) else by
        email = email.lower() if isinstance(email, str) and "@" in email else None  # one person, any case
        values, regions, insufficient = _values_from_results(where, ann.get("result") or [])
        kind = "cancelled" if ann.get("was_cancelled") or ann.get("skipped") else "scored"  # or "skipped": see below
        yield _Record(where, kind, task_id, hadm_id, project=project, coder_id=coder_id, email=email, values=values,
                      regions=regions, insufficient=insufficient, annotation_id=_int_or_none(ann.get("id")),
                      lead_time=ann.get("lead_time"),
                      updated_at=str(ann.get("updated_at") or ann.get("created_at") or ""), arm=arm)


def _values_from_results(where: str, results: list[Any]) -> tuple[dict[str, Any], list[tuple[str, Any]], bool]:
    """A full-JSON annotation's Choices/Taxonomy values per control name, its regions, and the insufficient flag."""
    values: dict[str, list[Any]] = {}
    regions: list[tuple[str, Any]] = []
    insufficient = False
    for result in results:
        if not isinstance(result, dict):
            raise UserError(f"{where}: an annotation result is not an object; export it again from Label Studio")
        value = result.get("value") or {}
        if _is_region(value):
            regions.append((str(result.get("from_name") or ""), value))
            continue
        if not isinstance(value, dict) or not ({"choices", "taxonomy"} & set(value)):
            continue  # a TextArea comment, a rating: nothing that can hold codes
        name = result.get("from_name") or CODES_CONTROL  # a hand-made result without a name is the picker's
        if name == INSUFFICIENT_CONTROL:
            insufficient = insufficient or bool(value.get("choices"))
            continue
        values.setdefault(name, []).append({k: v for k, v in value.items() if k in ("choices", "taxonomy")})
    return values, regions, insufficient


def _is_region(value: Any) -> bool:
    """Whether an exported value is a region of the note (it has offsets), not a document-level choice.

    >>> _is_region({"start": 3, "end": 6, "taxonomy": [["c", "428", "428.0"]]}), _is_region({"choices": ["x"]})
    (True, False)
    """
    return isinstance(value, dict) and ("start" in value or "end" in value)

def _min_records(path: Path, items: Sequence[dict[str, Any]], ctx: _Context) -> list[_Record]:
    """JSON_MIN (or CSV) records. Keys of a task without annotation are task data, never a control."""
    unannotated = [item for item in items if _no_annotator(item)]
    data_keys = {k for item in unannotated for k, v in item.items() if v not in (None, "")}
    return [_parse_min_record(path, item, index, ctx, data_keys) for index, item in enumerate(items)]


def _no_annotator(item: dict[str, Any]) -> bool:
    return item.get("annotator") in (None, "", {}) and item.get("annotation_id") in (None, "")


def _parse_min_record(path: Path, item: dict[str, Any], index: int, ctx: _Context, data_keys: set[str]) -> _Record:
    task_id = _int_or_none(item.get("id"))
    where = _where(path, task_id, index)
    hadm_id = _task_hadm(where, item, task_id, ctx)
    own = ctx.project_of(task_id)
    project, arm = (own.id, own.arm) if own else (None, None)
    if _no_annotator(item):
        return _Record(where, "no_annotation", task_id, hadm_id, project=project)
    annotator = item.get("annotator")
    email = annotator.lower() if isinstance(annotator, str) and "@" in annotator else None
    values = {k: v for k, v in item.items()
              if k not in _MIN_FIELDS and k not in data_keys and v not in (None, "", [], {})}
    regions = [(k, part) for k, v in values.items() for part in (v if isinstance(v, list) else [v]) if _is_region(part)]
    values = {k: v for k, v in values.items() if not any(name == k for name, _ in regions)}
    return _Record(where, "scored", task_id, hadm_id, project=project, coder_id=_int_or_none(annotator), email=email,
                   values=values, regions=regions, insufficient=bool(item.get(INSUFFICIENT_CONTROL)),
                   annotation_id=_int_or_none(item.get("annotation_id")), lead_time=item.get("lead_time"),
                   updated_at=str(item.get("updated_at") or item.get("created_at") or ""), arm=arm)


def _csv_items(path: Path, text: str, code_controls: set[str]) -> list[dict[str, Any]]:
    """CSV rows as JSON_MIN records: a cell that holds a JSON object or list is decoded.

    A cell that only starts like JSON is text (a note's "[**2151-7-16**]"), except in a code control's
    column, where it is a damaged export.
    """
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
    items = []
    for index, row in enumerate(rows):
        item: dict[str, Any] = dict(row)
        for key, cell in row.items():
            value = (cell or "").strip()
            if key in _MIN_FIELDS or value[:1] not in ("{", "["):
                continue
            try:
                item[key] = json.loads(value)
            except json.JSONDecodeError:
                if key in code_controls:
                    raise UserError(f"{path}: row {index + 2}: the {key} cell is not valid JSON; export it again"
                                    ) from None
        items.append(item)
    return items


_FOREIGN_ADVICE = ("score another site's export in a study without Label Studio projects of its own "
                   "(one where `bench setup-labelstudio` was not run), or export from this study's projects "
                   "(`bench pull`)")


def _select_controls(path: Path, records: list[_Record], ctx: _Context) -> None:
    """Check which controls hold the codes in one file and fill each record's codes from the wanted ones.

    Without ``--control`` only ``codes`` is read, and a file whose Choices/Taxonomy values sit under any
    other name is refused with the name(s) and the flag, since reading ``codes`` alone would score those
    annotations as empty. A cancelled annotation without codes is one the coder skipped.
    """
    found = sorted({name for rec in records for name, value in rec.values.items() if _holds_codes(value)})
    wanted = set(ctx.controls) or {CODES_CONTROL}
    if ctx.controls:
        present = {name for rec in records for name in rec.values}
        if found and not wanted & present:
            raise UserError(f"{path}: no annotation has a control {' or '.join(sorted(wanted))} (--control); the "
                            f"Choices/Taxonomy results sit under {', '.join(found)}: pass --control with that name")
    else:
        others = [name for name in found if name != CODES_CONTROL]
        if others and CODES_CONTROL in found:
            raise UserError(f"{path}: Choices/Taxonomy results sit under the control 'codes' and also under "
                            f"{', '.join(repr(n) for n in others)}; say which hold codes: --control codes, plus "
                            f"--control {others[0]} if that holds codes too")
        if len(others) == 1:
            raise UserError(f"{path}: the codes sit under the control {others[0]!r}, not 'codes' (a project that "
                            f"`bench setup-labelstudio` did not make); pass --control {others[0]} to read them")
        if others:
            raise UserError(f"{path}: Choices/Taxonomy results sit under the controls "
                            f"{', '.join(repr(n) for n in others)}, none named 'codes'; pass --control NAME for each "
                            "control that holds codes (repeat --control)")
    for rec in records:
        rec.codes = [code for name in sorted(wanted & set(rec.values))
                     for code in _codes_from_value(rec.where, rec.values[name])]
        if rec.kind == "cancelled" and not rec.codes:
            rec.kind = "skipped"


def _holds_codes(value: Any) -> bool:
    """Whether an exported control value is a Choices/Taxonomy value (a bare string only when shaped like a code).

    >>> _holds_codes({"choices": ["428.0"]}), _holds_codes([{"taxonomy": [["x", "428", "428.0"]]}])
    (True, True)
    >>> _holds_codes("4280"), _holds_codes("428.0 Congestive heart failure"), _holds_codes("a hard one")
    (True, True, False)
    """
    if isinstance(value, list):
        return any(_holds_codes(part) for part in value)
    if isinstance(value, dict):
        return bool({"choices", "taxonomy"} & set(value))
    if isinstance(value, str) and value.split():
        for version in codesystems.VERSIONS:  # the shape of an ICD-9 or an ICD-10 code
            try:
                codesystems.normalize(value.split()[0], version)
            except ValueError:
                continue
            return True
    return False


def _codes_from_value(where: str, value: Any) -> list[str]:
    """Codes from a control's value: a string, ``{"choices": [...]}``, ``{"taxonomy": [[...]]}`` or a list of those.

    A taxonomy path of any depth gives its leaf (ICD-9's picker has three levels, ICD-10's four).

    >>> _codes_from_value("t", {"taxonomy": [["390-459 Circulatory", "428", "428.0"],
    ...                                      ["I00-I99 Circulatory", "I30-I5A Other heart", "I50", "I50.9"]]})
    ['428.0', 'I50.9']
    """
    if value in (None, "", {}):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [code for part in value for code in _codes_from_value(where, part)]
    if isinstance(value, dict):
        out = [str(c) for c in value.get("choices", [])]
        for path in value.get("taxonomy", []):
            leaf = path[-1] if isinstance(path, list) and path else path
            out.append(str(leaf))
        return out
    raise UserError(f"{where}: cannot read codes from {str(value)[:60]!r}; expected Choices or Taxonomy results")


def _task_hadm(where: str, data: dict[str, Any], task_id: int | None, ctx: _Context) -> int:
    """The admission of a task (its ``data``), checked against the study's setup id and task map (when it has
    projects) and the sample."""
    hadm_id = _int_or_none(data.get("hadm_id"))
    if hadm_id is None:
        raise UserError(f"{where}: no hadm_id in the task data; every task must carry its admission's hadm_id "
                        "(`bench setup-labelstudio` puts it there; another site's tasks need a hadm_id field)")
    if ctx.projects and ctx.setup_id and data.get(SETUP_ID_FIELD) != ctx.setup_id:
        found = data.get(SETUP_ID_FIELD)
        raise UserError(f"{where}: comes from a different Label Studio server (or another setup of this study): its "
                        f"task {task_id} carries {f'setup_id {found}' if found else 'no setup_id'}, and this study's "
                        f"tasks carry {ctx.setup_id} (labelstudio/projects.json), so its user ids may be other people; "
                        f"{_FOREIGN_ADVICE}")
    if ctx.projects and task_id is not None:
        mapped = ctx.task_map.get(task_id)
        if mapped is not None and mapped != hadm_id:
            raise UserError(f"{where}: comes from a different Label Studio server: its task {task_id} holds hadm_id "
                            f"{hadm_id}, but this study's task {task_id} (labelstudio/projects.json) is hadm_id "
                            f"{mapped}, so its user ids are other people; {_FOREIGN_ADVICE}")
        if mapped is None:
            raise UserError(f"{where}: task {task_id} (hadm_id {hadm_id}) is not a task of this study's Label Studio "
                            f"projects (labelstudio/projects.json): a different Label Studio server (or project); "
                            f"{_FOREIGN_ADVICE}")
    if hadm_id not in ctx.sample:
        raise UserError(f"{where}: hadm_id {hadm_id} is not in the study's sample ({len(ctx.sample)} admissions); "
                        "export from the project made for this study, or use --study")
    return hadm_id


# --- merging -----------------------------------------------------------------------------------------
def _resolve(records: list[_Record], ctx: _Context, counts: dict[str, int], allow_unknown: bool,
             notes: list[str]) -> tuple[list[Annotation], list[UnassignedAnnotator]]:
    """Normalise codes, name coders, set aside unassigned annotators, check unknown codes, and keep the latest
    annotation per coder and task. Returns the annotations and the unassigned annotators."""
    unknown_by_task: list[str] = []
    seen_ids: set[tuple[int | None, int]] = set()
    latest: dict[tuple[str, int], Annotation] = {}
    unassigned: dict[str, tuple[int | None, str | None, list[_Record]]] = {}  # label -> id, email, annotations
    bad_lead_times: list[str] = []
    for rec in records:
        if rec.kind == "no_annotation":
            continue
        if rec.annotation_id is not None:
            key = (rec.task_id, rec.annotation_id)
            if key in seen_ids:
                counts["repeated"] += 1
                continue
            seen_ids.add(key)
        counts["annotations"] += 1
        account = _account_of(rec, ctx)
        coder_id = rec.coder_id if rec.coder_id is not None else (account.id if account else None)
        email = (account.email if account else None) or rec.email
        label = email or (f"user {coder_id}" if coder_id is not None else "unknown annotator")
        assigned = _assigned(rec, account, ctx)
        if not assigned:
            counts["unassigned"] += 1
            unassigned.setdefault(label, (coder_id, email, []))[2].append(rec)
            if not ctx.include_unassigned:
                continue
        if rec.kind in ("skipped", "cancelled"):
            counts[rec.kind] += 1
            continue
        codes, unknown, outside = _normalise_codes(rec.codes, ctx.code_system)
        spans = _evidence_spans(rec, ctx, counts)
        evidence_codes, evidence_unknown, _ = _normalise_codes([code for code, _, _ in spans], ctx.code_system)
        unknown = tuple(sorted({*unknown, *(c for c in evidence_unknown if c not in codes)}))
        if unknown:
            unknown_by_task.append(f"{rec.where}: {', '.join(unknown)}")
            counts["unknown_codes"] += len(unknown)
        evidence: dict[str, list[tuple[int, int]]] = {}
        for code, start, end in spans:
            dotted = normalise_code(code, ctx.code_system)
            if dotted in codes:
                evidence.setdefault(dotted, []).append((start, end))
            else:
                counts["evidence_spans_code_not_picked"] += 1
        counts["insufficient_documentation"] += int(rec.insufficient)
        lead_time = _seconds(rec.lead_time)
        if lead_time is None and rec.lead_time not in (None, ""):
            counts["lead_time_not_a_number"] += 1
            bad_lead_times.append(f"{rec.where}: {str(rec.lead_time)[:30]!r}")
        mapped = _mapped_name(coder_id, email, ctx)
        ann = Annotation(
            source=rec.where.split(": ")[0], task_id=rec.task_id, hadm_id=rec.hadm_id, coder=mapped or label,
            coder_id=coder_id, annotation_id=rec.annotation_id,
            codes=codes, unknown=unknown, lead_time=lead_time, updated_at=rec.updated_at,
            insufficient_documentation=rec.insufficient, simulated=bool(account and account.simulated),
            coder_name=mapped or (account.name if account else None), arm=rec.arm, assigned=assigned, email=email,
            outside_label_space=outside, evidence={c: tuple(sorted(set(v))) for c, v in sorted(evidence.items())},
        )
        key2 = (ann.coder, ann.hadm_id)
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
    kept = [a for a in latest.values() if a.evidence]
    counts["evidence_spans"] = sum(len(v) for a in kept for v in a.evidence.values())
    counts["annotations_with_evidence"] = len(kept)
    if counts["evidence_spans_code_not_picked"]:
        notes.append(f"{counts['evidence_spans_code_not_picked']} evidence span(s) carry a code the coder did not pick "
                     f"(a proposed code removed, or a slip): left out of the evidence scores")
    if counts["regions_other_controls"]:
        notes.append(f"{counts['regions_other_controls']} highlighted region(s) sit under controls other than "
                     f"'{EVIDENCE_CONTROL}': not read as evidence")
    if bad_lead_times:
        notes.append(f"{len(bad_lead_times)} annotation(s) have a lead_time that is not a number of seconds "
                     f"(first: {bad_lead_times[0]}); counted as missing in the coders' throughput")
    listed = [UnassignedAnnotator(annotator=label, id=user, email=mail, n_annotations=len(recs),
                                  projects=tuple(sorted({r.project for r in recs if r.project is not None})))
              for label, (user, mail, recs) in sorted(unassigned.items())]
    if listed:
        who = ", ".join(f"{u.annotator} ({u.n_annotations})" for u in listed)
        notes.append(f"{counts['unassigned']} annotation(s) by unassigned annotators, not the coder of the study's "
                     f"project they sit in: {who}; " + ("scored, as --include-unassigned asks" if ctx.include_unassigned
                                                       else "not scored (--include-unassigned scores them)"))
    return sorted(latest.values(), key=lambda a: (a.hadm_id, a.coder)), listed


def _evidence_spans(rec: _Record, ctx: _Context, counts: dict[str, int]) -> list[tuple[str, int, int]]:
    """``(raw code, start, end)`` of each region of the ``evidence`` control, checked against the document text."""
    text = ctx.texts.get(rec.hadm_id, "")
    out = []
    for name, value in rec.regions:
        if name != EVIDENCE_CONTROL:
            counts["regions_other_controls"] += 1
            continue
        start, end = value.get("start"), value.get("end")
        if isinstance(start, bool) or not isinstance(start, int) or isinstance(end, bool) or not isinstance(end, int):
            raise UserError(f"{rec.where}: an evidence region has start {start!r}, end {end!r}, not character offsets "
                            "into the note (a <Text> region); export the project made by `bench setup-labelstudio`")
        if not 0 <= start < end <= len(text):
            raise UserError(f"{rec.where}: an evidence region [{start}, {end}) lies outside the note's {len(text)} "
                            "characters; export from this study's projects")
        shown = value.get("text")
        if isinstance(shown, str) and shown != text[start:end]:
            raise UserError(f"{rec.where}: the evidence region [{start}, {end}) holds {shown[:40]!r}, but the note has "
                            f"{text[start:end][:40]!r} there: another text, or offsets counted another way")
        codes = _codes_from_value(rec.where, {k: v for k, v in value.items() if k in ("taxonomy", "choices")})
        codes += [str(label) for label in value.get("labels") or []]
        if len(codes) != 1:
            raise UserError(f"{rec.where}: the evidence region [{start}, {end}) carries {len(codes)} codes "
                            f"({', '.join(codes) or 'none'}); each highlight carries exactly one code")
        out.append((codes[0].split()[0], start, end))
    return out


def _account_of(rec: _Record, ctx: _Context) -> Coder | None:
    """The study's account behind an annotation: by the user id (ids of this study's server), else by e-mail."""
    by_id = ctx.accounts_by_id.get(rec.coder_id) if rec.coder_id is not None else None
    return by_id or (ctx.accounts_by_email.get(rec.email) if rec.email else None)


def _assigned(rec: _Record, account: Coder | None, ctx: _Context) -> bool:
    """Whether the annotator is a coder of the study, and the one its project was made for.

    In a study without projects of its own every annotator is a coder. A project of unknown origin
    (a hand-made projects.json without task ids) only needs the annotator to be a study coder.
    """
    if not ctx.projects:
        return True
    if account is None:
        return False
    own = ctx.projects.get(rec.project) if rec.project is not None else ctx.project_of(rec.task_id)
    if own is None:
        return True
    return ((own.coder_id is not None and own.coder_id == account.id)
            or (own.coder is not None and own.coder == account.email))


def _mapped_name(coder_id: int | None, email: str | None, ctx: _Context) -> str | None:
    """The ``--coder-map`` name of an annotator, looked up by user id, then by e-mail."""
    by_id = ctx.coder_map.get(str(coder_id)) if coder_id is not None else None
    return by_id or (ctx.coder_map.get(email) if email else None)


def _seconds(value: Any) -> float | None:
    """A lead time in seconds, or None when it is missing or not a finite number.

    >>> _seconds(120.5), _seconds("90"), _seconds("two minutes"), _seconds(None), _seconds("nan")
    (120.5, 90.0, None, None, None)
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _order(ann: Annotation) -> tuple[str, int]:
    return ann.updated_at, ann.annotation_id or 0


def _normalise_codes(raw: list[str], code_system: ValidCodes) -> tuple[tuple[str, ...], ...]:
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


def normalise_code(token: str, code_system: ValidCodes) -> str:
    """The dotted form of one code (coders' and models' alike).

    An undotted code can read as a diagnosis or a procedure ("6751" is 675.1 or 67.51; 1,593 undotted CMS v32
    codes are valid both ways): the reading in the label space wins, then the reading in the code system,
    diagnosis first, else ``benchmark.codesystems.normalize``'s rule for the study's ICD version. A string
    that is no code comes back uppercased.

    >>> codes = ValidCodes(frozenset({"675.1", "67.51", "428.0", "42.80"}), frozenset({"67.51", "428.0"}))
    >>> normalise_code("6751", codes), normalise_code("4280", codes), normalise_code("v4581", codes)
    ('67.51', '428.0', 'V45.81')
    >>> normalise_code("67.51", codes), normalise_code("zzz", codes)
    ('67.51', 'ZZZ')
    """
    if "." not in token:
        readings = []
        for kind in codesystems.KINDS:
            try:
                readings.append(codesystems.get(code_system.version, kind).normalize(token))
            except ValueError:
                continue
        for catalogue in (code_system.label_space, code_system.codes):
            found = next((reading for reading in readings if reading in catalogue), None)
            if found is not None:
                return found
    try:
        return codesystems.normalize(token, code_system.version)
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
