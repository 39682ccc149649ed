"""`bench report`: one self-contained HTML page from ``scores.json`` and the study files.

The page computes no metric: every number on it is read from ``scores.json`` (written by `bench score` and
`bench evaluate`), so the report can never disagree with the scorer. The study files add what the scores
do not hold: provenance from ``study.toml``, code titles from ``code_system.parquet`` (``codes.parquet`` in
an older study) and, only with ``include_text``, the note text and the model's evidence windows.

Safety rules this module enforces:

* No note text unless ``include_text``: by default ``documents.parquet`` is never read, and the page says so.
  With text, the page carries a "contains MIMIC text, do not share" banner, goes to a separate file
  (``index-with-text.html``) so it cannot silently replace the shareable report, and is written 0600.
* No network: figures are PNG data URIs, CSS and JS are inline, and a Content-Security-Policy forbids any
  fetch, so even a stray URL in a code title cannot load anything.
* Untrusted strings (titles, emails, note text) go through jinja2 autoescaping; data for the drill-down goes
  through ``tojson``, which escapes ``<``, ``>`` and ``&``.

A partial study (no coder export, no model, no scores yet) still renders: each missing piece is listed with
the command that produces it.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from benchmark import __version__, codesystems, study_files
from benchmark.errors import UserError
from benchmark.io import atomic_write_text
from benchmark.predictions import EVIDENCE_FILE, list_prediction_sets, read_evidence, read_predictions
from benchmark.reported import TABLE2_HEADLINE
from benchmark.study import Study
from reports import figures

REPORT_NAME = "index.html"
TEXT_REPORT_NAME = "index-with-text.html"
SCHEMA = 1
_TEMPLATES = Path(__file__).resolve().parent / "templates"

# Table 1 columns: (metric id, group, header, path into a row, CI key, kind). "pct" shows a fraction as a
# percentage with one decimal, like the paper; "num" shows a count with one decimal.
TABLE1_COLUMNS: tuple[tuple[str, str, str, tuple[str, ...], str | None, str], ...] = (
    ("micro_jaccard", "Micro", "J", ("micro", "jaccard"), "micro_jaccard", "pct"),
    ("micro_precision", "Micro", "P", ("micro", "precision"), "micro_precision", "pct"),
    ("micro_recall", "Micro", "R", ("micro", "recall"), "micro_recall", "pct"),
    ("micro_f1", "Micro", "F1", ("micro", "f1"), "micro_f1", "pct"),
    ("macro_jaccard", "Macro", "J", ("macro", "jaccard"), None, "pct"),
    ("macro_precision", "Macro", "P", ("macro", "precision"), None, "pct"),
    ("macro_recall", "Macro", "R", ("macro", "recall"), None, "pct"),
    ("macro_f1", "Macro", "F1", ("macro", "f1"), None, "pct"),
    ("per_document_jaccard", "Per note", "J", ("per_document_jaccard",), "per_document_jaccard", "pct"),
    ("exact_match", "Per note", "Exact", ("exact_match",), None, "pct"),
    ("codes_per_note", "Codes per note", "System", ("codes_per_note",), None, "num"),
    ("reference_codes_per_note", "Codes per note", "Ref.", ("reference_codes_per_note",), None, "num"),
    ("vocabulary_coverage", "Shortlist", "Coverage", ("vocabulary_coverage",), None, "pct"),
)

# Table 2 columns: (key, group, header, kind).
TABLE2_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("auc_macro", "AUC", "Macro", "pct"), ("auc_micro", "AUC", "Micro", "pct"),
    ("f1_macro", "F1", "Macro (mean)", "pct"), ("f1_macro_harmonic", "F1", "Macro (harmonic)", "pct"),
    ("f1_micro", "F1", "Micro", "pct"), ("precision_micro", "Micro", "P", "pct"), ("recall_micro", "Micro", "R", "pct"),
    ("p_at_5", "Precision at k", "P@5", "pct"), ("p_at_8", "Precision at k", "P@8", "pct"),
    ("p_at_15", "Precision at k", "P@15", "pct"),
)

PROFILE_TITLES = {
    "paper": "Paper profile: the seed paper's conventions, as best they can be inferred",
    "corrected": "Corrected profile: Edin et al. (2023) conventions",
}


@dataclass(frozen=True)
class Missing:
    """A piece of the study the report could not show, and the command that produces it."""

    what: str
    why: str
    command: str


@dataclass(frozen=True)
class Cell:
    """One number on the page: the raw value from scores.json (``data-value``) and how it is shown."""

    metric: str
    value: float | None
    text: str
    ci: tuple[float, float] | None = None
    ci_text: str = ""


# --- public entry points ---------------------------------------------------------------------------------
def default_output(study: Study, include_text: bool) -> Path:
    """``report/index.html``, or ``report/index-with-text.html`` for the private copy with note text."""
    return study.report_dir / (TEXT_REPORT_NAME if include_text else REPORT_NAME)


def render_report(study: Study, out: Path | None = None, include_text: bool = False) -> Path:
    """Render the study's report to ``out`` (default: :func:`default_output`) atomically; return the path."""
    if not study.root.is_dir():
        raise UserError(f"{study.root} is not a study directory: run `bench prepare` (or `bench demo`) first, "
                        f"or pass --study DIR")
    html = render_html(study, include_text=include_text)
    path = Path(out) if out is not None else default_output(study, include_text)
    if path.exists() and path.is_dir():
        path = path / (TEXT_REPORT_NAME if include_text else REPORT_NAME)
    # The copy with note text falls under MIMIC's data use agreement: readable by its owner only.
    atomic_write_text(path, html, mode=0o600 if include_text else 0o644)
    return path


def render_html(study: Study, include_text: bool = False) -> str:
    """The report page as a string."""
    context = build_context(study, include_text)
    return _environment().get_template("index.html.j2").render(**context)


# --- gathering -----------------------------------------------------------------------------------------
def load_scores(study: Study) -> dict[str, Any] | None:
    """``scores.json`` parsed and checked for its schema, or None when `bench score` has not run."""
    path = study.scores
    if not path.exists():
        return None
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); re-run `bench score` to rewrite it") from exc
    if not isinstance(scores, dict) or scores.get("schema") != SCHEMA:
        found = scores.get("schema") if isinstance(scores, dict) else type(scores).__name__
        raise UserError(f"{path} has schema {found!r}, this report reads schema {SCHEMA} "
                        f"(docs/scores-schema.md); re-run `bench score` with this version")
    return scores


def build_context(study: Study, include_text: bool) -> dict[str, Any]:
    """The template's variables: provenance, tables, figures, drill-down data and what is missing."""
    scores = load_scores(study)
    provenance = study.provenance()
    table1 = (scores or {}).get("table1")
    rows = (table1 or {}).get("rows") or []
    per_document = (scores or {}).get("per_document") or []

    coder_stats = (table1 or {}).get("coders") or []
    figure_systems = _figure_systems(rows)
    breakdowns = (table1 or {}).get("breakdowns") or {}
    version = codesystems.study_version(study)
    charts = {
        "frequency": figures.frequency_f1(breakdowns.get("frequency") or {}, figure_systems) if table1 else None,
        "codes_per_note": figures.codes_per_note(rows, per_document, _coder_keys(rows, coder_stats)) if rows else None,
        "chapter": figures.chapter_precision_recall(breakdowns.get("chapter") or {}, figure_systems,
                                                    codesystems.study_label(version)) if table1 else None,
        "throughput": figures.coder_throughput(coder_stats) if table1 else None,
    }
    drill = _drilldown(study, per_document, rows, coder_stats, include_text)
    return {
        "tool_version": __version__,
        "include_text": include_text,
        "data_source": _data_source(scores, provenance),
        # Studies prepared before ICD-10 support record neither: they are MIMIC-III, ICD-9.
        "dataset": provenance.get("steps", {}).get("prepare", {}).get("dataset", "MIMIC-III"),
        "code_system": "ICD-9" if version == 9 else "ICD-10-CM/PCS",
        "facts": _facts(study, scores, provenance, rows),
        "steps": _steps(provenance),
        "exports": (scores or {}).get("exports") or [],
        "counts": (table1 or {}).get("counts"),
        "missing": _find_missing(study, scores, provenance, rows),
        "views": _table1_views(scores or {}),
        "table1_columns": TABLE1_COLUMNS,
        "table1_groups": _groups(TABLE1_COLUMNS),
        "table2": _table2(scores or {}),
        "evidence": _evidence_block(scores or {}),
        "coder_evidence": _coder_evidence_block(scores or {}),
        "arms": (scores or {}).get("arms"),  # `bench compare-arms`: rows already per coder and arm
        "table2_columns": TABLE2_COLUMNS,
        "table2_groups": _groups(TABLE2_COLUMNS),
        "charts": charts,
        "agreement": (table1 or {}).get("agreement"),
        "coders": coder_stats,
        "drill": drill,
        "drill_summaries": drill["summaries"] if drill else [],
        "fmt_pct": _fmt_pct,
        "fmt_num": _fmt_num,
        "fmt_p": _fmt_p,
    }


def _find_missing(study: Study, scores: Mapping[str, Any] | None, provenance: Mapping[str, Any],
                  rows: Sequence[Mapping[str, Any]]) -> list[Missing]:
    """Each absent piece with the command that makes it, in pipeline order."""
    missing: list[Missing] = []
    steps = provenance.get("steps", {})
    if "prepare" not in steps and not study.documents.exists():
        missing.append(Missing("Prepared corpus (documents, references, code catalogue)",
                               "study.toml has no prepare step and documents.parquet is absent",
                               "bench demo-data --out DIR && bench prepare --mimic DIR --splits DIR"))
    if not study.sample.exists():
        missing.append(Missing("Coding sample and shortlist", "sample.csv is absent", "bench sample"))
    exports = sorted(study.exports_dir.glob("*")) if study.exports_dir.exists() else []
    has_humans = any(r.get("kind") in ("humans", "coder") for r in rows)
    has_model = any(r.get("kind") == "model" for r in rows)
    if not has_humans:
        if exports:
            missing.append(Missing("Human coders in Table 1",
                                   f"{len(exports)} coder export(s) archived in exports/ but not scored",
                                   "bench score --coders EXPORT.json"))
        else:
            missing.append(Missing("Coder export (the human arm)",
                                   "no coder export has been pulled from Label Studio yet",
                                   "bench setup-labelstudio, let the coders code, then bench pull "
                                   "and bench score --coders EXPORT.json"))
    if not has_model:
        if list_prediction_sets(study.predictions_dir):
            missing.append(Missing("The model in Table 1", "predictions exist but have not been scored",
                                   "bench score --coders EXPORT.json"))
        else:
            missing.append(Missing("Model predictions (the machine arm)", "study/predictions/ holds no prediction set",
                                   "bench train --name NAME && bench predict --run NAME --split sample"))
    if scores is None:
        missing.append(Missing("Scores (Table 1, Table 2, figures, drill-down)", "scores.json is absent",
                               "bench score --coders EXPORT.json && bench evaluate"))
        return missing
    if scores.get("table1") is None:
        missing.append(Missing("Table 1, figures and drill-down", "scores.json has no table1",
                               "bench score --coders EXPORT.json"))
    if not (scores.get("table2") or {}).get("rows"):
        missing.append(Missing("Table 2 (the model on the full test split)", "scores.json has no table2 rows",
                               "bench predict --run NAME --split test && bench evaluate"))
    return missing


def _table1_views(scores: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Table 1 under each profile (paper, corrected), plus the command line's own conventions if they differ."""
    profiles = scores.get("profiles") or {}
    table1 = scores.get("table1")
    views: list[dict[str, Any]] = []
    for key in ("paper", "corrected"):
        if profiles.get(key):
            views.append(_view(key, PROFILE_TITLES[key], profiles[key]))
    for key, table in profiles.items():
        if key not in ("paper", "corrected") and table:
            views.append(_view(key, f"Profile '{key}'", table))
    if table1 and (table1.get("profile") is None or table1.get("profile") not in profiles):
        name = table1.get("profile") or "custom"
        views.append(_view("requested", f"As requested on the command line (conventions: {name})", table1))
    mdace = scores.get("table1_mdace")
    if mdace:  # `bench score-mdace`: MDACE's coders on their own charts, the models beside them
        views.append(_view("mdace", f"MDACE coders and models on the {mdace['mdace']['n_charts']} MDACE charts of the "
                                    f"test split (MDACE types: {mdace['mdace']['types']}; profile "
                                    f"{mdace.get('profile') or 'custom'})", mdace))
    return views


def _evidence_block(scores: Mapping[str, Any]) -> dict[str, Any] | None:
    """`bench evidence`'s rows as table lines (P, R, F1 per measure) and its frequency figure."""
    block = scores.get("evidence")
    if not block:
        return None
    lines = []
    for row in block.get("rows") or []:
        for label, part in (("all predicted codes", row["all_codes"]), ("correctly predicted codes", row["correct_codes"]),
                            ("random windows, all codes", row["random_windows"]["all_codes"]),
                            ("random windows, correct codes", row["random_windows"]["correct_codes"])):
            cells = [(f"{m}_{k}", part[m][k]) for m in block["measures"] for k in ("precision", "recall", "f1")]
            lines.append({"system": row["system"], "label": label, "cells": cells, "row": row})
    return {"block": block, "lines": lines, "chart": figures.evidence_by_frequency(block.get("rows") or [])}


def _coder_evidence_block(scores: Mapping[str, Any]) -> dict[str, Any] | None:
    """`bench score`'s coder evidence (against MDACE, between coders) as table lines like the evidence table's."""
    block = scores.get("coder_evidence")
    if not block:
        return None
    parts = [(row["coder"], label, row[key]) for row in (block.get("vs_mdace") or {}).get("rows") or []
             for key, label in (("all_codes", "against MDACE, all codes"), ("correct_codes", "against MDACE, correct codes"))]
    parts += [(f"{pair['a']} vs {pair['b']} ({pair['n_tasks']} tasks)", label, pair[key]) for pair in block["agreement"]
              for key, label in (("all_codes", "between coders, all codes"), ("shared_codes", "between coders, shared codes"))]
    lines = [{"system": who, "label": label, "cells": [(f"{m}_{k}", part[m][k]) for m in block["measures"]
                                                       for k in ("precision", "recall", "f1")]}
             for who, label, part in parts]
    return {"block": block, "lines": lines}


def _view(key: str, title: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """One Table 1 block; under the paper profile it carries the paper's own rows (``reported``) too."""
    conventions = table.get("conventions") or {}

    def cells(row: Mapping[str, Any]) -> list[Cell]:
        ci = row.get("ci95") or {}
        return [_cell(metric, _dig(row, path), kind, ci.get(ci_key) if ci_key else None)
                for metric, _group, _header, path, ci_key, kind in TABLE1_COLUMNS]

    rows = [{"row": row, "cells": cells(row)} for row in table.get("rows") or []]
    # The paper's rows compare under its own conventions only; other profiles point to them.
    reported = [{"row": row, "cells": cells(row)} for row in table.get("reported") or []]
    return {
        "key": key, "title": title, "table": table, "rows": rows, "conventions": conventions,
        "reported": reported if table.get("profile") == "paper" else [],
        "reported_elsewhere": bool(reported) and table.get("profile") != "paper",
        "definitions": conventions.get("definitions") or {},
        "comparisons": table.get("comparisons") or [], "bootstrap": table.get("bootstrap") or {},
    }


def _groups(columns: Sequence[tuple[str, ...]]) -> list[tuple[str, int]]:
    """(group header, number of columns) for a two-row table header."""
    return [(group, len(list(cols))) for group, cols in itertools.groupby(columns, key=lambda c: c[1])]


def _table2(scores: Mapping[str, Any]) -> dict[str, Any] | None:
    table2 = scores.get("table2")
    if not table2:
        return None

    def cells(row: Mapping[str, Any]) -> list[Cell]:
        return [_cell(key, row.get(key), kind, None) for key, _group, _header, kind in TABLE2_COLUMNS]

    reported = [{"row": r, "cells": cells(r)} for r in table2.get("reported") or []]
    return {
        "rows": [{"row": r, "cells": cells(r)} for r in table2.get("rows") or []],
        # the paper's full model sits beside the study's runs; all of the paper's table folds out below
        "headline": [r for r in reported if r["row"].get("system") == TABLE2_HEADLINE],
        "reported": reported,
        "conventions": table2.get("conventions") or {},
    }


def _coder_keys(rows: Sequence[Mapping[str, Any]], coder_stats: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Coder row name -> the coder's key in ``per_document`` (its e-mail, else ``table1.coders`` by id)."""
    by_id = {c.get("id"): c.get("coder") for c in coder_stats}
    keys = {}
    for row in rows:
        info = row.get("coder") or {}
        key = info.get("email") or by_id.get(info.get("id"))
        if row.get("kind") == "coder" and key:
            keys[row["system"]] = key
    return keys


def _figure_systems(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The systems the figures compare: pooled humans and models (single coders only without a pooled row)."""
    pooled = [r["system"] for r in rows if r.get("kind") == "humans"]
    coders = [] if pooled else [r["system"] for r in rows if r.get("kind") == "coder"]
    return pooled + coders + [r["system"] for r in rows if r.get("kind") == "model"]


# --- provenance ----------------------------------------------------------------------------------------
def _data_source(scores: Mapping[str, Any] | None, provenance: Mapping[str, Any]) -> str:
    """"mimic", "synthetic" or "unknown": from scores.json, else the prepare step in study.toml."""
    source = (scores or {}).get("data_source") or provenance.get("steps", {}).get("prepare", {}).get("data_source")
    source = str(source or "unknown").lower()
    return "mimic" if "mimic" in source else ("synthetic" if "synth" in source else "unknown")


def _facts(study: Study, scores: Mapping[str, Any] | None, provenance: Mapping[str, Any],
           rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The provenance summary at the top of the page: (label, value) pairs, each "not recorded" if absent."""
    steps = provenance.get("steps", {})
    prepare, sample = steps.get("prepare", {}), steps.get("sample", {})
    facts: list[tuple[str, str]] = []
    split_hashes = _split_hashes(prepare)
    facts.append(("Split files (SHA-256)", "; ".join(f"{k}: {v}" for k, v in split_hashes.items()) or "not recorded"))
    sample_size = _line_count(study.sample)
    figures = sample.get("figures", {})  # what `bench sample` records (benchmark.sampling.sample)
    seed = figures.get("seed")
    facts.append(("Sample", f"{sample_size:,} notes, seed {seed if seed is not None else 'not recorded'}"
                  if sample_size is not None else "not drawn yet (bench sample)"))
    shortlist_size = _line_count(study.shortlist)
    rule = figures.get("rule")
    facts.append(("Shortlist", f"{shortlist_size:,} codes, rule: {rule if rule is not None else 'not recorded'}"
                  if shortlist_size is not None else "not written yet (bench sample)"))
    coverage = next((r.get("vocabulary_coverage") for r in rows if r.get("vocabulary_coverage") is not None), None)
    if coverage is None:
        coverage = figures.get("coverage")
    facts.append(("Vocabulary coverage", f"{_fmt_pct(coverage)}% of the sampled reference codes are on the "
                  "shortlist (caps coder recall)" if isinstance(coverage, (int, float)) else "not recorded"))
    models = [r.get("model") or {} for r in rows if r.get("kind") == "model"]
    table2_rows = ((scores or {}).get("table2") or {}).get("rows") or []
    model_text = [f"{m.get('name') or '?'} (run {m.get('run') or '?'}, threshold {_fmt_threshold(m.get('threshold'))}, "
                  f"{m.get('threshold_source') or 'source not recorded'})" for m in models]
    model_text += [f"{r.get('system')} on {r.get('split') or '?'} split (threshold {_fmt_threshold(r.get('threshold'))}, "
                   f"{r.get('threshold_source') or 'source not recorded'})" for r in table2_rows]
    facts.append(("Model runs", "; ".join(model_text) or "none scored yet"))
    facts.append(("Tool version", f"scores by coding-bench {(scores or {}).get('tool_version', 'n/a')}, "
                  f"report by coding-bench {__version__}"))
    created = provenance.get("study", {}).get("created_at")
    facts.append(("Dates", f"study created {created or 'not recorded'}; scores generated "
                  f"{(scores or {}).get('generated_at') or 'not yet'}"))
    return facts


def _split_hashes(prepare: Mapping[str, Any]) -> dict[str, str]:
    """SHA-256 of the split files as recorded by `bench prepare` (any nesting; keys mentioning "split")."""
    found: dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{path}/{key}" if path else str(key))
        elif _is_sha256(node) and any(word in path.lower() for word in ("split", "hadm_ids")):
            found[path.rsplit("/", 1)[-1]] = node

    walk(prepare, "")
    return found


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _steps(provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every study.toml step flattened to (key, value) rows, for the full provenance listing."""
    steps = []
    for name, record in provenance.get("steps", {}).items():
        steps.append({"name": name, "items": list(_flatten(record))})
    return steps


def _flatten(node: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list) and len(node) > 12:
        yield prefix, f"{len(node)} items: " + ", ".join(map(str, node[:12])) + ", …"
    else:
        yield prefix, ", ".join(map(str, node)) if isinstance(node, list) else str(node)


def _line_count(path: Path) -> int | None:
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


# --- drill-down ----------------------------------------------------------------------------------------
def _drilldown(study: Study, per_document: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
               coder_stats: Sequence[Mapping[str, Any]], include_text: bool) -> dict[str, Any] | None:
    """Per-note code sets with titles, and with ``include_text`` the notes and evidence windows.

    The per-note tables are built in the browser when a note is opened (508 notes x ~40 codes as static
    HTML would be ~80,000 elements and slow the page down); here we only gather the data once.
    """
    if not per_document:
        return None
    coders = sorted({c for d in per_document for c in (d.get("humans") or {})})
    models = sorted({m for d in per_document for m in (d.get("models") or {})})
    # per_document names coders as table1.coders does; a coder row's e-mail is the fallback
    simulated = {c.get("coder") for c in coder_stats if c.get("simulated")}
    simulated |= {(r.get("coder") or {}).get("email") for r in rows if r.get("kind") == "coder" and r.get("simulated")}
    codes = sorted({c for d in per_document for c in _all_codes(d)})
    docs = [{"h": int(d["hadm_id"]), "r": list(d.get("reference") or []),
             "c": [list((d.get("humans") or {}).get(c) or []) if c in (d.get("humans") or {}) else None for c in coders],
             "m": [list((d.get("models") or {}).get(m) or []) if m in (d.get("models") or {}) else None for m in models]}
            for d in per_document]
    data: dict[str, Any] = {
        "coders": [{"name": c, "simulated": c in simulated} for c in coders], "models": models,
        "titles": _titles(study, codes), "docs": docs,
    }
    if include_text:
        hadm_ids = [doc["h"] for doc in docs]
        data["texts"] = _note_texts(study, hadm_ids)
        info = {r["system"]: r.get("model") or {} for r in rows if r.get("kind") == "model"}
        data["evidence"] = {m: _evidence(study, m, info.get(m, {}), set(hadm_ids)) for m in models}
    names = [c + (" (simulated)" if c in simulated else "") for c in coders] + models
    summaries = [{"hadm_id": doc["h"], "n_reference": len(doc["r"]),
                  "counts": [(name, len(codes)) for name, codes in zip(names, doc["c"] + doc["m"]) if codes is not None]}
                 for doc in docs]
    return {"data": data, "summaries": summaries, "coders": coders, "models": models}


def _all_codes(doc: Mapping[str, Any]) -> Iterable[str]:
    yield from doc.get("reference") or []
    for codes in (doc.get("humans") or {}).values():
        yield from codes or []
    for codes in (doc.get("models") or {}).values():
        yield from codes or []


def _titles(study: Study, codes: Sequence[str]) -> dict[str, str]:
    """Long titles (short where the long one is missing) for the codes the drill-down shows, from the code system
    (which also titles a coder's valid codes outside the label space), else the label space of an older study."""
    if not (study.code_system.exists() or study.codes.exists()) or not codes:
        return {}
    columns = ["code", "short_title", "long_title"]
    read = study_files.read_code_system if study.code_system.exists() else study_files.read_catalogue
    table = read(study, columns).fillna("")  # a missing title reads as NaN; it shows as no title, as "" does
    wanted = set(codes)
    return {code: long or short for code, short, long in zip(table["code"], table["short_title"], table["long_title"])
            if code in wanted and (long or short)}


def _note_texts(study: Study, hadm_ids: Sequence[int]) -> dict[str, str]:
    """Note text of the drill-down's admissions only (read with a row filter, never the whole corpus)."""
    study.require("documents")
    docs = study_files.read_documents(study, ["hadm_id", "text"], hadm_ids=hadm_ids)
    return {str(h): t for h, t in zip(docs["hadm_id"].tolist(), docs["text"].tolist())}


def _evidence(study: Study, system: str, model: Mapping[str, Any], hadm_ids: set[int]) -> dict[str, dict[str, list[list[float]]]]:
    """``{hadm_id: {code: [[start, end, score], ...]}}`` from the prediction set behind a Table 1 model row.

    The set is the one named like the row's ``model.name`` (meta.json name or directory name), else one of the
    row's ``model.run``, covering most of the drill-down's notes; a set without evidence.jsonl shows no
    highlights rather than failing.
    """
    names = {system, model.get("name")} - {None}
    best: tuple[int, int, Path] | None = None
    for directory in list_prediction_sets(study.predictions_dir):
        if not (directory / EVIDENCE_FILE).exists():
            continue
        preds = read_predictions(directory)
        if directory.name in names or preds.name in names:
            rank = 2
        elif model.get("run") is not None and preds.run == model.get("run"):
            rank = 1
        else:
            continue
        overlap = len(hadm_ids & {int(h) for h in preds.hadm_ids})
        if overlap and (best is None or (rank, overlap) > best[:2]):
            best = (rank, overlap, directory / EVIDENCE_FILE)
    if best is None:
        return {}
    return {str(h): {code: [[b, e, score] for b, e, score in windows] for code, windows in codes.items()}
            for h, codes in read_evidence(best[2]).items() if h in hadm_ids}


# --- formatting ----------------------------------------------------------------------------------------
def _cell(metric: str, value: Any, kind: str, interval: Sequence[float] | None) -> Cell:
    number = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    fmt = _fmt_pct if kind == "pct" else _fmt_num
    ci = (float(interval[0]), float(interval[1])) if interval and None not in interval[:2] else None
    return Cell(metric=metric, value=number, text=fmt(number),
                ci=ci, ci_text=f"{fmt(ci[0])}–{fmt(ci[1])}" if ci else "")


def _fmt_pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal (the paper's style); "—" when undefined."""
    return "—" if value is None else f"{100 * value:.1f}"


def _fmt_num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _fmt_p(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _fmt_threshold(value: Any) -> str:
    return "not recorded" if value is None else f"{float(value):g}"


def _dig(node: Mapping[str, Any], path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _environment() -> jinja2.Environment:
    """Autoescaping on for every template: titles, emails and note text are untrusted.

    A field that an older or partial scores.json lacks renders as empty (``ChainableUndefined``), never as
    a traceback.
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True, undefined=jinja2.ChainableUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
