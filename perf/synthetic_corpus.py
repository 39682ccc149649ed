"""Time `generate_corpus` and print its figures beside this machine's own gzip throughput.

    .venv/bin/python perf/synthetic_corpus.py --admissions 4000
    .venv/bin/python perf/synthetic_corpus.py --admissions 58000 --other-notes 35   # MIMIC-III scale

The generator is Python string building plus gzip. The reference is zlib at the same level on the corpus's
own NOTEEVENTS bytes (CPU time, measured in this run): what compression alone needs; the rest is generation.
The machine is shared, so CPU seconds are the comparable figure; wall time is printed too.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import tempfile
import time
import zlib
from pathlib import Path

from benchmark.synthetic import (
    DEFAULT_ADMISSIONS,
    DEFAULT_OTHER_NOTES_PER_ADMISSION,
    MIMIC_OTHER_NOTES_PER_ADMISSION,
    generate_corpus,
)


LEVEL = 3  # generate_corpus's default gzip level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admissions", type=int, default=DEFAULT_ADMISSIONS)
    parser.add_argument("--other-notes", type=float, default=DEFAULT_OTHER_NOTES_PER_ADMISSION,
                        help=f"non-discharge notes per admission (MIMIC-III: {MIMIC_OTHER_NOTES_PER_ADMISSION:g})")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "corpus"
        wall, cpu = time.perf_counter(), time.process_time()
        summary = generate_corpus(out, args.admissions, seed=0, progress=False,
                                  other_notes_per_admission=args.other_notes, compresslevel=LEVEL)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        # Reference: zlib at the generator's level on up to 256 MiB of the corpus's own NOTEEVENTS bytes.
        with gzip.open(out / "NOTEEVENTS.csv.gz", "rb") as fh:
            sample = fh.read(256 << 20)
            rest = sum(len(chunk) for chunk in iter(lambda: fh.read(64 << 20), b""))
        raw_bytes = len(sample) + rest
        start = time.process_time()
        zlib.compress(sample, LEVEL)
        zlib_mb_s = len(sample) / (time.process_time() - start) / 1e6

    print(json.dumps(summary["rows"] | {"files_bytes": summary["files"]}, indent=1))
    print(f"admissions {args.admissions}, other notes/admission {args.other_notes}; splits {summary['splits']}; "
          f"codes used {summary['codes_used']}")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {peak_mib:.0f} MiB")
    print(f"NOTEEVENTS rows {summary['rows']['NOTEEVENTS.csv.gz']:,}, uncompressed {raw_bytes / 1e6:.0f} MB, "
          f"gzip {summary['files']['NOTEEVENTS.csv.gz'] / 1e6:.0f} MB")
    print(f"reference: zlib level {LEVEL} on this machine {zlib_mb_s:.0f} MB/s (CPU) -> compression alone "
          f"{raw_bytes / 1e6 / zlib_mb_s:.1f} s of the {cpu:.1f} CPU s")


if __name__ == "__main__":
    main()
