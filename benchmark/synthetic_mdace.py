"""A synthetic MDACE companion for a synthetic corpus: `bench demo-data` writes it beside the MIMIC files.

For every test-split admission of the corpus it writes ``mdace/Inpatient/ICD-9/1.0/<hadm_id>-ICD-9.json`` in
MDACE's format (``benchmark.mdace``), so `bench import-mdace` and evidence scoring run end to end without
MDACE's data. The "coders" are the corpus's reference codes, and each code's evidence spans are the places
where the generator's evidence phrases for that code (``benchmark.synthetic.evidence_phrases``) occur in
the admission's discharge summary rows, as offsets into each row's TEXT (what MDACE's offsets index).
A code with no phrase in the summary gets no annotation (so, like MDACE, the companion misses codes
coded from elsewhere). Distractors name *other* codes, so they get no span. ``type`` and the chart comment
are drawn from a seeded generator to exercise every path; none of it is real coder behaviour.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import icd
from benchmark.io import atomic_write_text
from benchmark.mdace import HUMAN
from benchmark.mimic import DISCHARGE_SUMMARY, find_table
from benchmark.synthetic import evidence_phrases

COMPANION_DIR = Path("mdace") / "Inpatient" / "ICD-9" / "1.0"
# Share of annotations per type: most MDACE ICD-9 codes are mapped from the coders' ICD-10.
_TYPE_WEIGHTS = {HUMAN: 0.4, "MapType.EXACT": 0.3, "MapType.APPROX": 0.15, "MapType.MULTI": 0.1,
                 "MapType.MULTI_DESC": 0.05}
_PCS_COMMENT = "Need OP report to validate PCS codes"
_CODE_SYSTEM = {"dx": "ICD-9-CM", "px": "ICD-9-PCS"}


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """The phrase as the note may wrap it: words separated by any whitespace, case-insensitive, whole words.

    >>> bool(_phrase_pattern("congestive heart failure").search("with Congestive heart\\nfailure."))
    True
    """
    words = [re.escape(w) for w in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def code_spans(text: str, code: str) -> list[tuple[int, int]]:
    """Non-overlapping places in ``text`` where one of the code's evidence phrases occurs (longest first).

    >>> code_spans("Hx: CHF. Discharge Diagnosis: congestive heart failure", "428.0")
    [(4, 7), (30, 54)]
    """
    taken: list[tuple[int, int]] = []
    for phrase in sorted(evidence_phrases(code), key=len, reverse=True):
        for match in _phrase_pattern(phrase).finditer(text):
            if not any(match.start() < e and b < match.end() for b, e in taken):
                taken.append(match.span())
    return sorted(taken)


def write_companion(corpus: Path, seed: int = 0, out_root: Path | None = None) -> dict[str, Any]:
    """Write the companion under ``<out_root or corpus>/mdace`` for the corpus's test split; return counts."""
    corpus = Path(corpus)
    rng = np.random.default_rng(seed)
    test = {int(line) for line in (corpus / "test_full_hadm_ids.csv").read_text().split()}
    notes = pd.read_csv(find_table(corpus, "NOTEEVENTS"), dtype=str, keep_default_na=False,
                        usecols=["ROW_ID", "HADM_ID", "CATEGORY", "DESCRIPTION", "ISERROR", "TEXT"])
    notes = notes[(notes["CATEGORY"] == DISCHARGE_SUMMARY) & (notes["ISERROR"] == "")
                  & notes["HADM_ID"].isin({str(h) for h in test})]
    codes: dict[int, list[tuple[str, str]]] = {}
    for stem, system in (("DIAGNOSES_ICD", "dx"), ("PROCEDURES_ICD", "px")):
        table = pd.read_csv(find_table(corpus, stem), dtype=str, keep_default_na=False, usecols=["HADM_ID", "ICD9_CODE"])
        for hadm, raw in zip(table["HADM_ID"], table["ICD9_CODE"]):
            if raw and int(hadm) in test:
                codes.setdefault(int(hadm), []).append((icd.to_dotted(raw, system), system))
    out = Path(out_root or corpus) / COMPANION_DIR
    types, weights = list(_TYPE_WEIGHTS), np.array(list(_TYPE_WEIGHTS.values()))
    n_charts = n_spans = 0
    by_hadm = {int(h): group for h, group in notes.groupby("HADM_ID")}
    for hadm in sorted(test):
        chart_codes = sorted(set(codes.get(hadm, [])))
        chart_notes = []
        for row in by_hadm.get(hadm, pd.DataFrame()).sort_values("ROW_ID", key=lambda s: s.astype(int)).itertuples():
            annotations = []
            for code, system in chart_codes:
                kind = str(rng.choice(types, p=weights))
                for begin, end in code_spans(row.TEXT, code):
                    annotations.append({"begin": begin, "end": end, "code": code, "code_system": _CODE_SYSTEM[system],
                                        "description": "", "type": kind})
            n_spans += len(annotations)
            chart_notes.append({"note_id": int(row.ROW_ID), "category": row.CATEGORY, "description": row.DESCRIPTION,
                                "annotations": sorted(annotations, key=lambda a: (a["begin"], a["end"], a["code"]))})
        has_px = any(system == "px" for _, system in chart_codes)
        comment = _PCS_COMMENT if has_px and rng.random() < 0.5 else ""
        atomic_write_text(out / f"{hadm}-ICD-9.json",
                          json.dumps({"hadm_id": hadm, "comment": comment, "notes": chart_notes}) + "\n")
        n_charts += 1
    return {"charts": n_charts, "spans": n_spans, "directory": str(out)}
