"""`benchmark.study_files`: the readers return the columns and rows asked for; the writers keep types and atomicity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmark import study_files
from benchmark.io import sha256_file
from benchmark.study import Study


def test_read_documents_by_split_and_by_admission(tiny_study: Study):
    every = study_files.read_documents(tiny_study, ["hadm_id", "split", "text"])
    assert list(every.columns) == ["hadm_id", "split", "text"]
    assert every["hadm_id"].is_monotonic_increasing and set(every["split"]) == {"train", "dev", "test"}

    train = study_files.read_documents(tiny_study, ["hadm_id"], split="train")
    assert list(train.columns) == ["hadm_id"]  # the split column is read to filter, not returned
    assert list(train.index) == list(range(len(train)))
    assert train["hadm_id"].tolist() == every.loc[every["split"] == "train", "hadm_id"].tolist()

    wanted = every["hadm_id"].tolist()[::2]
    picked = study_files.read_documents(tiny_study, ["hadm_id", "text"], hadm_ids=wanted)
    assert picked["hadm_id"].tolist() == wanted
    assert picked["text"].tolist() == every.set_index("hadm_id").loc[wanted, "text"].tolist()


def test_catalogue_reader_and_row_count_agree(tiny_study: Study):
    catalogue = study_files.read_catalogue(tiny_study, ["code", "train_count"])
    assert list(catalogue.columns) == ["code", "train_count"]
    assert study_files.n_rows(tiny_study.codes) == len(catalogue) > 0
    assert study_files.n_rows(tiny_study.code_system) == len(study_files.read_code_system(tiny_study, ["code"]))
    pairs = study_files.read_reference_codes(tiny_study)
    assert list(pairs.columns) == ["hadm_id", "code"] and set(pairs["code"]) == set(catalogue["code"])


def test_a_failed_documents_write_leaves_the_old_file(tiny_study: Study):
    before = sha256_file(tiny_study.documents)
    chunk = study_files.read_documents(tiny_study, list(study_files.DOCUMENTS_SCHEMA))
    with pytest.raises(RuntimeError, match="interrupted"):
        with study_files.documents_writer(tiny_study) as write_row_group:
            write_row_group(chunk)
            raise RuntimeError("interrupted")
    assert sha256_file(tiny_study.documents) == before
    assert [p.name for p in tiny_study.root.iterdir() if p.name.endswith(".tmp")] == []


def test_mdace_offsets_come_back_nullable(tmp_path: Path):
    """A span outside the document has no offsets: pandas' writer brings them back as Int64, not float."""
    study = Study(tmp_path / "study")
    spans = pd.DataFrame([{"hadm_id": 1, "note_id": 10, "category": "Discharge summary", "code": "428.0",
                           "system": "dx", "code_system": "ICD-9-CM", "description": "", "type": "Human",
                           "begin": 3, "end": 9, "doc_begin": None, "doc_end": None, "known": True, "scored": True}],
                         columns=list(study_files.MDACE_SPANS_SCHEMA)).astype(study_files.MDACE_SPANS_SCHEMA)
    charts = pd.DataFrame([{"hadm_id": 1, "file": "1-ICD-9.json", "sha256": "ab", "comment": "", "status": "test",
                            "n_notes": 1, "n_annotations": 1}],
                          columns=list(study_files.MDACE_CHARTS_SCHEMA)).astype(study_files.MDACE_CHARTS_SCHEMA)
    study_files.write_mdace(study, spans, charts)
    back = study_files.read_mdace_spans(study)
    assert str(back["doc_begin"].dtype) == "Int64" and back["doc_begin"].isna().all()
    pd.testing.assert_frame_equal(back, spans)
    pd.testing.assert_frame_equal(study_files.read_mdace_charts(study), charts)
