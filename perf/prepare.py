"""Performance of `bench prepare` on a full-size synthetic MIMIC-III or MIMIC-IV corpus, with a same-run reference.

    .venv/bin/python perf/prepare.py                     # 58,000 admissions, MIMIC's ~35 notes each
    .venv/bin/python perf/prepare.py --admissions 4000   # the demo size
    .venv/bin/python perf/prepare.py --schema mimic4     # 300,000 admissions: MIMIC-IV's ~331k notes, ~122k split
    .venv/bin/python perf/prepare.py --schema mimic4 --admissions 4000 --icd9-fraction 0.2   # its demo corpus

Phases (each in a fresh process, so ``ru_maxrss`` is that phase's own peak resident memory):

1. ``generate_corpus`` (what `bench demo-data --admissions N` runs) with MIMIC's ratio of other notes,
   so NOTEEVENTS has about 2.08M rows like the real file; for MIMIC-IV, ``generate_mimic4_corpus`` with
   MIMIC-IV's share of ICD-9 admissions, so note/discharge has ~2.7 notes per split admission as the real one;
2. the reference: this machine's raw throughput on the same NOTEEVENTS file, gzip inflate alone and
   pyarrow's streaming CSV parse of every column with no filtering (rows/s);
3. ``prepare`` (what `bench prepare` runs), with its own per-phase wall times.

The figure to read is the ratio of prepare's NOTEEVENTS streaming rate to the raw parse rate: it says
how much the loader costs over just reading the file, whatever the machine. Peak RSS shows that memory
follows the discharge summaries kept, not the file. The sentence/token workers (a process pool) are
separate processes and are not in the prepare process's RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.synthetic_mimic4 import FULL_SCALE_ICD9_FRACTION, ICD9_FRACTION, SPLIT_FILE  # noqa: E402


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _generate(out: str, admissions: int, seed: int, schema: str, icd9_fraction: float) -> dict:
    from benchmark.synthetic import MIMIC_OTHER_NOTES_PER_ADMISSION, generate_corpus
    from benchmark.synthetic_mimic4 import generate_mimic4_corpus

    start = time.perf_counter()
    if schema == "mimic4":  # note/discharge holds discharge notes only, as MIMIC-IV-Note's does
        summary = generate_mimic4_corpus(Path(out), admissions=admissions, seed=seed, progress=False,
                                         icd9_fraction=icd9_fraction)
    else:
        summary = generate_corpus(Path(out), admissions=admissions, seed=seed, progress=False,
                                  other_notes_per_admission=MIMIC_OTHER_NOTES_PER_ADMISSION)
    return {"seconds": time.perf_counter() - start, "rss_mib": _peak_rss_mib(), "summary": summary}


def _reference(path: str) -> dict:
    """Raw gzip inflate and raw streaming CSV parse of the same file: the machine's own ceiling."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from benchmark.mimic import NOTE_BLOCK_BYTES

    start = time.perf_counter()
    inflated = 0
    with pa.input_stream(path, compression="gzip") as stream:
        while chunk := stream.read(16 << 20):
            inflated += len(chunk)
    inflate_s = time.perf_counter() - start

    import pandas as pd

    every_column = {name: pa.string() for name in pd.read_csv(path, nrows=0).columns}  # no type guessing
    start = time.perf_counter()
    rows = 0
    with pa.input_stream(path, compression="gzip") as stream:
        reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=NOTE_BLOCK_BYTES),
                                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                                convert_options=pacsv.ConvertOptions(column_types=every_column))
        for batch in reader:
            rows += batch.num_rows
    parse_s = time.perf_counter() - start
    return {"inflated_bytes": inflated, "inflate_s": inflate_s, "rows": rows, "parse_s": parse_s,
            "rss_mib": _peak_rss_mib()}


def _prepare(corpus: str, study: str, splits: str) -> dict:
    from benchmark.prepare import prepare
    from benchmark.study import Study

    timings: dict[str, float] = {}
    start = time.perf_counter()
    summary = prepare(Study(Path(study)), Path(corpus), Path(splits), force=True, progress=True, timings=timings)
    return {"seconds": time.perf_counter() - start, "timings": timings, "summary": summary,
            "rss_mib": _peak_rss_mib()}


def _in_fresh_process(function, *args):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admissions", type=int, default=None,
                        help="admissions to generate (default: 58,000 for mimic3, 300,000 for mimic4: full size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schema", choices=("mimic3", "mimic4"), default="mimic3",
                        help="corpus schema: MIMIC-III (NOTEEVENTS) or MIMIC-IV (note/discharge, Edin's split file)")
    parser.add_argument("--icd9-fraction", type=float, default=FULL_SCALE_ICD9_FRACTION,
                        help="mimic4: share of admissions coded in ICD-9, outside the split (default: MIMIC-IV's "
                             f"ratio, {FULL_SCALE_ICD9_FRACTION}; the generator's own default is {ICD9_FRACTION})")
    parser.add_argument("--workdir", type=Path, default=None, help="where corpus and study go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and study afterwards")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="reuse a corpus written earlier (skips phase 1; --admissions is then ignored)")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="perf-prepare-"))
    corpus, study = work / "corpus", work / "study"
    mimic4 = args.schema == "mimic4"
    notes_name = "note/discharge.csv.gz" if mimic4 else "NOTEEVENTS.csv.gz"
    print(f"machine: {platform.machine()}, {multiprocessing.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"workdir: {work}")
    try:
        if args.corpus:
            corpus = args.corpus.resolve()
            print(f"1. corpus reused from {corpus} (not generated in this run)")
        else:
            admissions = args.admissions or (300_000 if mimic4 else 58_000)
            generated = _in_fresh_process(_generate, str(corpus), admissions, args.seed, args.schema,
                                          args.icd9_fraction)
            rows = generated["summary"]["rows"]
            shape = "; ".join(f"{name} {n:,} rows" for name, n in rows.items()) if mimic4 else \
                f"{rows[notes_name]:,} {notes_name} rows"
            print(f"1. {args.schema} corpus (admissions={admissions:,}"
                  + (f", icd9_fraction={args.icd9_fraction}" if mimic4 else "")
                  + f"): {generated['seconds']:.1f} s, peak RSS {generated['rss_mib']:.0f} MiB; {shape}")
        notes_file = corpus / notes_name
        print(f"   {notes_name}: {notes_file.stat().st_size / 2**20:.0f} MiB")

        ref = _in_fresh_process(_reference, str(notes_file))
        raw_mib = ref["inflated_bytes"] / 2**20
        print(f"2. reference on the same file: gzip inflate {raw_mib / ref['inflate_s']:.0f} MiB/s "
              f"({raw_mib:.0f} MiB in {ref['inflate_s']:.1f} s); raw pyarrow CSV parse of all columns "
              f"{ref['rows'] / ref['parse_s']:,.0f} rows/s ({ref['parse_s']:.1f} s)")

        splits = corpus / SPLIT_FILE if mimic4 else corpus
        prepared = _in_fresh_process(_prepare, str(corpus), str(study), str(splits))
        counts = prepared["summary"]["counts"]
        stream_s = prepared["timings"]["stream note/discharge" if mimic4 else "stream NOTEEVENTS"]
        streamed = counts["discharge_rows" if mimic4 else "noteevents_rows"]
        kept = counts["admissions_with_summary"] if mimic4 else counts["discharge_summary_rows"]
        rate = streamed / stream_s
        print(f"3. prepare: {prepared['seconds']:.1f} s wall, peak RSS {prepared['rss_mib']:.0f} MiB "
              f"({notes_name} uncompressed: {raw_mib:.0f} MiB)")
        for phase, seconds in prepared["timings"].items():
            print(f"   {phase:<30} {seconds:8.1f} s")
        print(f"   {notes_name}: {streamed:,} rows streamed at {rate:,.0f} rows/s = "
              f"{rate / (ref['rows'] / ref['parse_s']):.2f} x the raw parse rate; "
              f"{kept:,} {'admissions with a note' if mimic4 else 'discharge summaries'} kept")
        adm = prepared["summary"]["admissions"]
        print(f"   admissions {adm['train']:,} / {adm['dev']:,} / {adm['test']:,}; "
              f"label space {prepared['summary']['label_space']['codes']:,} codes; "
              f"notes/s over the whole prepare: {adm['total'] / prepared['seconds']:.0f}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
