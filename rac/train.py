"""The RAC trainer: one plain loop where DDP, gradient accumulation and the title-embedding trick are visible.

Run it as ``torchrun --nproc-per-node N -m rac.train --study DIR --name NAME [--preset P] [--set k=v ...]``
(multi-node: ``--nnodes M --node-rank R --rdzv-backend c10d --rdzv-endpoint HOST:PORT``; the run directory must
then be on a filesystem all nodes share), as ``python -m rac.train ...`` (one process), or through
``bench train --nproc N``. Re-running the same command (or ``torchrun --max-restarts``) resumes from the last
checkpoint and ends with the same weights as an uninterrupted run. With ``--max-restarts``, export
``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (``bench train`` does): otherwise torchrun shares its rendezvous store
with the workers and restarted workers read the dead generation's addresses (pytorch/pytorch#135712).

One optimizer step, with W ranks, A micro-steps per rank and a global batch G = batch_per_rank x W x A:

1. E_t = encode_titles(all titles), ONCE per step (it costs ~580 GFLOP at paper size, more than 3 notes);
   a detached leaf copy with ``requires_grad`` goes into every micro-batch.
2. Each micro-batch adds (W / G) x sum of its notes' mean-over-codes BCE to the gradients; DDP all-reduces
   (averages) the reader's gradients on the last micro-step only (``require_backward_grad_sync``).
3. The leaf's accumulated gradient dL/dE_t is all-reduced (averaged) by hand, then ``E_t.backward(grad)``
   sends it through the title encoder once. DDP wraps ``model.reader`` only; the title encoder is
   ``model.coder``, a module of its own, so its gradient is exactly the single-process one and never travels
   twice.

The phases: ``_setup`` (run directory, word2vec, data, model, optimizer, resume), ``_train_epoch`` and its
``_step``, ``_evaluate_epoch`` (dev P@8, SWA snapshot, early stopping), ``_checkpoint_epoch`` / ``_checkpoint``,
and ``_finish`` (best vs SWA on dev, thresholds, test, summary). ``--ablate`` (rac.config) trains the paper's
Table 2 ablations.

Run directory ``study/runs/NAME/``: ``config.json``/``config.toml`` (resolved config), ``word2vec.txt``,
``checkpoints/`` (``last.pt`` every ``ckpt_every`` steps and at each epoch end, ``epoch-NNN.pt``),
``metrics.jsonl`` (one line per epoch), ``best.pt`` (best dev P@8), ``swa.pt`` (SWA average) and
``summary.json`` (dev/test metrics of both, the dev-tuned thresholds and the model ``bench predict`` uses).

Test hook: ``RAC_FAULT_AFTER_STEP=RANK:STEP`` makes that rank ``os._exit(17)`` right after optimizer step STEP,
once per run directory (a marker file remembers it), to test that a killed run resumes exactly.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from benchmark import metrics, study_files
from benchmark.errors import UserError
from benchmark.io import atomic_path, atomic_write_text
from benchmark.study import Study
from rac import word2vec
from rac.config import TrainConfig, add_arguments, dumps, from_dict, resolve
from rac.data import BucketSampler, EncodedNotes, collate, example_ids
from rac.model import RAC, flops_per_note, title_flops
from rac.run import RunData, autocast, build_model, load_data, load_weights, note_probs

FAULT_ENV = "RAC_FAULT_AFTER_STEP"


# ---- data ------------------------------------------------------------------------------------------------------
def require_study(study: Study) -> None:
    study.require("documents", "references", "codes")


def train_word2vec_for_run(study: Study, run_dir: Path, cfg: TrainConfig) -> None:
    """Train word2vec on the train split's ``tokens`` and save it with the run (skipped when it exists)."""
    path = run_dir / word2vec.FILENAME
    if path.exists():
        return
    train_tokens = study_files.read_documents(study, ["tokens"], split="train")["tokens"]
    if train_tokens.empty:
        raise UserError(f"{study.documents}: the train split is empty; re-run `bench prepare` with split files")
    words, vectors = word2vec.train_word2vec(
        (t.split() for t in train_tokens), d=cfg.d, window=cfg.w2v_window, min_count=cfg.w2v_min_count,
        epochs=cfg.w2v_epochs, workers=cfg.w2v_workers, seed=cfg.seed)
    if not words:
        raise UserError(f"word2vec: no training word occurs {cfg.w2v_min_count}+ times; "
                        f"lower it with --set w2v_min_count=N")
    word2vec.save(path, words, vectors)


def code_frequency(notes: EncodedNotes, n_codes: int) -> torch.Tensor:
    """Each code's share of training notes, smoothed to (0, 1): (count + 0.5) / (notes + 1).

    >>> notes = EncodedNotes(np.zeros(3), [], [], [], [], [np.array([0]), np.array([0, 1]), np.array([0])])
    >>> code_frequency(notes, 3).tolist()
    [0.875, 0.375, 0.125]
    """
    counts = np.bincount(np.concatenate(notes.labels), minlength=n_codes)
    return torch.from_numpy((counts + 0.5) / (len(notes.labels) + 1))


# ---- metrics (the ones training decides on; `bench evaluate` has the full set) --------------------------------
def _multi_hot(labels: list[np.ndarray], n_codes: int) -> np.ndarray:
    y = np.zeros((len(labels), n_codes), dtype=bool)
    for row, cols in enumerate(labels):
        y[row, cols] = True
    return y


def tune_threshold(probs: np.ndarray, labels: list[np.ndarray]) -> tuple[float, float]:
    """(threshold, dev micro-F1) by ``benchmark.metrics.tune_threshold``, from per-note label indices."""
    return metrics.tune_threshold(_multi_hot(labels, probs.shape[1]), probs)


def scores(probs: np.ndarray, labels: list[np.ndarray], threshold: float) -> dict[str, float]:
    """P@5/8/15 (benchmark.metrics' tie rule) and micro-F1 of the sets ``probs >= threshold``, over all codes."""
    y = _multi_hot(labels, probs.shape[1])
    at_k = metrics.precision_at_k(y, probs, [k for k in (5, 8, 15) if k <= probs.shape[1]])
    f1 = metrics.micro_scores(*metrics.code_counts(y, probs >= np.float32(threshold)))["f1"]
    return {**{f"p@{k}": v for k, v in at_k.items()}, "micro_f1": f1, "threshold": threshold}


# ---- distributed helpers ---------------------------------------------------------------------------------------
def gathered_probs(model: torch.nn.Module, notes: EncodedNotes, title_ids: torch.Tensor, cfg: TrainConfig,
                   device: torch.device, rank: int, world: int) -> np.ndarray:
    """All notes' probabilities, each rank scoring every world-th note; every rank gets the full matrix."""
    model.eval()
    with torch.no_grad(), autocast(device):
        titles = model.encode_titles(title_ids).float()
    mine = list(range(rank, len(notes), world))
    probs = note_probs(model, notes, mine, titles, cfg.eval_batch, device)
    if world == 1:
        return probs
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, (mine, probs))
    out = np.empty((len(notes), titles.shape[0]), dtype=np.float32)
    for indices, part in parts:
        out[indices] = part
    return out


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def peak_flops(device: torch.device) -> float:
    """This process's matmul peak (FLOP/s), measured now: bf16 on GPU, fp32 on CPU (the MFU denominator)."""
    n, dtype = (4096, torch.bfloat16) if device.type == "cuda" else (512, torch.float32)
    a = torch.ones(n, n, device=device, dtype=dtype)  # not randn: the global RNG drives dropout (exact resume)
    for _ in range(2):
        a @ a
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.2:
        a @ a
        reps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


# ---- run directory ---------------------------------------------------------------------------------------------
def prepare_run_dir(study: Study, run_dir: Path, cfg: TrainConfig) -> None:
    """Write the resolved config, or check that a re-run resolves to the same one (rank 0)."""
    path = run_dir / "config.json"
    if path.exists():
        earlier = from_dict(json.loads(path.read_text(encoding="utf-8")))
        mechanics = {"ckpt_every", "keep_epoch_checkpoints", "eval_batch", "w2v_workers", "max_steps"}
        diff = sorted(k for k, v in cfg.to_dict().items() if k not in mechanics and earlier.to_dict()[k] != v)
        if diff:
            changes = ", ".join(f"{k}: {earlier.to_dict()[k]} -> {getattr(cfg, k)}" for k in diff)
            raise UserError(f"{path}: run {run_dir.name} was started with another config ({changes}); "
                            f"use the same options to resume, or a new --name")
    import tomli_w

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dumps(cfg))
    atomic_write_text(run_dir / "config.toml", tomli_w.dumps(cfg.to_dict()))
    prepare = study.step("prepare") or {}
    atomic_write_text(run_dir / "study.json", json.dumps(
        {"study": str(study.root), "prepare_fingerprint": prepare.get("fingerprint")}, indent=1) + "\n")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def link_atomically(source: Path, target: Path) -> None:
    """``target`` becomes another name of ``source`` (a hard link, renamed into place)."""
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)
    os.replace(tmp, target)


# ---- training --------------------------------------------------------------------------------------------------
def train(study: Study, name: str, cfg: TrainConfig) -> dict[str, Any] | None:
    """Train (or resume) run ``name``; return the summary on rank 0 (None on other ranks or after max_steps)."""
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    with process_group(device) if ddp else nullcontext():
        return _train(study, name, cfg, rank, world, device, ddp)


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """The default process group (NCCL on GPUs, gloo on CPU), freed on the way out, threads and all.

    destroy_process_group only unregisters the group: its backend, and gloo's worker threads, live until the
    last reference goes. Left to interpreter exit, a gloo thread can outlive the interpreter and the rank aborts
    ("terminate called without an active exception"), after all of its work is done. Two things would hold the
    group past the run: the DDP wrapper's reference cycle (collected below), and the ``group=group.WORLD``
    defaults of ten ``torch.distributed.nn`` functions, a module DDP's constructor imports (through
    ``torch._dynamo``): imported after init_process_group, the defaults are the live group; before it, None.
    """
    import torch._dynamo  # noqa: F401  (before init_process_group: see above)

    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        gc.collect()
        dist.destroy_process_group()


@dataclass
class TrainingRun:
    """One rank's view of a training run: what it trains, and the progress its checkpoints save."""

    study: Study
    name: str
    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    ddp: bool
    data: RunData
    title_ids: torch.Tensor  # on the device
    model: RAC
    optimizer: torch.optim.Optimizer
    swa: AveragedModel
    sampler: BucketSampler
    state: dict[str, Any]  # global_step, best_p8, best_epoch, bad_epochs, history, stopped, epoch_loss/steps

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def run_dir(self) -> Path:
        return self.study.runs_dir / self.name

    @property
    def last(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"


def _train(study: Study, name: str, cfg: TrainConfig, rank: int, world: int, device: torch.device,
           ddp: bool) -> dict[str, Any] | None:
    """This rank's part of the run: setup, the epochs (steps, evaluation, checkpoints), then SWA finalisation."""
    cfg.validate(world)
    require_study(study)
    summary = study.runs_dir / name / "summary.json"
    if summary.exists():
        if rank == 0:
            print(f"run {name} is complete ({summary}); use a new --name to train again")
        return json.loads(summary.read_text(encoding="utf-8")) if rank == 0 else None
    run = _setup(study, name, cfg, rank, world, device, ddp)
    # DDP wraps the reader only: the coder (title encoder) runs once per step outside it, and its gradient is
    # all-reduced by hand (see the module docstring).
    reader = run.model.reader
    if ddp:
        reader = DDP(reader, device_ids=[device.index] if device.type == "cuda" else None)
    peak = peak_flops(device)
    while run.sampler.epoch < cfg.epochs and not run.state["stopped"]:
        epoch_start = time.perf_counter()
        if not _train_epoch(run, reader, peak):
            _checkpoint(run, run.last)
            if run.master:
                print(f"stopped at max_steps={cfg.max_steps}; checkpoint {run.last}")
            return None
        _evaluate_epoch(run, epoch_start)
        _checkpoint_epoch(run)
    return _finish(run)


def _setup(study: Study, name: str, cfg: TrainConfig, rank: int, world: int, device: torch.device,
           ddp: bool) -> TrainingRun:
    """Config and word2vec on disk (rank 0), then data, model, optimizer, SWA average and sampler on every rank;
    resumed from ``last.pt`` when there is one."""
    run_dir = study.runs_dir / name
    if rank == 0:
        prepare_run_dir(study, run_dir, cfg)
        train_word2vec_for_run(study, run_dir, cfg)
    if ddp:
        dist.barrier()  # word2vec and config are on disk for every rank
    data = load_data(study, run_dir, cfg)
    model = build_model(cfg, data, device)
    if cfg.prior_bias:
        model.init_output_bias(code_frequency(data.notes["train"], len(data.codes)).to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    sampler = BucketSampler(data.notes["train"].lengths, cfg.augment_copies, cfg.global_batch, cfg.batch_per_rank,
                            rank, world, cfg.seed, cfg.bucket_batches)
    torch.manual_seed(cfg.seed + rank)  # dropout differs across ranks, like independent data-parallel workers
    state = {"global_step": 0, "best_p8": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": [], "stopped": False}
    run = TrainingRun(study, name, cfg, rank, world, device, ddp, data, data.titles.to(device), model, optimizer,
                      AveragedModel(model), sampler, state)
    if run.last.exists():
        _resume(run)
    return run


def _resume(run: TrainingRun) -> None:
    ckpt = torch.load(run.last, map_location=run.device, weights_only=False)
    load_weights(run.model, ckpt["model"], run.last)
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.swa.load_state_dict(ckpt["swa"])
    run.sampler.load_state_dict(ckpt["sampler"])
    run.state = ckpt["state"]
    if len(ckpt["rng"]) == run.world:
        set_rng_state(ckpt["rng"][run.rank])
    elif run.master:
        print(f"resuming with {run.world} ranks instead of {len(ckpt['rng'])}: dropout draws will differ")
    if run.master:
        print(f"resumed run {run.name} at epoch {run.sampler.epoch + 1}, step {run.sampler.step} "
              f"(global step {run.state['global_step']})")


def _train_epoch(run: TrainingRun, reader: torch.nn.Module, peak: float) -> bool:
    """The epoch's remaining optimizer steps (with mid-epoch checkpoints); False when ``max_steps`` stopped it."""
    cfg, state, sampler = run.cfg, run.state, run.sampler
    run.model.train()
    steps_per_epoch = len(sampler)
    bar = tqdm(total=steps_per_epoch, initial=sampler.step, desc=f"epoch {sampler.epoch + 1}/{cfg.epochs}",
               unit="step", disable=not run.master, dynamic_ncols=True)
    if sampler.step == 0:
        state.update(epoch_loss=0.0, epoch_steps=0)
    for micro_batches in sampler:
        step_start = time.perf_counter()
        step_loss, flops = _step(run, reader, micro_batches)
        state["global_step"] += 1
        state["epoch_loss"] += step_loss.item()
        state["epoch_steps"] += 1
        dt = time.perf_counter() - step_start
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss.item():.4f}", notes_s=f"{cfg.global_batch / dt:.1f}",
                        mfu=f"{flops / run.world / dt / peak:.0%}")
        if os.environ.get(FAULT_ENV):
            _maybe_fail(run.run_dir, run.rank, state["global_step"])
        if cfg.max_steps and state["global_step"] >= cfg.max_steps:
            bar.close()
            return False
        if cfg.ckpt_every and state["global_step"] % cfg.ckpt_every == 0 and sampler.step < steps_per_epoch:
            _checkpoint(run, run.last)
    bar.close()
    return True


def _step(run: TrainingRun, reader: torch.nn.Module,
          micro_batches: list[list[tuple[int, int]]]) -> tuple[torch.Tensor, float]:
    """One optimizer step over this rank's micro-batches: (loss averaged over ranks, FLOPs of all ranks)."""
    cfg, model, device, world = run.cfg, run.model, run.device, run.world
    notes, n_codes, epoch = run.data.notes["train"], len(run.data.codes), run.sampler.epoch
    # 1. title embeddings once per optimizer step; micro-batches use a detached leaf copy
    with autocast(device):
        e_t = model.encode_titles(run.title_ids).float()
    e_leaf = e_t.detach().requires_grad_()
    step_loss, flops = torch.zeros((), device=device), 3 * title_flops(model.config)
    # 2. micro-batches; DDP all-reduces the reader's gradients on the last one only
    for micro, examples in enumerate(micro_batches):
        ids = [example_ids(notes, i, c, cfg.seed, epoch) for i, c in examples]
        tokens, mask, targets = collate(ids, [notes.labels[i] for i, _ in examples], n_codes)
        tokens, mask, targets = tokens.to(device), mask.to(device), targets.to(device)
        if run.ddp:
            reader.require_backward_grad_sync = micro == len(micro_batches) - 1
        with autocast(device):
            logits = reader(tokens, mask, titles=e_leaf)
        bce = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none").mean(dim=1)
        loss = bce.sum() * (world / cfg.global_batch)
        loss.backward()
        step_loss += loss.detach()
        flops += 3 * len(ids) * flops_per_note(model.config, tokens.shape[1])["total"] * world
    # 3. dL/dE_t: average over ranks, then one backward pass through the coder
    grad = e_leaf.grad
    if run.ddp:
        dist.all_reduce(grad)
        grad /= world
        dist.all_reduce(step_loss)
        step_loss /= world
    e_t.backward(grad)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return step_loss, flops


def _evaluate_epoch(run: TrainingRun, epoch_start: float) -> None:
    """Epoch end: dev P@8 at 0.5, the SWA snapshot, the best checkpoint, early stopping and metrics.jsonl."""
    cfg, state, epoch = run.cfg, run.state, run.sampler.epoch + 1
    dev_notes = run.data.notes["dev"]
    dev = scores(gathered_probs(run.model, dev_notes, run.title_ids, cfg, run.device, run.rank, run.world),
                 dev_notes.labels, 0.5)
    snapshot = cfg.swa and epoch >= cfg.swa_start and (epoch - cfg.swa_start) % cfg.swa_every == 0
    if snapshot:
        run.swa.update_parameters(run.model)
    improved = dev["p@8"] > state["best_p8"]
    if improved:
        state.update(best_p8=dev["p@8"], best_epoch=epoch, bad_epochs=0)
        if run.master:
            save_checkpoint(run.run_dir / "best.pt", {"model": run.model.state_dict(), "epoch": epoch,
                                                      "dev_p@8": dev["p@8"]})
    else:
        state["bad_epochs"] += 1
    state["stopped"] = bool(cfg.patience) and state["bad_epochs"] >= cfg.patience
    seconds = time.perf_counter() - epoch_start
    state["history"].append({
        "epoch": epoch, "global_step": state["global_step"],
        "train_loss": state["epoch_loss"] / max(state["epoch_steps"], 1),
        **{f"dev_{k}": v for k, v in dev.items() if k != "threshold"}, "best": improved,
        "swa_snapshot": snapshot, "swa_n_averaged": int(run.swa.n_averaged), "seconds": round(seconds, 2),
        "train_notes_per_s": round(state["epoch_steps"] * cfg.global_batch / seconds, 2),
    })
    if run.master:
        atomic_write_text(run.run_dir / "metrics.jsonl",
                          "".join(json.dumps(row, sort_keys=True) + "\n" for row in state["history"]))
        print(f"epoch {epoch}: dev P@8 {dev['p@8']:.4f} micro-F1@0.5 {dev['micro_f1']:.4f}"
              f"{' (best)' if improved else ''}{' [SWA snapshot]' if snapshot else ''}")


def _checkpoint_epoch(run: TrainingRun) -> None:
    """Move the sampler to the next epoch and save ``epoch-NNN.pt``, which becomes ``last.pt``."""
    epoch = run.sampler.epoch + 1
    run.sampler.set_epoch(epoch)
    epoch_path = run.last.with_name(f"epoch-{epoch:03d}.pt")
    _checkpoint(run, epoch_path)
    if run.master:
        link_atomically(epoch_path, run.last)
        _prune(run.last.parent, run.cfg.keep_epoch_checkpoints)
    if run.ddp:
        dist.barrier()


def _checkpoint(run: TrainingRun, path: Path) -> None:
    """Everything a resumed run needs to continue exactly: weights, optimizer, SWA, sampler, progress, every
    rank's RNG state (gathered to rank 0, which writes the file)."""
    rngs: list[Any] = [None] * run.world
    if run.ddp:
        dist.all_gather_object(rngs, rng_state())
    else:
        rngs = [rng_state()]
    if run.master:
        save_checkpoint(path, {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                               "swa": run.swa.state_dict(), "sampler": run.sampler.state_dict(),
                               "state": run.state, "rng": rngs, "config": run.cfg.to_dict(), "world_size": run.world})


def _maybe_fail(run_dir: Path, rank: int, step: int) -> None:
    fail_rank, _, fail_step = os.environ[FAULT_ENV].partition(":")
    marker = run_dir / ".fault-injected"
    if rank == int(fail_rank) and step == int(fail_step) and not marker.exists():
        marker.write_text(f"rank {rank} exited after step {step}\n")
        print(f"[{FAULT_ENV}] rank {rank} exits after step {step}", file=sys.stderr, flush=True)
        os._exit(17)


def _prune(ckpt_dir: Path, keep: int) -> None:
    if keep:
        for old in sorted(ckpt_dir.glob("epoch-*.pt"))[:-keep]:
            old.unlink()


def _finish(run: TrainingRun) -> dict | None:
    """SWA finalisation: evaluate best and SWA on dev (tune thresholds) and test; write swa.pt and summary.json."""
    cfg, data, model, swa = run.cfg, run.data, run.model, run.swa
    results: dict[str, Any] = {}
    best = run.run_dir / "best.pt"
    candidates = {"best": (torch.load(best, map_location=run.device)["model"], best)}
    if swa.n_averaged.item() > 0:
        candidates["swa"] = (swa.module.state_dict(), run.run_dir / "swa.pt")
        if run.master:
            save_checkpoint(run.run_dir / "swa.pt", {"model": candidates["swa"][0], "n_averaged": int(swa.n_averaged)})
    for label, (weights, path) in candidates.items():
        load_weights(model, weights, path)
        dev_probs = gathered_probs(model, data.notes["dev"], run.title_ids, cfg, run.device, run.rank, run.world)
        threshold, _ = tune_threshold(dev_probs, data.notes["dev"].labels)
        entry = {"file": f"{label}.pt", "threshold": threshold,
                 "dev": scores(dev_probs, data.notes["dev"].labels, threshold),
                 "dev_at_0.5": scores(dev_probs, data.notes["dev"].labels, 0.5)}
        if len(data.notes["test"]):
            test_probs = gathered_probs(model, data.notes["test"], run.title_ids, cfg, run.device, run.rank,
                                        run.world)
            entry["test"] = scores(test_probs, data.notes["test"].labels, threshold)
        results[label] = entry
    selected = max(results, key=lambda k: (results[k]["dev"]["p@8"], k == "best"))
    state = run.state
    summary = {"run": run.name, "system": cfg.system_name, "selected": selected, "models": results,
               "best_epoch": state["best_epoch"], "epochs_run": len(state["history"]),
               "global_steps": state["global_step"], "early_stopped": state["stopped"], "config": cfg.to_dict()}
    if not run.master:
        return None
    atomic_write_text(run.run_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    run.study.record_step(f"train-{run.name}", {
        "run": run.name, "system": cfg.system_name, "selected": selected,
        "threshold": results[selected]["threshold"], "dev_p8": results[selected]["dev"]["p@8"],
        "epochs_run": len(state["history"]), "config": cfg.to_dict()})
    for label, entry in results.items():
        test = entry.get("test")
        print(f"{label}: dev P@8 {entry['dev']['p@8']:.4f} micro-F1 {entry['dev']['micro_f1']:.4f} "
              f"(threshold {entry['threshold']:.2f})"
              + (f"; test P@8 {test['p@8']:.4f} micro-F1 {test['micro_f1']:.4f}" if test else ""))
    print(f"run {run.name} ({cfg.system_name}): {selected} model selected for prediction; {run.run_dir}")
    return summary


# ---- command line ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rac.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default=None, help="study directory (default: $BENCH_STUDY or ./study)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        train(Study.locate(args.study), args.name, resolve(args.preset, args.overrides, args.epochs, args.ablate))
    except UserError as exc:
        print(f"rac.train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
