"""Table 1's MDACE rows: MDACE's professional coders scored like the study's coders, models beside them.

The rows are scored by ``benchmark.table1.score_table1`` with the same conventions, bootstrap intervals,
randomization tests and breakdowns as Table 1, against the study's (BIDMC) references, on the imported MDACE
charts that lie in the study's test split (``bench import-mdace``), so that models predicted on the test
split are scored on exactly those charts.

- **MDACE coders (all notes)**: per chart, the distinct codes of the annotations whose ``type`` passes
  ``--mdace-types`` (``human``: coded in ICD-9 directly; ``mapped``: mapped from the coders' ICD-10; ``all``).
  MDACE's coders read *all* of a chart's notes, while RAC reads the discharge summary and its addenda, so
  this row may find codes whose evidence RAC never sees.
- **MDACE coders (discharge-summary evidence)**: the subset of those codes with at least one span placed in
  the study's document (the discharge summary and addenda): the fairer comparison with RAC.

A chart whose codes all fall outside the chosen types scores as an empty set (the filter's meaning, counted in
``mdace.charts_without_codes``); codes of another code system than ICD-9 are not scored; codes outside the
code catalogue score as wrong codes. Comments are counted by kind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import study_files
from benchmark.conventions import PROFILES, Conventions
from benchmark.errors import UserError
from benchmark.exports import CoderExports
from benchmark.mdace import read_spans
from benchmark.references import read_references
from benchmark.sampling import read_shortlist
from benchmark.study import Study, fingerprint
from benchmark.systems import SystemSets, model_systems
from benchmark.table1 import score_table1

READS = ("MDACE coders read all of a chart's notes (discharge summaries, physician, radiology, ...); RAC reads "
         "the discharge summary and its addenda only. The discharge-summary row keeps the codes with evidence there.")


def mdace_systems(study: Study, types: str = "all") -> tuple[list[SystemSets], dict[str, Any]]:
    """The two MDACE rows on the test-split charts, and what they were made from."""
    spans = read_spans(study, types)
    charts = study_files.read_mdace_charts(study)
    test = charts[charts["status"] == "test"]
    if test.empty:
        raise UserError(f"{study.mdace_charts}: no imported MDACE chart is in this study's test split; "
                        "import MDACE charts of this MIMIC-III study (`bench import-mdace DIR`)")
    hadm_ids = sorted(int(h) for h in test["hadm_id"])
    scored = spans[spans["scored"] & spans["hadm_id"].isin(hadm_ids)]
    all_notes = scored.groupby("hadm_id")["code"].apply(lambda c: tuple(sorted(set(c)))).to_dict()
    in_summary = (scored.dropna(subset=["doc_begin"]).groupby("hadm_id")["code"]
                  .apply(lambda c: tuple(sorted(set(c)))).to_dict())
    synthetic = (study.step("prepare") or {}).get("data_source") == "synthetic"
    label = "MDACE coders" + (" (synthetic companion)" if synthetic else "")
    rows = [SystemSets(f"{label}, all notes", "humans", hadm_ids, [all_notes.get(h, ()) for h in hadm_ids],
                       np.ones(len(hadm_ids)), simulated=synthetic),
            SystemSets(f"{label}, discharge-summary evidence", "humans", hadm_ids,
                       [in_summary.get(h, ()) for h in hadm_ids], np.ones(len(hadm_ids)), simulated=synthetic)]
    comments = Counter(c for c in test["comment"] if c)
    info = {
        "types": types, "n_charts": len(hadm_ids), "n_charts_imported": len(charts),
        "charts_without_codes": sum(1 for h in hadm_ids if not all_notes.get(h)),
        "codes_per_chart": float(np.mean([len(all_notes.get(h, ())) for h in hadm_ids])),
        "share_codes_with_summary_evidence": (sum(len(in_summary.get(h, ())) for h in hadm_ids)
                                              / max(1, sum(len(all_notes.get(h, ())) for h in hadm_ids))),
        "unknown_codes": int((~scored["known"]).sum()),
        "comments": [{"comment": c, "charts": n} for c, n in sorted(comments.items(), key=lambda x: (-x[1], x[0]))],
        "reads": READS,
    }
    return rows, info


def score_mdace(study: Study, conv: Conventions, profile: str | None, types: str = "all",
                prediction_paths: Sequence[str] = (), n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The ``table1_mdace`` block (under ``conv``) and ``profiles_mdace`` (both named profiles)."""
    humans, info = mdace_systems(study, types)
    admissions = humans[0].hadm_ids
    models = model_systems(study, admissions, prediction_paths)
    refs, shortlist = read_references(study, admissions), read_shortlist(study)
    counts = {"mdace_charts": info["n_charts"], "charts_without_codes": info["charts_without_codes"],
              "unknown_codes": info["unknown_codes"]}

    def table(c: Conventions, name: str | None) -> dict[str, Any]:
        out = score_table1(study, CoderExports([], counts), models, c, name, refs, shortlist, n_resamples, seed,
                           humans=humans)
        out["mdace"] = info
        kinds = "; ".join(f"{c['comment']} ({c['charts']})" for c in info["comments"]) or "none"
        out["notes"] = [*out["notes"], READS, f"MDACE types counted: {types}.", f"Chart comments by kind: {kinds}."]
        return out

    main = table(conv, profile)
    return {"table1_mdace": main,
            "profiles_mdace": {name: main if p == conv else table(p, name) for name, p in PROFILES.items()}}


def format_mdace(table: dict[str, Any]) -> str:
    """Table 1's MDACE block as text: the table, then the types counted, what the coders read, the comments."""
    from benchmark.tables_text import format_table1

    info = table["mdace"]
    lines = [format_table1(table).replace("Table 1. Coders and models", "Table 1 (MDACE). MDACE coders and models", 1),
             f"MDACE types counted: {info['types']}; {info['n_charts']} test-split charts of {info['n_charts_imported']} "
             f"imported; {info['codes_per_chart']:.1f} codes per chart, {100 * info['share_codes_with_summary_evidence']:.1f}% "
             f"with discharge-summary evidence; {info['charts_without_codes']} charts without a code of these types",
             info["reads"]]
    if info["comments"]:
        lines.append("Comments by kind: " + "; ".join(f"{c['comment']} ({c['charts']})" for c in info["comments"][:5]))
    if not any(r["kind"] == "model" for r in table["rows"]):
        lines.append("No model row: no prediction set under study/predictions covers these charts "
                     "(run `bench predict --split test`, or pass --predictions PATH).")
    return "\n".join(lines)


def record_score(study: Study, table: dict[str, Any], scores_path: Path, n_resamples: int, seed: int) -> None:
    """``[steps.score_mdace]`` in study.toml: what was scored, under which conventions, into which file."""
    models = [r["system"] for r in table["rows"] if r["kind"] == "model"]
    conv = {k: v for k, v in table["conventions"].items() if k in ("label_set", "undefined", "macro_f1")}
    parts = {"import": (study.step("import_mdace") or {}).get("fingerprint"), "types": table["mdace"]["types"],
             "conventions": conv, "models": models, "bootstrap": n_resamples, "seed": seed}
    study.record_step("score_mdace", {"fingerprint": fingerprint(parts), **parts, "profile": table["profile"],
                                      "outputs": study.file_hashes(scores_path)})
