"""Small pieces shared by the command modules."""

from __future__ import annotations

import argparse

from benchmark.study import Study


def study_of(args: argparse.Namespace) -> Study:
    """The study directory named by the global ``--study`` option (or its defaults)."""
    return Study.locate(getattr(args, "study", None))


def add_parser(subparsers: argparse._SubParsersAction, name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows the summary and the longer explanation verbatim."""
    return subparsers.add_parser(
        name, help=summary, description=f"{summary}\n\n{details}".strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
