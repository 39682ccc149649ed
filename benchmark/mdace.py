"""MDACE (Cheng et al., ACL 2023; github.com/3mcloud/MDACE): professional coders' codes and evidence spans.

``bench import-mdace DIR`` reads the user's clone of the MDACE repository (nothing of MDACE is bundled):
one JSON file per chart, ``data/Inpatient/<ICD-9|ICD-10>/1.0/<hadm_id>-<ICD-9|ICD-10>.json``::

    {"hadm_id": 100197, "comment": "", "notes": [{"note_id": 25762, "category": "Discharge summary",
     "description": "Report", "annotations": [{"begin": 374, "end": 377, "code": "431",
     "code_system": "ICD-9-CM", "description": "Intracerebral hemorrhage", "type": "MapType.APPROX"}]}]}

``note_id`` is the NOTEEVENTS ROW_ID and ``begin``/``end`` index that row's TEXT. The coders coded in ICD-10;
the ICD-9 files hold mapped codes, and ``type`` says how (``Human``, or ``MapType.EXACT``, ``APPROX``,
``MULTI``, ``MULTI_DESC``, ``NO_ENTRY``). Files made by MDACE's ``inject-note-text.py`` also carry the note
``text``; when present it is checked against the study's text.

How a chart becomes study data:

- the chart is the study's admission ``hadm_id``; charts not in the study, and charts outside its test split,
  are counted (the second are kept: MDACE's 302 inpatient charts are all in the Mullenbach test split);
- a note is placed in the study's document through ``note_map.parquet`` (``bench prepare``): the document
  joins a discharge summary and its addenda, so a span's document offsets are the note's start plus its own;
  spans in notes that are not in the document (radiology, physician notes, ...) keep their codes but get no
  document offsets, and are counted;
- a span whose end lies past its note's end, or whose text differs from the note text the file carries,
  no longer fits the study's text: it is counted and gets no document offsets;
- codes: ``ICD-9-CM`` codes are diagnoses and ``ICD-9-PCS`` codes procedures, dotted or not
  (``benchmark.icd.normalize``); a code the study's code list lacks is kept, flagged and counted (it scores
  as a wrong code), a malformed one likewise; a code of another code system than the folder's
  (``ICD-10-CM`` in an ICD-9 file) is kept, flagged and left out of scoring.

Bad input (not JSON, a missing field, a negative offset, an unknown ``type`` or ``code_system``, a note that
belongs to another admission) is a ``UserError`` naming the file. Every file read is archived into the study
(one zip per import, ``Study.archive_export``) before it is parsed. Outputs: ``mdace_spans.parquet`` (one
row per annotation) and ``mdace_charts.parquet`` (one row per chart), made by this module and written and
read through ``benchmark.study_files``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import icd, study_files, valid_codes
from benchmark.errors import UserError
from benchmark.io import sha256_bytes
from benchmark.mimic import DISCHARGE_SUMMARY
from benchmark.study import Study, fingerprint
from benchmark.study_files import MDACE_CHARTS_SCHEMA, MDACE_SPANS_SCHEMA

VERSIONS = ("ICD-9", "ICD-10")
# The code systems of each folder, and the study system ("dx"/"px") of the ones this study can score.
CODE_SYSTEMS = {"ICD-9": ("ICD-9-CM", "ICD-9-PCS"), "ICD-10": ("ICD-10-CM", "ICD-10-PCS")}
STUDY_SYSTEM = {"ICD-9-CM": "dx", "ICD-9-PCS": "px"}
HUMAN = "Human"
MAPPED = ("MapType.EXACT", "MapType.APPROX", "MapType.MULTI", "MapType.MULTI_DESC", "MapType.NO_ENTRY")
TYPES = (HUMAN, *MAPPED)
TYPE_FILTERS = {"human": (HUMAN,), "mapped": MAPPED, "all": TYPES}
_FILE_NAME = re.compile(r"^(\d+)-(ICD-9|ICD-10)\.json$")
LISTED = 10  # examples named in the printed summary


def known_codes(study: Study) -> frozenset[str]:
    """The codes an MDACE code is checked against: the study's code system (every valid code, not only the
    label space), the same catalogue that validates coder codes."""
    return valid_codes.read(study).codes


def locate_files(directory: Path, version: str) -> list[Path]:
    """The chart files of ``version`` under a clone of MDACE (or its ``Inpatient`` folder, or the folder itself)."""
    directory = Path(directory).expanduser().resolve()
    for folder in (directory / "data" / "Inpatient" / version / "1.0", directory / "Inpatient" / version / "1.0",
                   directory):
        files = sorted(p for p in folder.glob(f"*-{version}.json") if p.is_file()) if folder.is_dir() else []
        if files:
            return files
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; pass the folder of a clone of github.com/3mcloud/MDACE")
    raise UserError(f"{directory}: no data/Inpatient/{version}/1.0/*-{version}.json files; pass the folder of a "
                    "clone of github.com/3mcloud/MDACE (or choose the other --version)")


@dataclass
class _StudyText:
    """What charts are matched against: the study's admissions, their texts and where each note lies."""

    split: dict[int, str]
    text: dict[int, str]
    notes: dict[int, tuple[int, int, int]]  # note_id -> (hadm_id, begin, end) in the document
    known: frozenset[str]


def _study_text(study: Study) -> _StudyText:
    study.require("documents", "codes", "note_map")
    docs = study_files.read_documents(study, ["hadm_id", "split", "text"])
    notes = study_files.read_note_map(study)
    return _StudyText(
        split=dict(zip(docs["hadm_id"].astype(int), docs["split"])),
        text=dict(zip(docs["hadm_id"].astype(int), docs["text"])),
        notes={int(n): (int(h), int(b), int(e)) for h, n, b, e in notes[["hadm_id", "note_id", "begin", "end"]]
               .itertuples(index=False)},
        known=known_codes(study))


def import_mdace(study: Study, directory: Path, version: str = "ICD-9", force: bool = False) -> dict[str, Any]:
    """Archive, parse, match and store MDACE's inpatient charts; return (and record) what was done."""
    if version not in VERSIONS:
        raise UserError(f"--version {version}: choose one of {', '.join(VERSIONS)}")
    dataset = (study.step("prepare") or {}).get("dataset", "MIMIC-III")
    if dataset != "MIMIC-III":  # MDACE's charts are MIMIC-III HADM_IDs and its spans index NOTEEVENTS rows
        raise UserError(f"import-mdace: MDACE annotates MIMIC-III notes, and this study was prepared from {dataset}, "
                        f"so none of its charts can be placed; run it on a study prepared from MIMIC-III")
    if version != "ICD-9":
        raise UserError("--version ICD-10: this study's references are ICD-9-CM (MIMIC-III), so MDACE's ICD-10 "
                        "codes cannot be scored against them; import --version ICD-9 (the codes mapped to ICD-9)")
    ctx = _study_text(study)
    files = locate_files(directory, version)
    raw = {path: path.read_bytes() for path in files}
    archive = study.archive_export(_zip(raw), f"mdace-{version}", suffix=".zip")
    prepare = (study.step("prepare") or {}).get("fingerprint", "")
    stamp = fingerprint({"files": sha256_bytes("".join(sorted(sha256_bytes(b) for b in raw.values())).encode()),
                         "version": version, "prepare": prepare})
    study.check_inputs("import_mdace", stamp, force, "MDACE files")

    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    span_rows: list[dict[str, Any]] = []
    chart_rows: list[dict[str, Any]] = []
    seen: dict[int, Path] = {}
    for path, data in raw.items():
        chart = _parse_chart(path, data, version)
        if chart["hadm_id"] in seen:
            raise UserError(f"{path}: chart {chart['hadm_id']} is also in {seen[chart['hadm_id']]}; keep one file per chart")
        seen[chart["hadm_id"]] = path
        rows, status = _match_chart(path, chart, version, ctx, counts, examples)
        span_rows += rows
        chart_rows.append({"hadm_id": chart["hadm_id"], "file": path.name, "sha256": sha256_bytes(data),
                           "comment": chart["comment"], "status": status, "n_notes": len(chart["notes"]),
                           "n_annotations": sum(len(n["annotations"]) for n in chart["notes"])})
    spans = pd.DataFrame(span_rows, columns=list(MDACE_SPANS_SCHEMA)).astype(MDACE_SPANS_SCHEMA)
    spans = spans.sort_values(["hadm_id", "note_id", "begin", "end", "code"], ignore_index=True)
    charts = pd.DataFrame(chart_rows, columns=list(MDACE_CHARTS_SCHEMA)).astype(MDACE_CHARTS_SCHEMA)
    charts = charts.sort_values("hadm_id", ignore_index=True)
    study_files.write_mdace(study, spans, charts)
    summary = _summary(charts, spans, counts, examples)
    study.record_step("import_mdace", {
        "fingerprint": stamp, "inputs": {"directory": str(Path(directory).expanduser().resolve()), "version": version,
                                         "files": len(files), "archive": archive.name},
        "rules": {"codes": "ICD-9-CM -> dx, ICD-9-PCS -> px, dotted by benchmark.icd.normalize; checked against "
                           "the study's code system", "offsets": "note begin from note_map.parquet + span offset"},
        "outputs": study.file_hashes(study.mdace_spans, study.mdace_charts), "summary": summary,
    })
    return summary


def _zip(raw: dict[Path, bytes]) -> bytes:
    """The files read, in one deterministic zip (fixed dates), so the same files archive to the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in raw.items():
            zf.writestr(zipfile.ZipInfo(path.name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def _parse_chart(path: Path, data: bytes, version: str) -> dict[str, Any]:
    """One chart file, validated field by field (every problem is a UserError naming the file)."""
    name = _FILE_NAME.match(path.name)
    try:
        chart = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); restore the file from the MDACE repository") from None
    if not isinstance(chart, dict):
        raise UserError(f"{path}: expected a JSON object with hadm_id, comment and notes")
    hadm_id = _integer(path, chart, "hadm_id", "the chart")
    if name and int(name.group(1)) != hadm_id:
        raise UserError(f"{path}: hadm_id {hadm_id} does not match the file name; restore the file")
    comment = chart.get("comment", "")
    if not isinstance(comment, str):
        raise UserError(f"{path}: comment must be text, got {type(comment).__name__}")
    notes = chart.get("notes")
    if not isinstance(notes, list):
        raise UserError(f"{path}: expected a list under 'notes'")
    parsed = []
    for i, note in enumerate(notes):
        where = f"note {i + 1}"
        if not isinstance(note, dict):
            raise UserError(f"{path}: {where} is not an object")
        note_id = _integer(path, note, "note_id", where)
        where = f"note_id {note_id}"
        category = note.get("category")
        annotations = note.get("annotations")
        if not isinstance(category, str) or not isinstance(annotations, list):
            raise UserError(f"{path}: {where} needs a text 'category' and a list of 'annotations'")
        text = note.get("text")
        parsed.append({"note_id": note_id, "category": category, "text": text if isinstance(text, str) else None,
                       "annotations": [_parse_annotation(path, where, j, a, version)
                                       for j, a in enumerate(annotations)]})
    return {"hadm_id": hadm_id, "comment": comment.strip(), "notes": parsed}


def _parse_annotation(path: Path, where: str, index: int, item: Any, version: str) -> dict[str, Any]:
    where = f"{where} annotation {index + 1}"
    if not isinstance(item, dict):
        raise UserError(f"{path}: {where} is not an object")
    begin, end = _integer(path, item, "begin", where), _integer(path, item, "end", where)
    if begin < 0 or end < begin:
        raise UserError(f"{path}: {where} has begin {begin}, end {end}; offsets must satisfy 0 <= begin <= end")
    code, system, kind = item.get("code"), item.get("code_system"), item.get("type")
    if not isinstance(code, str) or not code.strip():
        raise UserError(f"{path}: {where} has no code")
    known_systems = {s for systems in CODE_SYSTEMS.values() for s in systems}
    if system not in known_systems:
        raise UserError(f"{path}: {where} has code_system {system!r}; MDACE uses {', '.join(sorted(known_systems))}")
    if kind not in TYPES:
        raise UserError(f"{path}: {where} has type {kind!r}; MDACE's types are {', '.join(TYPES)}")
    description = item.get("description", "")
    covered = item.get("covered_text")
    return {"begin": begin, "end": end, "code": code.strip(), "code_system": system, "type": kind,
            "description": description if isinstance(description, str) else "",
            "covered_text": covered if isinstance(covered, str) else None}


def _integer(path: Path, item: dict[str, Any], key: str, where: str) -> int:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{path}: {where} needs an integer '{key}', got {value!r}")
    return value


def study_code(code: str, code_system: str) -> tuple[str, str | None]:
    """``(dotted code, "dx" | "px")`` of an ICD-9 code, or ``(code as given, None)`` when it cannot be read.

    >>> study_code("4280", "ICD-9-CM"), study_code("428.0", "ICD-9-CM"), study_code("3615", "ICD-9-PCS")
    (('428.0', 'dx'), ('428.0', 'dx'), ('36.15', 'px'))
    >>> study_code("I50.9", "ICD-10-CM"), study_code("42X", "ICD-9-CM")
    (('I50.9', None), ('42X', None))
    """
    system = STUDY_SYSTEM.get(code_system)
    if system is None:
        return code.upper(), None
    try:
        return icd.normalize(code, system), system
    except ValueError:
        return code.upper(), None


def _match_chart(path: Path, chart: dict[str, Any], version: str, ctx: _StudyText, counts: Counter[str],
                 examples: dict[str, list[str]]) -> tuple[list[dict[str, Any]], str]:
    """The chart's span rows (empty when the chart is not in the study) and its status."""
    hadm_id = chart["hadm_id"]
    n_spans = sum(len(n["annotations"]) for n in chart["notes"])

    def tally(kind: str, example: str) -> None:
        counts[kind] += 1
        if len(examples.setdefault(kind, [])) < LISTED:
            examples[kind].append(example)

    counts["charts"] += 1
    counts["spans"] += n_spans
    if hadm_id not in ctx.split:
        tally("charts_not_in_study", str(hadm_id))
        return [], "not_in_study"
    status = ctx.split[hadm_id]
    counts["charts_matched"] += 1
    if status != "test":
        tally("charts_outside_test_split", f"{hadm_id} ({status})")
    if not any(n["category"] == DISCHARGE_SUMMARY for n in chart["notes"]):
        tally("charts_without_discharge_summary", str(hadm_id))
    rows = []
    for n in chart["notes"]:
        placed = ctx.notes.get(n["note_id"])
        if placed is not None and placed[0] != hadm_id:
            raise UserError(f"{path}: note_id {n['note_id']} belongs to admission {placed[0]} in this study, not to "
                            f"chart {hadm_id}; the file does not match this MIMIC-III copy")
        if placed is None and n["category"] == DISCHARGE_SUMMARY and n["annotations"]:
            # A summary the study left out (ISERROR, empty): its spans cannot be placed.
            tally("discharge_summary_notes_not_in_document", f"{hadm_id}/{n['note_id']}")
        for a in n["annotations"]:
            code, system = study_code(a["code"], a["code_system"])
            scored = a["code_system"] in CODE_SYSTEMS[version] and system is not None
            if a["code_system"] not in CODE_SYSTEMS[version]:
                tally("codes_of_another_code_system", f"{hadm_id}: {a['code']} ({a['code_system']})")
            elif system is None:
                tally("malformed_codes", f"{hadm_id}: {a['code']!r} ({a['code_system']})")
            known = scored and code in ctx.known
            if scored and not known:
                tally("unknown_codes", f"{hadm_id}: {code}")
            doc_begin = doc_end = None
            if placed is None:
                if n["category"] != DISCHARGE_SUMMARY:
                    counts["spans_outside_discharge_summaries"] += 1
            elif not _fits(a, n, placed, ctx.text[hadm_id]):
                tally("spans_not_fitting_text", f"{hadm_id}/{n['note_id']} [{a['begin']}, {a['end']})")
            else:
                doc_begin, doc_end = placed[1] + a["begin"], placed[1] + a["end"]
                counts["spans_placed"] += 1
            rows.append({"hadm_id": hadm_id, "note_id": n["note_id"], "category": n["category"], "code": code,
                         "system": system, "code_system": a["code_system"], "description": a["description"],
                         "type": a["type"], "begin": a["begin"], "end": a["end"], "doc_begin": doc_begin,
                         "doc_end": doc_end, "known": known, "scored": scored})
    return rows, status


def _fits(annotation: dict[str, Any], note: dict[str, Any], placed: tuple[int, int, int], text: str) -> bool:
    """Whether the span lies inside the study's note and matches the text the file carries (if any)."""
    _, begin, end = placed
    if annotation["end"] > end - begin:
        return False
    covered = text[begin + annotation["begin"]:begin + annotation["end"]]
    if note["text"] is not None and note["text"][annotation["begin"]:annotation["end"]] != covered:
        return False
    return annotation["covered_text"] is None or annotation["covered_text"] == covered


def _summary(charts: pd.DataFrame, spans: pd.DataFrame, counts: Counter[str],
             examples: dict[str, list[str]]) -> dict[str, Any]:
    comments = Counter(c for c in charts.loc[charts["status"] != "not_in_study", "comment"] if c)
    return {
        "counts": {key: int(counts.get(key, 0)) for key in (
            "charts", "charts_matched", "charts_not_in_study", "charts_outside_test_split",
            "charts_without_discharge_summary", "spans", "spans_placed", "spans_outside_discharge_summaries",
            "discharge_summary_notes_not_in_document", "spans_not_fitting_text", "unknown_codes", "malformed_codes",
            "codes_of_another_code_system")},
        "types": {str(k): int(v) for k, v in spans["type"].value_counts().sort_index().items()},
        "code_systems": {str(k): int(v) for k, v in spans["code_system"].value_counts().sort_index().items()},
        "categories": {str(k): int(v) for k, v in spans["category"].value_counts().sort_index().items()},
        "comments": {"charts_with_comment": int(sum(comments.values())),
                     "kinds": [{"comment": c, "charts": n} for c, n in sorted(comments.items(), key=lambda x: (-x[1], x[0]))]},
        "examples": examples,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The printed report of an import."""
    c = summary["counts"]
    lines = [
        f"MDACE: {c['charts']} charts read, {c['charts_matched']} matched to study admissions, "
        f"{c['charts_not_in_study']} not in the study, {c['charts_outside_test_split']} outside its test split",
        f"spans: {c['spans']} read, {c['spans_placed']} placed in discharge summaries, "
        f"{c['spans_outside_discharge_summaries']} in other notes (codes kept, no offsets), "
        f"{c['discharge_summary_notes_not_in_document']} summary notes missing from the document, "
        f"{c['spans_not_fitting_text']} whose text no longer fits",
        f"codes: {c['unknown_codes']} not in the code system (scored as wrong), {c['malformed_codes']} malformed, "
        f"{c['codes_of_another_code_system']} of another code system (not scored)",
        "types: " + ", ".join(f"{k} {v}" for k, v in summary["types"].items()),
        f"charts without a discharge summary: {c['charts_without_discharge_summary']}; "
        f"charts with a comment: {summary['comments']['charts_with_comment']}",
    ]
    for kind in summary["comments"]["kinds"][:5]:
        lines.append(f"  comment x{kind['charts']}: {kind['comment'][:90]}")
    for kind, items in summary["examples"].items():
        lines.append(f"  {kind.replace('_', ' ')}: {', '.join(items)}")
    return "\n".join(lines)


def read_spans(study: Study, types: str = "all") -> pd.DataFrame:
    """The imported spans whose ``type`` passes ``--mdace-types`` (``human``, ``mapped`` or ``all``)."""
    if types not in TYPE_FILTERS:
        raise UserError(f"--mdace-types {types}: choose one of {', '.join(TYPE_FILTERS)}")
    if not study.mdace_spans.exists():
        raise UserError(f"{study.mdace_spans} does not exist: run `bench import-mdace DIR` on this study first")
    spans = study_files.read_mdace_spans(study)
    return spans[spans["type"].isin(TYPE_FILTERS[types])].reset_index(drop=True)


def summary_evidence(study: Study, types: str = "all") -> dict[int, list[tuple[int, int, str]]]:
    """MDACE's gold evidence per test-split chart: ``(doc_begin, doc_end, code)`` of the scored spans of
    ``types`` placed in the study's document (spans in other notes have no place there); every test-split
    chart is a key, also one without such a span."""
    spans = read_spans(study, types)
    charts = study_files.read_mdace_charts(study)
    gold: dict[int, list[tuple[int, int, str]]] = {int(h): [] for h in charts.loc[charts["status"] == "test", "hadm_id"]}
    placed = spans[spans["scored"] & spans["doc_begin"].notna()]
    for h, b, e, c in placed[["hadm_id", "doc_begin", "doc_end", "code"]].itertuples(index=False):
        if int(h) in gold:
            gold[int(h)].append((int(b), int(e), str(c)))
    return gold
