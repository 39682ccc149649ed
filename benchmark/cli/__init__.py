"""`bench`: the command line. Thin by design: it parses arguments and calls library functions.

Each command group lives in its own module with a ``register(subparsers)`` function; handlers take the
parsed ``argparse.Namespace`` and return an exit code (or None for 0). A ``UserError`` anywhere becomes one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from benchmark import __version__
from benchmark.errors import UserError

# Order is the order in `bench --help`: the study, then the human arm, the machine arm, the results.
_COMMAND_MODULES = (
    "benchmark.cli.study",
    "benchmark.cli.labelstudio",
    "benchmark.cli.train",
    "benchmark.cli.score",
    "benchmark.cli.arms",
    "benchmark.cli.mdace",
    "benchmark.cli.report",
    "benchmark.cli.demo",
)

_DESCRIPTION = """\
Measure human medical coders and machine models (RAC, TF-IDF + logistic regression, or any model's
predictions) on the same MIMIC-III discharge summaries, scored the same way.

Every command works on a study directory: --study DIR, else $BENCH_STUDY, else ./study.
Typical order: demo-data (or your MIMIC files) -> prepare -> sample -> setup-labelstudio -> pull
-> train -> predict -> score -> evaluate -> report.  `bench demo` runs all of it on synthetic data.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"coding-bench {__version__}")
    parser.add_argument(
        "--study", metavar="DIR", default=None,
        help="study directory (default: $BENCH_STUDY or ./study)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except UserError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bench {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
