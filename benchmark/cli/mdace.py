"""`bench import-mdace`, `bench score-mdace`, `bench evidence`: MDACE's coders as a human arm and as gold evidence."""

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

_SCORE_DETAILS = """\
Scores MDACE's coders against the study's references on the imported MDACE charts in the test split, with
Table 1's conventions, bootstrap intervals, randomization tests and breakdowns, and every model prediction set
that covers those charts beside them (a run's -test set; or --predictions). Two MDACE rows:

  all notes                     the codes of the chosen types, wherever their evidence lies
  discharge-summary evidence    the codes with a span in the discharge summary or its addenda

MDACE's coders read all of a chart's notes while RAC reads the discharge summary, so the second row is the
like-for-like one. --mdace-types chooses the annotations counted: human (coded in ICD-9 directly), mapped
(mapped from the coders' ICD-10: MapType.EXACT, APPROX, MULTI, MULTI_DESC, NO_ENTRY) or all (default).
Writes table1_mdace and profiles_mdace (both profiles) into scores.json, keeping the other tables."""

_EVIDENCE_DETAILS = """\
Scores a model's evidence (evidence.jsonl from `bench predict`: for each predicted code, the top attention
windows as character offsets into the discharge summary) against the MDACE spans placed in the discharge
summary and its addenda, on the MDACE test-split charts the prediction set covers. MDACE's measures
(Cheng et al. 2023), counts summed over charts, 0/0 -> 0:

  exact span         (begin, end, code) must match exactly
  token              MDACE's tokens of each span, (token position, code): partial overlaps earn credit
  pos-indep span     (lowercased span text, code): the same words anywhere in the chart count
  pos-indep token    (token text, code)

Rows: all predicted codes; correctly predicted codes only (predicted and annotated by MDACE in the summary,
both sides restricted to them); and a baseline of random windows of the same token lengths (seeded), which is
what chance gives. Spans are trimmed as in MDACE's published results. Writes `evidence` into scores.json."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "import-mdace", "import MDACE's coder codes and evidence spans (302 charts)",
                   _IMPORT_DETAILS)
    p.add_argument("directory", type=Path, metavar="DIR", help="a clone of github.com/3mcloud/MDACE")
    p.add_argument("--version", choices=("ICD-9", "ICD-10"), default="ICD-9",
                   help="which MDACE folder (default ICD-9; this MIMIC-III study scores ICD-9 codes only)")
    p.add_argument("--force", action="store_true", help="replace an earlier import made from different files")
    p.set_defaults(func=_import)

    s = add_parser(subparsers, "score-mdace", "Table 1 (MDACE): MDACE's coders and models on the MDACE charts",
                   _SCORE_DETAILS)
    s.add_argument("--mdace-types", choices=("human", "mapped", "all"), default="all",
                   help="which MDACE annotation types count (default all; printed with the rows)")
    s.add_argument("--predictions", metavar="PATH", action="append", default=[],
                   help="a prediction directory (or name under study/predictions) or a CAML .psv; repeatable")
    s.add_argument("--profile", choices=("paper", "corrected"), default=None,
                   help="named conventions printed (default: corrected); both profiles are always stored")
    s.add_argument("--bootstrap", metavar="B", type=int, default=1000, help="bootstrap resamples (default 1000)")
    s.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and randomization test (default 0)")
    s.set_defaults(func=_score)

    e = add_parser(subparsers, "evidence", "score a model's attention evidence against MDACE's coder spans",
                   _EVIDENCE_DETAILS)
    e.add_argument("--predictions", metavar="NAME", action="append", default=[],
                   help="a prediction set with evidence.jsonl (name under study/predictions or a path); "
                        "default: every such set")
    e.add_argument("--mdace-types", choices=("human", "mapped", "all"), default="all",
                   help="which MDACE annotation types are gold evidence (default all)")
    e.add_argument("--seed", type=int, default=0, help="seed of the random-window baseline (default 0)")
    e.set_defaults(func=_evidence)


def _import(args: argparse.Namespace) -> int:
    from benchmark.mdace import format_summary, import_mdace

    study = study_of(args)
    summary = import_mdace(study, args.directory, args.version, args.force)
    print(format_summary(summary))
    print(f"Wrote {study.mdace_spans} and {study.mdace_charts}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from benchmark.conventions import resolve_conventions
    from benchmark.errors import UserError
    from benchmark.mdace_coders import format_mdace, record_score, score_mdace
    from benchmark.scores_file import write_scores

    if args.bootstrap < 1:
        raise UserError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    study = study_of(args)
    conv, profile = resolve_conventions(args.profile)
    result = score_mdace(study, conv, profile, args.mdace_types, args.predictions, args.bootstrap, args.seed)
    path = write_scores(study, result)
    print(format_mdace(result["table1_mdace"]))
    record_score(study, result["table1_mdace"], path, args.bootstrap, args.seed)
    print(f"Wrote {path}")
    return 0


def _evidence(args: argparse.Namespace) -> int:
    from benchmark.attention_evidence import format_evidence, score_evidence
    from benchmark.scores_file import write_scores

    study = study_of(args)
    result = score_evidence(study, args.predictions, args.mdace_types, args.seed)
    path = write_scores(study, result)
    print(format_evidence(result["evidence"]))
    print(f"Wrote {path}")
    return 0
