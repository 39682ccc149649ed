"""The synthetic MDACE companion: MDACE's format on the synthetic corpus's test split, imported end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmark.mdace import import_mdace
from benchmark.synthetic import evidence_phrases
from benchmark.synthetic_mdace import COMPANION_DIR, write_companion
from benchmark.study import Study
from tests.fixtures_study import copy_study


def test_companion_covers_the_test_split_and_imports_cleanly(synthetic_corpus_small: Path, small_study: Study,
                                                            tmp_path: Path):
    summary = write_companion(synthetic_corpus_small, seed=0, out_root=tmp_path)
    files = sorted((tmp_path / COMPANION_DIR).glob("*-ICD-9.json"))
    test = (synthetic_corpus_small / "test_full_hadm_ids.csv").read_text().split()
    assert summary["charts"] == len(files) == len(test) and summary["spans"] > 10 * len(files)
    chart = json.loads(files[0].read_text())
    assert set(chart) == {"hadm_id", "comment", "notes"}
    assert set(chart["notes"][0]) == {"note_id", "category", "description", "annotations"}
    assert set(chart["notes"][0]["annotations"][0]) == {"begin", "end", "code", "code_system", "description", "type"}
    again = tmp_path / "again"
    write_companion(synthetic_corpus_small, seed=0, out_root=again)
    assert [p.read_bytes() for p in files] == [p.read_bytes() for p in sorted((again / COMPANION_DIR).glob("*"))]

    study = copy_study(small_study, tmp_path / "study")
    result = import_mdace(study, tmp_path / "mdace")
    c = result["counts"]
    assert c["charts_matched"] == len(files) and c["charts_not_in_study"] == c["charts_outside_test_split"] == 0
    assert c["spans_placed"] == c["spans"] == summary["spans"]
    assert c["unknown_codes"] == c["spans_not_fitting_text"] == c["spans_outside_discharge_summaries"] == 0
    spans = pd.read_parquet(study.mdace_spans)
    text = pd.read_parquet(study.documents).set_index("hadm_id")["text"]
    refs = pd.read_parquet(study.references).groupby("hadm_id")["code"].apply(set)
    for row in spans.sample(200, random_state=0).itertuples():
        covered = " ".join(text[row.hadm_id][row.doc_begin:row.doc_end].split()).lower()
        assert covered in {p.lower() for p in evidence_phrases(row.code)}, (row.code, covered)
        assert row.code in refs[row.hadm_id]
