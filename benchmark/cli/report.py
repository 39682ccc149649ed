"""`bench report`: render the study's HTML report (the logic lives in ``reports.render``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.common import add_parser, study_of

_DETAILS = """\
Writes one self-contained HTML file (no network fetches: figures, styles and scripts are inlined) from
study/scores.json and the study files: provenance, Table 1 under the paper and corrected conventions,
Table 2 next to the paper's reported numbers, figures, coder agreement and throughput, and a per-note
drill-down of reference, coder and model codes. Missing pieces (no coder export, no model, no scores yet)
are listed on the page with the command that produces them.

By default the report contains NO note text, because MIMIC-III's data use agreement forbids sharing notes:
it is written to study/report/index.html. With --include-text it adds each sampled note with the model's
evidence windows highlighted, carries a "contains MIMIC text, do not share" banner, and is written to
study/report/index-with-text.html (mode 0600) so it never replaces the shareable copy.

Prints the path of the written file."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(subparsers, "report", "Render the HTML report of a study (humans vs RAC).", _DETAILS)
    parser.add_argument("--include-text", action="store_true",
                        help="include note text and evidence highlights (private: never share the result)")
    parser.add_argument("--out", metavar="PATH", type=Path, default=None,
                        help="output file (default: study/report/index.html, or index-with-text.html with "
                             "--include-text)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reports.render import render_report

    path = render_report(study_of(args), out=args.out, include_text=args.include_text)
    print(path)
    return 0
