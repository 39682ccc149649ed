"""`bench compare-arms`: the assisted arm against the unassisted one, coder by coder (benchmark/arms.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.common import add_parser, study_of

_DETAILS = """\
Reads both arms' exports (default: `bench pull`'s merged-latest.json and merged-assisted-latest.json), archives
them like `bench score`, and for each coder and arm prints micro P/R/F1 against the references, codes per note,
the median seconds per chart (lead_time) and the agreement with the model (micro F1 between the coder's codes
and the codes RAC proposed, in both arms: assistance can anchor coders toward the model). A paired
randomization test over the notes coded in both arms (the crossover of `setup-labelstudio --assist`) gives the
micro-F1 difference, assisted minus unassisted, and its p-value. Writes `arms` into scores.json."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "compare-arms", "assisted vs unassisted coders: accuracy, time, anchoring", _DETAILS)
    p.add_argument("--unassisted", metavar="FILE", type=Path, default=None,
                   help="the unassisted arm's export (default: study/exports/merged-latest.json)")
    p.add_argument("--assisted", metavar="FILE", type=Path, default=None,
                   help="the assisted arm's export (default: study/exports/merged-assisted-latest.json)")
    p.add_argument("--permutations", type=int, default=10000, help="randomization-test permutations (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the randomization test (default 0)")
    p.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from benchmark.arms import compare_arms, default_exports, format_arms, proposed_codes
    from benchmark.errors import UserError
    from benchmark.exports import read_coder_exports
    from benchmark.references import read_references
    from benchmark.sampling import read_shortlist
    from benchmark.scores_file import write_scores

    study = study_of(args)
    run = (study.step("setup-labelstudio") or {}).get("assist")
    if not run:
        raise UserError("no assisted arm: set it up with `bench setup-labelstudio --assist RUN`, then `bench pull`")
    plain, helped = default_exports(study)
    exports = [read_coder_exports([path], study) for path in (args.unassisted or plain, args.assisted or helped)]
    admissions = sorted({a.hadm_id for e in exports for a in e.annotations})
    block = compare_arms(study, *exports, read_references(study, admissions),
                         proposed_codes(study, run, read_shortlist(study)), args.permutations, args.seed)
    block["assist_run"] = run
    path = write_scores(study, {"arms": block})
    print(format_arms(block))
    print(f"Wrote {path}")
    return 0
