"""`bench demo`: the whole human-vs-machine study on the synthetic corpus, in one command.

The demo is composed of the same `bench` commands a user runs by hand (README), in order, so it exercises
exactly the real code paths: demo-data -> prepare -> sample -> Label Studio (setup, simulated coders,
pull) -> train and predict (RAC, and TF-IDF + logistic regression beside it) -> score -> evaluate ->
import-mdace, score-mdace and evidence (on the corpus's synthetic MDACE companion) -> report. With ``--mimic``
it runs the same steps on the user's MIMIC-III files instead of the synthetic corpus (the human arm is still
simulated, and says so; MDACE is left to the user).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from benchmark.cli.common import add_parser, study_of
from benchmark.cli.labelstudio import CODER_BEHAVIOURS
from benchmark.errors import UserError

DEMO_CODERS = ("coder.a@demo.invalid", "coder.b@demo.invalid")
DEMO_RUN = "demo-small"
DEMO_LR_RUN = "demo-lr"  # the paper's "Logistic Regression" row, trained beside RAC


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "demo", "Run the whole pipeline on the bundled synthetic MIMIC-shaped corpus.",
        "Steps: demo-data, prepare, sample (508 notes), a local Label Studio with two coder accounts,\n"
        "simulated coders coding through its API (labelled 'simulated' everywhere), pull, a small RAC\n"
        "trained on the CPU and TF-IDF + logistic regression beside it (about a minute), predict, score,\n"
        "evaluate and report. Prints Table 1 and Table 2 with both models, and the report's path.\n"
        "Re-running continues an existing demo study (every step is idempotent).",
    )
    parser.add_argument("--admissions", type=int, default=None,
                        help="synthetic corpus size (default: the generator's default, >= 600 test notes)")
    parser.add_argument("--n", type=int, default=508, help="coding sample size (default: 508, as in the paper)")
    parser.add_argument("--seed", type=int, default=0, help="seed for corpus, sample, coders and training")
    parser.add_argument("--preset", default="small", help="RAC preset for the demo model (default: small)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra RAC config overrides, passed to `bench train --set`")
    parser.add_argument("--dataset", choices=("mimic3", "mimic4"), default="mimic3",
                        help="synthetic corpus schema: mimic3 (ICD-9, default) or mimic4 (ICD-10-CM/PCS, "
                             "Edin et al.'s split file)")
    parser.add_argument("--mimic", metavar="DIR",
                        help="use real MIMIC-III CSVs (or MIMIC-IV's folder with hosp/ and note/) from DIR instead "
                             "of synthetic data")
    parser.add_argument("--splits", metavar="PATH",
                        help="with --mimic: directory of the *_full_hadm_ids.csv files (or, for MIMIC-IV, "
                             "mimiciv_icd10_split.feather)")
    parser.add_argument("--coder-behaviour", choices=CODER_BEHAVIOURS, default="paper",
                        help="how the simulated coders code: paper (default; calibrated to the paper's Table 1, "
                             "micro P 47.7, R 12.1) or careful (most reference codes found); see simulate-coders")
    parser.add_argument("--no-labelstudio", action="store_true",
                        help="skip Label Studio and the (simulated) human arm; score the model alone")
    parser.set_defaults(func=run_demo)


def _overlap(sample_size: int) -> int:
    """Notes coded by both simulated coders, for agreement: 40 of the paper's 508, fewer for a small demo."""
    return max(2, min(40, sample_size // 10))


def run_demo(args: argparse.Namespace) -> int:
    from annotation.pull import DEFAULT_NAME
    from benchmark.cli import main as bench
    from benchmark.synthetic_mimic4 import SPLIT_FILE
    from reports.render import REPORT_NAME

    study = study_of(args)
    base = ["--study", str(study.root)]
    if args.mimic and not args.splits:
        raise UserError("--mimic needs --splits DIR (the Mullenbach {train,dev,test}_full_hadm_ids.csv files)")
    corpus = study.root / "synthetic-corpus"
    steps: list[tuple[str, Callable[[], Sequence[str] | None]]] = []

    if args.mimic:
        steps.append(("prepare (your MIMIC files)", lambda: ["prepare", "--mimic", args.mimic, "--splits", args.splits]))
    else:
        size = ["--admissions", str(args.admissions)] if args.admissions else []
        splits = corpus / SPLIT_FILE if args.dataset == "mimic4" else corpus
        steps.append(("synthetic corpus", lambda: ["demo-data", "--out", str(corpus), "--seed", str(args.seed),
                                                   "--schema", args.dataset, *size]))
        steps.append(("prepare", lambda: ["prepare", "--mimic", str(corpus), "--splits", str(splits)]))
    steps.append(("sample", lambda: ["sample", "--n", str(args.n), "--seed", str(args.seed)]))
    if not args.no_labelstudio:
        steps += [
            ("Label Studio server", lambda: ["labelstudio", "start"]),
            ("Label Studio projects", lambda: ["setup-labelstudio", "--coders", ",".join(DEMO_CODERS),
                                               "--design", f"overlap:{_overlap(args.n)}", "--simulated"]),
            ("simulated coders", lambda: ["simulate-coders", "--seed", str(args.seed),
                                          "--behaviour", args.coder_behaviour]),
            ("pull coder exports", lambda: ["pull"]),
        ]
    sets = [item for override in args.overrides for item in ("--set", override)]
    steps += [
        ("train RAC", lambda: ["train", "--name", DEMO_RUN, "--preset", args.preset, "--set", f"seed={args.seed}", *sets]),
        ("predict sample", lambda: ["predict", "--run", DEMO_RUN, "--split", "sample"]),
        ("predict test split", lambda: ["predict", "--run", DEMO_RUN, "--split", "test"]),
        ("train TF-IDF + LR", lambda: ["train", "--model", "tfidf-lr", "--name", DEMO_LR_RUN]),
        ("predict sample (TF-IDF + LR)", lambda: ["predict", "--run", DEMO_LR_RUN, "--split", "sample"]),
        ("predict test split (TF-IDF + LR)", lambda: ["predict", "--run", DEMO_LR_RUN, "--split", "test"]),
    ]
    if not args.no_labelstudio:
        # The paper profile, so the printed Table 1 carries the paper's own rows beside the study's.
        steps.append(("score (Table 1)", lambda: ["score", "--profile", "paper",
                                                  "--coders", str(study.exports_dir / DEFAULT_NAME)]))
    steps.append(("evaluate (Table 2)", lambda: ["evaluate"]))
    if not args.mimic and args.dataset == "mimic3":  # the MIMIC-III corpus's MDACE companion: an MDACE row, evidence
        steps += [
            ("import MDACE (synthetic)", lambda: ["import-mdace", str(corpus / "mdace")]),
            ("score MDACE coders", lambda: ["score-mdace"]),
            ("evidence vs MDACE", lambda: ["evidence"]),
        ]
    steps.append(("report", lambda: ["report"]))
    if args.no_labelstudio:
        print("bench demo: --no-labelstudio: skipping Label Studio and the simulated human arm; "
              "Table 1 needs coder exports, so only Table 2 and the report are produced")

    started = time.perf_counter()
    for index, (title, make_argv) in enumerate(steps, start=1):
        argv = list(make_argv() or [])
        print(f"\n=== [{index}/{len(steps)}] {title}: bench {' '.join(argv)}", flush=True)
        step_started = time.perf_counter()
        code = bench([*base, *argv])
        if code != 0:
            print(f"bench demo: step '{title}' failed (exit {code}); fix the error above and re-run `bench demo`")
            return code
        print(f"--- {title} done in {time.perf_counter() - step_started:.1f} s", flush=True)
    print(f"\nbench demo: finished in {time.perf_counter() - started:.0f} s")
    print(f"bench demo: report: {study.report_dir / REPORT_NAME}")
    if not args.no_labelstudio:
        print(f"bench demo: Label Studio keeps running so you can look at the coders' projects; stop it with "
              f"`bench --study {study.root} labelstudio stop`")
    return 0
