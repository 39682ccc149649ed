"""The study directory's parquet files: their column types, one reader per file, and the writers.

``benchmark.study`` names the paths; this module is the only one that opens them, so each file's columns and
types are stated once, here, and a caller asks for the columns it needs by name.

How the files are written (both ways atomic, through ``benchmark.io.atomic_path``):

- ``bench prepare``'s five files (documents, references, note map, label space, code system) with exactly the
  contract's Arrow types below, zstd, ``ROW_GROUP`` rows per row group and no pandas metadata, so the same
  inputs give the same bytes; ``documents.parquet`` is streamed one row group at a time, so the tokens and
  sentence arrays of a whole corpus are never held at once;
- ``bench import-mdace``'s two files with pandas' own writer: its metadata carries the nullable ``Int64``
  document offsets (a span outside the document has none) back as ``Int64`` when they are read.

Readers return ``pandas`` frames of the columns asked for, rows in file order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.io import atomic_path
from benchmark.study import Study

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# Column types of prepare's files, in column order ("list<int32>": sentence starts/ends, compact to hold).
DOCUMENTS_SCHEMA = {
    "hadm_id": "int64", "subject_id": "int64", "split": "string", "text": "string",
    "sent_starts": "list<int32>", "sent_ends": "list<int32>", "tokens": "string", "n_tokens": "int32",
}
REFERENCES_SCHEMA = {"hadm_id": "int64", "code": "string", "system": "string"}
NOTE_MAP_SCHEMA = {"hadm_id": "int64", "note_id": "int64", "begin": "int64", "end": "int64"}
CATALOGUE_SCHEMA = {
    "code": "string", "system": "string", "short_title": "string", "long_title": "string",
    "chapter": "string", "category": "string", "train_count": "int64", "in_test": "bool",
    "title_source": "string",
}
CODE_SYSTEM_SCHEMA = {"code": "string", "system": "string", "short_title": "string", "long_title": "string",
                      "source": "string"}
# MDACE's files, as pandas dtypes ("Int64": no document offsets for a span outside the document).
MDACE_SPANS_SCHEMA = {
    "hadm_id": "int64", "note_id": "int64", "category": "string", "code": "string", "system": "string",
    "code_system": "string", "description": "string", "type": "string", "begin": "int64", "end": "int64",
    "doc_begin": "Int64", "doc_end": "Int64", "known": "bool", "scored": "bool",
}
MDACE_CHARTS_SCHEMA = {"hadm_id": "int64", "file": "string", "sha256": "string", "comment": "string",
                       "status": "string", "n_notes": "int64", "n_annotations": "int64"}

ROW_GROUP = 2048
_ARROW_TYPES = {"int64": "int64", "int32": "int32", "string": "string", "bool": "bool_"}


# --- readers -------------------------------------------------------------------------------------------
def read_documents(study: Study, columns: Sequence[str], split: str | None = None,
                   hadm_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """``documents.parquet``'s ``columns``, in hadm_id order: every admission, only those of ``split`` (index
    reset), or only ``hadm_ids`` (read with a row filter, so the rest of the corpus is never loaded)."""
    wanted = list(columns) if split is None or "split" in columns else [*columns, "split"]
    docs = _read(study.documents, wanted, None if hadm_ids is None else [("hadm_id", "in", list(hadm_ids))])
    if split is None:
        return docs
    return docs[docs["split"] == split].reset_index(drop=True)[list(columns)]


def read_document_texts(study: Study, hadm_ids: Iterable[int]) -> dict[int, str]:
    """The document text of each of ``hadm_ids`` (what Label Studio region offsets and evidence spans index)."""
    wanted = sorted({int(h) for h in hadm_ids})
    if not wanted:
        return {}
    study.require("documents")
    docs = read_documents(study, ["hadm_id", "text"], hadm_ids=wanted)
    return dict(zip(docs["hadm_id"].astype(int), docs["text"]))


def read_reference_codes(study: Study) -> pd.DataFrame:
    """``references.parquet`` as ``hadm_id, code`` rows: one per admission and reference code."""
    return _read(study.references, ["hadm_id", "code"])


def read_catalogue(study: Study, columns: Sequence[str]) -> pd.DataFrame:
    """The label space (``codes.parquet``): ``columns`` of its codes, sorted by code."""
    return _read(study.codes, list(columns))


def read_code_system(study: Study, columns: Sequence[str]) -> pd.DataFrame:
    """Every valid code (``code_system.parquet``): ``columns`` of its codes, sorted by code."""
    return _read(study.code_system, list(columns))


def read_note_map(study: Study) -> pd.DataFrame:
    """``note_map.parquet``: each note's ``hadm_id, note_id, begin, end`` in its admission's document."""
    return _read(study.note_map)


def read_mdace_spans(study: Study) -> pd.DataFrame:
    """``mdace_spans.parquet``: every imported MDACE annotation (``MDACE_SPANS_SCHEMA``)."""
    return _read(study.mdace_spans)


def read_mdace_charts(study: Study) -> pd.DataFrame:
    """``mdace_charts.parquet``: every imported MDACE chart and its status (``MDACE_CHARTS_SCHEMA``)."""
    return _read(study.mdace_charts)


def n_rows(path: Path) -> int:
    """A parquet file's row count, from its footer (no column is read)."""
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def _read(path: Path, columns: list[str] | None = None,
          filters: list[tuple[str, str, list[int]]] | None = None) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path, columns=columns, filters=filters)


# --- writers -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def documents_writer(study: Study) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Yield a function that appends one chunk of documents (``DOCUMENTS_SCHEMA``'s columns, at most
    ``ROW_GROUP`` rows) as one row group; the file replaces ``documents.parquet`` when the block ends."""
    import pyarrow.parquet as pq

    with atomic_path(study.documents) as tmp, \
            pq.ParquetWriter(tmp, _arrow_schema(DOCUMENTS_SCHEMA), compression="zstd") as writer:
        yield lambda chunk: writer.write_table(_arrow_table(chunk, DOCUMENTS_SCHEMA), row_group_size=ROW_GROUP)


def write_references(study: Study, frame: pd.DataFrame) -> None:
    _write_contract(study.references, frame, REFERENCES_SCHEMA)


def write_note_map(study: Study, frame: pd.DataFrame) -> None:
    _write_contract(study.note_map, frame, NOTE_MAP_SCHEMA)


def write_catalogue(study: Study, frame: pd.DataFrame) -> None:
    _write_contract(study.codes, frame, CATALOGUE_SCHEMA)


def write_code_system(study: Study, frame: pd.DataFrame) -> None:
    _write_contract(study.code_system, frame, CODE_SYSTEM_SCHEMA)


def write_mdace(study: Study, spans: pd.DataFrame, charts: pd.DataFrame) -> None:
    """Both MDACE files, each with pandas' writer (see the module docstring: the Int64 offsets)."""
    for frame, path in ((spans, study.mdace_spans), (charts, study.mdace_charts)):
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)


def _write_contract(path: Path, frame: pd.DataFrame, schema: dict[str, str]) -> None:
    """Write ``frame`` with exactly the contract's Arrow types, atomically and deterministically."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(_arrow_table(frame, schema), tmp, row_group_size=ROW_GROUP, compression="zstd")


def _arrow_schema(schema: dict[str, str]) -> pa.Schema:
    """The contract's column types as an Arrow schema."""
    import pyarrow as pa

    def arrow_type(kind: str) -> pa.DataType:
        return pa.list_(pa.int32()) if kind == "list<int32>" else getattr(pa, _ARROW_TYPES[kind])()

    return pa.schema([(name, arrow_type(kind)) for name, kind in schema.items()])


def _arrow_table(frame: pd.DataFrame, schema: dict[str, str]) -> pa.Table:
    """``frame`` as an Arrow table with exactly the contract's types (lists from int32 arrays)."""
    import pyarrow as pa

    arrow_schema = _arrow_schema(schema)
    arrays = []
    for field in arrow_schema:
        values = frame[field.name]
        if pa.types.is_list(field.type):
            parts = [np.asarray(v, dtype=np.int32) for v in values]
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int32)
            flat = np.concatenate(parts) if parts else np.empty(0, np.int32)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.int32())))
        else:
            arrays.append(pa.array(values.tolist(), type=field.type))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)
