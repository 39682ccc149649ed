"""`bench train` and `bench predict`: the machine arm. Logic lives in rac.train/rac.predict (RAC) and
rac.tfidf_lr (TF-IDF + logistic regression); a run's recorded model kind routes `predict`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from benchmark.cli.common import add_parser, study_of

_TRAIN_DETAILS = """\
Trains RAC (Kim & Ganapathi 2021) on the study's train split: word2vec on the train split only, then the
reader/coder with Adam, global batch 16 (= batch_per_rank x processes x gradient accumulation), early
stopping on dev P@8, SWA, and a final evaluation of the best and SWA models on dev (threshold tuning) and test.
Writes study/runs/NAME/ (config, word2vec, checkpoints, metrics.jsonl, best.pt, swa.pt, summary.json).

Re-running the same command resumes from the last checkpoint. --nproc N starts N processes with torchrun
(DDP; gloo on CPU, nccl on GPU). For several machines run torchrun yourself on each:
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
      -m rac.train --study DIR --name NAME --preset paper
(the study and the run directory must be on a filesystem every node sees).

Presets: paper (the seed's recipe at full size; a GPU job), small (the demo: minutes on a CPU), tiny (tests).
--set KEY=VALUE overrides one config value, e.g. --set lr=1e-4 --set n_layers=2 (see rac/config.py).
--ablate trains the paper's Table 2 ablations: swa (no SWA average: the best dev checkpoint is the model),
sentperm (no sentence-permuted copies), titles (per-code queries learned from a random start, as in CAML,
instead of code-title embeddings), e.g. --ablate swa,sentperm,titles is the row "RAC - SWA - SentPerm -
CodeTitles". The run's config records them and summary.json names the run's row ("system").

--model tfidf-lr trains the paper's "Logistic Regression" row instead: TF-IDF over the whole note and one
logistic regression per code with >= 10 training notes (scikit-learn), threshold tuned on dev micro-F1; ~15 s
on the demo corpus (2 cores). Its --set keys: max_features, min_df, max_df, min_train_notes, C, n_jobs
(see rac/tfidf_lr.py). It writes study/runs/NAME/ with config.json, model.npz and summary.json."""

_PREDICT_DETAILS = """\
Writes study/predictions/RUN-SPLIT/: probabilities for every code (float16), the thresholded code sets at
the run's dev-tuned threshold, CAML's predicted.psv, and evidence.jsonl (for each predicted code the top-3
attention windows as character offsets into the note). The model is the one training selected (best
checkpoint or SWA average, whichever scored the higher dev P@8); --model picks one explicitly.
A tfidf-lr run (`bench train --model tfidf-lr`) writes the same files without evidence.jsonl; it has one model."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from rac.config import add_arguments  # light: torch is imported by the handlers only

    parser = add_parser(subparsers, "train", "train a model: RAC (DDP via torchrun; resumable) or TF-IDF + LR",
                        _TRAIN_DETAILS)
    add_arguments(parser)
    parser.add_argument("--model", default="rac", choices=["rac", "tfidf-lr"],
                        help="rac (default) or tfidf-lr (TF-IDF + logistic regression over the whole note)")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine (torchrun; default 1)")
    parser.add_argument("--max-restarts", type=int, default=0,
                        help="with --nproc: restart all workers this often after a failure (they resume)")
    parser.set_defaults(func=_train)

    parser = add_parser(subparsers, "predict", "predict codes with a trained run (RAC's with attention evidence)",
                        _PREDICT_DETAILS)
    parser.add_argument("--run", required=True, help="run name (study/runs/RUN)")
    parser.add_argument("--split", default="test", choices=["test", "sample", "dev"],
                        help="which notes: the test split (default), the coding sample, or dev")
    parser.add_argument("--model", default="auto", choices=["auto", "best", "swa"],
                        help="auto: the model training selected on dev P@8 (default)")
    parser.add_argument("--batch", type=int, default=0, help="notes per batch (default: from the run config)")
    parser.set_defaults(func=_predict)


def _train(args: argparse.Namespace) -> int:
    from benchmark.errors import UserError
    from rac.config import resolve
    from rac.train import require_study, train

    study = study_of(args)
    if args.model == "tfidf-lr":
        from rac.tfidf_lr import LRConfig, train as train_tfidf_lr

        if args.preset != "paper" or args.epochs is not None or args.nproc != 1 or args.ablate:
            raise UserError("--preset, --epochs, --nproc and --ablate are RAC's; tfidf-lr takes --set KEY=VALUE only")
        train_tfidf_lr(study, args.name, LRConfig.resolve(args.overrides))
        return 0
    cfg = resolve(args.preset, args.overrides, args.epochs, args.ablate)
    if args.nproc < 1:
        raise UserError(f"--nproc {args.nproc}: must be at least 1")
    cfg.validate(args.nproc)  # fail here with one line, not in N tracebacks
    require_study(study)
    if args.nproc == 1 and args.max_restarts == 0:
        train(study, args.name, cfg)
        return 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               f"--max-restarts={args.max_restarts}", "-m", "rac.train", "--study", str(study.root),
               "--name", args.name, "--preset", args.preset]
    for item in args.overrides:
        command += ["--set", item]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    if args.ablate:
        command += ["--ablate", args.ablate]
    # torch#135712: a rendezvous store shared with the workers hands restarted workers stale addresses
    env = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    return subprocess.run(command, env=env).returncode


def _predict(args: argparse.Namespace) -> int:
    from benchmark.errors import UserError
    from rac.tfidf_lr import MODEL_KIND, run_kind

    study = study_of(args)
    if run_kind(study.runs_dir / args.run) == MODEL_KIND:
        from rac.tfidf_lr import predict as predict_tfidf_lr

        if args.model != "auto":
            raise UserError(f"--model {args.model}: run {args.run} is a {MODEL_KIND} run, with one model (no best/SWA)")
        predict_tfidf_lr(study, args.run, args.split)
        return 0
    from rac.predict import predict

    predict(study, args.run, args.split, args.model, args.batch)
    return 0
