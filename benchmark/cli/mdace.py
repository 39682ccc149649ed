"""`bench import-mdace`: MDACE's professional coders' codes and evidence spans into the study."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.common import add_parser, study_of

_IMPORT_DETAILS = """\
MDACE (Cheng et al., ACL 2023) is a public set of professional coders' codes on 302 MIMIC-III inpatient
charts, every code with the evidence spans the coders highlighted. Clone github.com/3mcloud/MDACE (MIT) and
pass its folder: this reads data/Inpatient/<VERSION>/1.0/<hadm_id>-<VERSION>.json (nothing of MDACE is
bundled), archives the files read into study/exports/ (one zip), then:

  - matches each chart to the study's admission (charts not in the study, and outside its test split, are
    counted and listed);
  - places each span in the study's document (summary + addenda) through note_map.parquet from `bench
    prepare`; spans in other notes (radiology, physician, ...) keep their codes without offsets; spans past
    their note's end, or whose text differs from the file's note text, no longer fit and are counted;
  - reads ICD-9-CM codes as diagnoses and ICD-9-PCS as procedures, dotted or not; codes missing from the
    study's code catalogue are flagged (scored as wrong), codes of another code system are not scored.

Writes mdace_spans.parquet and mdace_charts.parquet, and [steps.import_mdace] in study.toml. The ICD-9 files
hold codes mapped from the coders' ICD-10; `type` says how (Human, MapType.EXACT, APPROX, MULTI, MULTI_DESC,
NO_ENTRY), and scoring's --mdace-types chooses which count. A re-run with the same files is a no-op
rewrite; different files are refused unless --force.

example: git clone https://github.com/3mcloud/MDACE && bench import-mdace MDACE"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "import-mdace", "import MDACE's coder codes and evidence spans (302 charts)",
                   _IMPORT_DETAILS)
    p.add_argument("directory", type=Path, metavar="DIR", help="a clone of github.com/3mcloud/MDACE")
    p.add_argument("--version", choices=("ICD-9", "ICD-10"), default="ICD-9",
                   help="which MDACE folder (default ICD-9; this MIMIC-III study scores ICD-9 codes only)")
    p.add_argument("--force", action="store_true", help="replace an earlier import made from different files")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    from benchmark.mdace import charts_path, format_summary, import_mdace, spans_path

    study = study_of(args)
    summary = import_mdace(study, args.directory, args.version, args.force)
    print(format_summary(summary))
    print(f"Wrote {spans_path(study)} and {charts_path(study)}")
    return 0
