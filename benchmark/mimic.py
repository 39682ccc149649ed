"""Reading the user's MIMIC-III v1.4 files and the Mullenbach split files, with errors that name the file.

MIMIC ships ``NOTEEVENTS.csv.gz`` (about 4 GB uncompressed, 2.08M rows), so notes are *streamed*: pyarrow
parses the CSV block by block, keeps only the columns needed and only the discharge summaries that are
not marked ``ISERROR``, and discards the rest of each block before reading the next, so memory grows
with the discharge summaries kept, not with the file. The small tables (codes, titles) are read whole
with pandas, every column as ``str``: CAML read ``ICD9_CODE`` as numbers, which lost leading zeros
("0011" became 11) and created junk codes.

Every problem with the input is a ``UserError`` naming the file (and the line or ROW_ID) and the fix.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import icd
from benchmark.errors import UserError

DATASET = "MIMIC-III"
DISCHARGE_SUMMARY = "Discharge summary"
SPLITS = ("train", "dev", "test")
NOTE_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "CATEGORY", "ISERROR", "TEXT")
CODE_COLUMNS = ("ROW_ID", "HADM_ID", "ICD9_CODE")
TITLE_COLUMNS = ("ICD9_CODE", "SHORT_TITLE", "LONG_TITLE")
# The tables prepare reads: logical name -> (file stem, required columns, code system or None).
TABLES = {
    "noteevents": ("NOTEEVENTS", NOTE_COLUMNS, None),
    "diagnoses": ("DIAGNOSES_ICD", CODE_COLUMNS, "dx"),
    "procedures": ("PROCEDURES_ICD", CODE_COLUMNS, "px"),
    "d_diagnoses": ("D_ICD_DIAGNOSES", TITLE_COLUMNS, "dx"),
    "d_procedures": ("D_ICD_PROCEDURES", TITLE_COLUMNS, "px"),
}
SPLIT_FILE = "{split}_full_hadm_ids.csv"
NOTE_SEPARATOR = "\n\n"  # between a summary and its addenda in the joined document
NOTE_BLOCK_BYTES = 16 << 20  # larger than any single MIMIC note (the longest is about 55 KB)


# What prepare's error says the notes and the split files should be, when they do not match.
NOTES_HINT = "MIMIC-III v1.4's NOTEEVENTS and caml-mimic's *_full_hadm_ids.csv"


@dataclass
class Notes:
    """Discharge summaries concatenated per admission, and what was dropped on the way."""

    frame: pd.DataFrame  # hadm_id, subject_id (-1 if NOTEEVENTS lacks it), text, n_notes, row_ids, note_offsets
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Inputs:
    """A dataset's tables as prepare needs them, read and checked (the same shape for MIMIC-III and -IV)."""

    splits: pd.DataFrame  # hadm_id, split (train/dev/test)
    codes: pd.DataFrame  # hadm_id, code (canonical), system ("dx" | "px"); distinct
    notes: Notes
    notes_path: Path
    titles: dict[str, pd.DataFrame]  # per kind: code, short_title, long_title from the dataset's tables
    counts: dict[str, int]  # rows skipped on the way


def read_inputs(tables: dict[str, Path], split_files: dict[str, Path], version: int, progress: bool,
                lap: Callable[[str], None]) -> Inputs:
    """Read MIMIC-III's splits, codes, notes and titles (ICD-9 only; ``lap`` times each phase)."""
    splits = read_splits(split_files)
    dx, dx_empty = read_codes(tables["diagnoses"], "dx")
    px, px_empty = read_codes(tables["procedures"], "px")
    lap("read splits and codes")
    notes = read_discharge_summaries(tables["noteevents"], progress=progress)
    lap("stream NOTEEVENTS")
    titles = {kind: read_titles(tables[f"d_{name}"], kind)
              for kind, name in (("dx", "diagnoses"), ("px", "procedures"))}
    return Inputs(splits, pd.concat([dx, px], ignore_index=True), notes, tables["noteevents"], titles,
                  {"empty_dx_code_rows": dx_empty, "empty_px_code_rows": px_empty})


def find_table(directory: Path, stem: str, dataset: str = "MIMIC-III v1.4") -> Path:
    """``DIR/STEM.csv.gz`` or ``DIR/STEM.csv`` (the compressed one first, as MIMIC ships it)."""
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (directory / name).is_file():
            return directory / name
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; pass the folder holding the {dataset} CSV files")
    raise UserError(
        f"{directory / stem}.csv.gz: file not found (nor {stem}.csv); "
        f"copy {dataset}'s {stem} table into {directory}"
    )


def locate_tables(directory: Path) -> dict[str, Path]:
    """Paths of the five tables in ``directory``, checking each has the columns prepare reads."""
    paths = {name: find_table(directory, stem) for name, (stem, _, _) in TABLES.items()}
    for name, (_, columns, _) in TABLES.items():
        check_columns(paths[name], columns)
    return paths


def check_columns(path: Path, required: Iterable[str],
                  hint: str = "prepare needs MIMIC-III's uppercase column names") -> None:
    """Raise a UserError when ``path`` cannot be read as CSV or lacks a required column."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except Exception as exc:  # gzip, encoding or CSV errors all mean the same to the user
        raise UserError(f"{path}: cannot be read as a CSV file ({exc}); check the file is complete") from exc
    missing = [column for column in required if column not in header]
    if missing:
        raise UserError(
            f"{path}: missing column {', '.join(missing)} (found: {', '.join(map(str, header))}); {hint}"
        )


def split_paths(directory: Path) -> dict[str, Path]:
    """The three split files; a missing one is a UserError."""
    paths = {split: directory / SPLIT_FILE.format(split=split) for split in SPLITS}
    for path in paths.values():
        if not path.is_file():
            raise UserError(
                f"{path}: file not found; pass --splits the folder with caml-mimic's "
                "train/dev/test_full_hadm_ids.csv"
            )
    return paths


split_inputs = split_paths  # the name prepare calls on either dataset


def read_splits(paths: dict[str, Path]) -> pd.DataFrame:
    """``hadm_id`` -> ``split`` from the split files (one HADM_ID per line; a header line is skipped).

    An ID listed twice, in one file or in two, is a UserError: it would count in two splits.
    """
    seen: dict[int, tuple[str, Path]] = {}
    for split, path in paths.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            value = line.strip()
            if not value or (number == 1 and value.upper() == "HADM_ID"):
                continue
            try:
                hadm_id = int(value)
            except ValueError:
                raise UserError(f"{path} line {number}: {value[:40]!r} is not a HADM_ID; "
                                "the file holds one integer per line") from None
            if hadm_id in seen:
                first = seen[hadm_id][1]
                where = "twice in this file" if first == path else f"also in {first}"
                raise UserError(f"{path} line {number}: HADM_ID {hadm_id} is listed {where}; "
                                "each admission must be in exactly one split")
            seen[hadm_id] = (split, path)
    frame = pd.DataFrame({"hadm_id": list(seen), "split": [s for s, _ in seen.values()]})
    return frame.astype({"hadm_id": "int64", "split": "str"})


def _int_or_none(value: str, what: str, path: Path, row_id: object) -> int | None:
    """An integer ID written as "123" (or "123.0"); empty is None; anything else is a UserError."""
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text) if "." in text else int(text)
    except ValueError:
        number = None
    if number is None or number != int(number):
        raise UserError(f"{path} ROW_ID {row_id}: {what} {text[:40]!r} is not an integer; fix or remove that row")
    return int(number)


def stream_columns(path: Path, columns: Sequence[str], keep_columns: Sequence[str] | None = None,
                   keep: Callable[[Any], Any] | None = None, progress: bool = True,
                   dataset: str = "MIMIC-III") -> dict[str, list]:
    """Stream a large CSV block by block and return the Python values of the rows kept.

    Every column in ``columns`` is read as text; ``keep(block)`` takes each block as an Arrow table and
    returns what to hold of it (rows filtered, values blanked; the whole block without it), so memory
    grows with what is kept, not with the file.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from tqdm import tqdm

    keep_columns = list(keep_columns or columns)
    kept: dict[str, list] = {name: [] for name in keep_columns}
    raw = pa.OSFile(str(path), "rb")
    stream = pa.CompressedInputStream(raw, "gzip") if path.name.endswith(".gz") else raw
    rows = 0
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=NOTE_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns), column_types={c: pa.string() for c in columns}
            ),
        )
        with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name,
                  disable=None if progress else True, leave=False) as bar:
            for batch in reader:
                rows += batch.num_rows
                table = pa.Table.from_batches([batch])
                if keep is not None:
                    table = keep(table)
                for name in keep_columns:
                    kept[name] += table.column(name).to_pylist()
                bar.update(raw.tell() - bar.n)
                bar.set_postfix(rows=rows, refresh=False)
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot be parsed as {dataset} CSV ({exc}); check the file is complete") from exc
    finally:
        stream.close()
        raw.close()
        # Arrow's allocator keeps the freed blocks' pages (~130 MiB) mapped; the kept Python strings do not need them
        pa.default_memory_pool().release_unused()
    return kept


def read_discharge_summaries(path: Path, progress: bool = True) -> Notes:
    """Stream NOTEEVENTS and return discharge summaries + addenda concatenated per admission.

    Kept: ``CATEGORY == "Discharge summary"`` rows whose ``ISERROR`` is empty (or 0) and that carry a
    HADM_ID. Per admission the texts are joined with a blank line in chart order (CHARTDATE,
    CHARTTIME, ROW_ID), so the summary comes before its addenda; empty texts are skipped.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    seen = {"rows": 0, "summaries": 0, "errors": 0}

    def keep(block: Any) -> Any:
        seen["rows"] += block.num_rows
        is_summary = pc.equal(block.column("CATEGORY"), DISCHARGE_SUMMARY)
        seen["summaries"] += pc.sum(is_summary).as_py() or 0
        is_error = pc.invert(pc.is_in(pc.utf8_trim_whitespace(block.column("ISERROR")), value_set=pa.array(["", "0"])))
        seen["errors"] += pc.sum(pc.and_(is_summary, is_error)).as_py() or 0
        return block.filter(pc.and_(is_summary, pc.invert(is_error)))

    keep_columns = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "TEXT")
    kept = stream_columns(path, NOTE_COLUMNS, keep_columns, keep, progress)
    frame, counts = _concatenate(kept, path)
    counts = {"noteevents_rows": seen["rows"], "discharge_summary_rows": seen["summaries"],
              "iserror_rows_dropped": seen["errors"], **counts}
    return Notes(frame=frame, counts=counts)


def _concatenate(notes: dict[str, list], path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Join the kept rows per HADM_ID in chart order; IDs are validated here, on the few rows kept."""
    row_ids = [_int_or_none(v, "ROW_ID", path, v) for v in notes["ROW_ID"]]
    if any(r is None for r in row_ids):
        raise UserError(f"{path}: a discharge summary has no ROW_ID; the file is not MIMIC-III's NOTEEVENTS")
    hadm = [_int_or_none(v, "HADM_ID", path, r) for v, r in zip(notes["HADM_ID"], row_ids)]
    subject = [_int_or_none(v, "SUBJECT_ID", path, r) for v, r in zip(notes["SUBJECT_ID"], row_ids)]
    table = pd.DataFrame({
        "hadm_id": pd.array(hadm, dtype="Int64"), "subject_id": pd.array(subject, dtype="Int64"),
        "chartdate": pd.Series(notes["CHARTDATE"], dtype=object),
        "charttime": pd.Series(notes["CHARTTIME"], dtype=object),
        "row_id": pd.array(row_ids, dtype="int64"), "text": pd.Series(notes["TEXT"], dtype=object),
    })
    notes.clear()  # the table holds the same strings now
    no_hadm = int(table["hadm_id"].isna().sum())
    table = table[table["hadm_id"].notna()].sort_values(["hadm_id", "chartdate", "charttime", "row_id"], kind="stable")
    out_hadm, out_subject, out_text, out_n, out_rows, out_offsets = [], [], [], [], [], []
    empty_parts = 0
    rows = zip(table["hadm_id"].tolist(), table["subject_id"].tolist(), table["row_id"].tolist(),
               table["text"].tolist())
    for hadm_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        group = list(group)
        kept = [(row_id, text) for _, _, row_id, text in group if isinstance(text, str) and text.strip()]
        texts = [text for _, text in kept]
        empty_parts += len(group) - len(texts)
        subjects = [subject for _, subject, _, _ in group if subject is not None and subject is not pd.NA]
        out_hadm.append(int(hadm_id))
        out_subject.append(int(subjects[0]) if subjects else -1)
        out_text.append(NOTE_SEPARATOR.join(texts))
        out_n.append(len(texts))
        out_rows.append(" ".join(str(row_id) for _, _, row_id, _ in group))
        out_offsets.append(note_offsets(kept))
    frame = pd.DataFrame({
        "hadm_id": pd.array(out_hadm, dtype="int64"), "subject_id": pd.array(out_subject, dtype="int64"),
        "text": pd.Series(out_text, dtype=object), "n_notes": pd.array(out_n, dtype="int64"),
        "row_ids": pd.Series(out_rows, dtype=object), "note_offsets": pd.Series(out_offsets, dtype=object),
    })
    counts = {"discharge_summaries_without_hadm_id": no_hadm, "empty_note_rows": empty_parts,
              "admissions_with_summary": len(frame)}
    return frame, counts


def note_offsets(notes: list[tuple[int, str]]) -> list[tuple[int, int, int]]:
    """``(ROW_ID, begin, end)`` of each note inside the joined document (notes joined by a blank line).

    Evidence given as offsets into one NOTEEVENTS row (MDACE's) is moved into the document through these.

    >>> note_offsets([(7, "Summary"), (9, "Addendum")])
    [(7, 0, 7), (9, 9, 17)]
    """
    out, begin = [], 0
    for row_id, text in notes:
        out.append((int(row_id), begin, begin + len(text)))
        begin += len(text) + len(NOTE_SEPARATOR)
    return out


def read_codes(path: Path, system: str) -> tuple[pd.DataFrame, int]:
    """Distinct dotted codes per admission from DIAGNOSES_ICD or PROCEDURES_ICD, and the empty-code rows.

    ``ICD9_CODE`` is read as text (leading zeros kept). Rows with no code are skipped (MIMIC has a
    few); a code of the wrong shape is a UserError naming the file, line and ROW_ID.
    """
    table = pd.read_csv(path, usecols=list(CODE_COLUMNS), dtype=str, keep_default_na=False)
    raw = table["ICD9_CODE"].str.strip()
    present = raw != ""
    dotted: dict[str, str] = {}
    for value in raw[present].unique():
        try:
            dotted[value] = icd.to_dotted(value, system)
            icd.chapter(dotted[value], system)  # a well-shaped code must also fall in a chapter
        except ValueError as exc:
            line = int(raw.index[raw == value][0]) + 2  # + header line, 1-based
            row_id = table["ROW_ID"].iloc[line - 2]
            raise UserError(f"{path} line {line} (ROW_ID {row_id}): {exc}; fix or remove that row") from None
    hadm_text = table.loc[present, "HADM_ID"].str.strip()
    hadm = pd.to_numeric(hadm_text, errors="coerce")
    bad = hadm.isna() | (hadm % 1 != 0)
    if bad.any():
        first = bad.idxmax()  # the row label, which is the data-row position
        problem = (f"HADM_ID {hadm_text[first][:40]!r} is not an integer" if hadm_text[first]
                   else "a code without a HADM_ID")
        raise UserError(f"{path} line {first + 2} (ROW_ID {table['ROW_ID'][first]}): {problem}; fix or remove that row")
    codes = pd.DataFrame({
        "hadm_id": hadm.to_numpy().astype("int64"), "code": raw[present].map(dotted).to_numpy(dtype=object),
    })
    codes = codes.drop_duplicates().assign(system=system)
    return codes.reset_index(drop=True), int((~present).sum())


def read_titles(path: Path, system: str) -> pd.DataFrame:
    """``code`` (dotted), ``short_title``, ``long_title`` from D_ICD_DIAGNOSES or D_ICD_PROCEDURES."""
    table = pd.read_csv(path, usecols=list(TITLE_COLUMNS), dtype=str, keep_default_na=False)
    codes = []
    for line, value in enumerate(table["ICD9_CODE"], start=2):
        try:
            codes.append(icd.to_dotted(value, system))
        except ValueError as exc:
            raise UserError(f"{path} line {line}: {exc}; fix or remove that row") from None
    frame = pd.DataFrame({"code": codes, "short_title": table["SHORT_TITLE"].str.strip(),
                          "long_title": table["LONG_TITLE"].str.strip()})
    return frame.drop_duplicates("code").reset_index(drop=True)
