"""RAC at full paper size on this machine: seconds per note, GFLOP/s, and the fraction of the fp32 matmul peak.

    .venv/bin/python perf/rac.py            # 3 inference and 2 training repetitions (~3 min on a quiet machine)
    .venv/bin/python perf/rac.py --quick    # 1 repetition each (~1.5 min quiet; ~5 min at load average 7)

The model is the paper's (n_x 4,096, d 300, 8,930 codes, 4 layers) with random weights and random tokens
(vocabulary 50,000); speed does not depend on the values. The reference is the same run's fp32 matmul peak:
the best GFLOP/s of ``torch.matmul`` at the model's own matmul shapes, re-measured between the model's
repetitions so both see the same machine load (the machine is shared; check ``uptime`` first).

FLOPs are those the recipe needs (``rac.model.flops_per_note`` / ``title_flops``, docs/architecture.md §6), the
same whatever the implementation, so caching and fusion show up as speed, never as extra FLOPs:
- inference: the forward pass, ~168 GFLOP per note; titles are encoded once and cached, so they count zero;
- training: 3 x forward per note, plus the title encoder (~580 GFLOP, x3 with backward) once per optimizer
  step of the global batch of 16, i.e. 3 x 580 / 16 per note. One step is timed in its parts, exactly as the
  trainer runs it: E_t once, micro-batches of ``--batch`` notes (forward + backward into a detached E_t leaf),
  one backward through the title encoder, one Adam step. Seconds per note = micro-batch time / batch +
  (titles + optimizer time) / 16.

The last line is ``inference_peak_fraction=F training_peak_fraction=F`` (best repetition against the best peak;
the medians are printed above it). Each figure is also given per CPU second (the process's CPU time, all
threads): on a machine shared with other jobs, the model's GFLOP per CPU second over the matmul's is the
ratio that the other jobs disturb least, while the wall-clock ratio favours the short matmuls, which can fall
into a quiet moment more easily than a 30-second training step.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a file, this directory would shadow the ``rac`` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from rac.model import RAC, RACConfig, flops_per_note, title_flops

GLOBAL_BATCH = 16  # the paper's optimizer batch; the title encoder is amortised over it
MATMUL_SHAPES = [(4096, 300, 4096), (4096, 4096, 300), (8930, 300, 4096), (4096, 300, 1024), (4096, 3000, 300)]


class Seconds(NamedTuple):
    """Wall seconds, and the process's CPU seconds (all threads) for the same span."""

    wall: float
    cpu: float

    def __add__(self, other: Seconds) -> Seconds:  # type: ignore[override]
        return Seconds(self.wall + other.wall, self.cpu + other.cpu)

    def __truediv__(self, n: float) -> Seconds:
        return Seconds(self.wall / n, self.cpu / n)


def synchronize() -> None:
    """Wait for queued GPU work, so that wall time covers it (a no-op on CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object]) -> Seconds:
    synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize()
    return Seconds(time.perf_counter() - wall, time.process_time() - cpu)


def training_flops_per_note(config: RACConfig) -> float:
    """FLOPs one training note needs: 3 x forward, plus 3 x the title encoder shared by the global batch."""
    return 3 * flops_per_note(config, config.n_x)["total"] + 3 * title_flops(config) / GLOBAL_BATCH


def matmul_peak(repeats: int, device: str = "cpu", dtype: torch.dtype = torch.float32,
                shapes: list[tuple[int, int, int]] = MATMUL_SHAPES) -> Seconds:
    """Best rates of torch.matmul over ``shapes`` (M x K @ K x N; default the model's), best of ``repeats``.

    Returned as GFLOP per wall second and GFLOP per CPU second (the latter, compared with the model's own
    GFLOP per CPU second, is the ratio that other processes on the machine disturb least).
    """
    wall = cpu = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        out = torch.empty(m, n, device=device, dtype=dtype)
        torch.matmul(a, b, out=out)  # warm-up (allocation, MKL/cuBLAS dispatch)
        for _ in range(repeats):
            s = timed(lambda: torch.matmul(a, b, out=out))
            wall, cpu = max(wall, 2 * m * k * n / s.wall / 1e9), max(cpu, 2 * m * k * n / s.cpu / 1e9)
    return Seconds(wall, cpu)


def random_notes(config: RACConfig, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-length notes (n_x real tokens each, ids >= 2 so no padding or unknowns)."""
    tokens = torch.randint(2, config.vocab_size, (n, config.n_x), generator=generator)
    return tokens, torch.ones(n, config.n_x, dtype=torch.bool)


def inference_seconds(model: RAC, notes: tuple[torch.Tensor, torch.Tensor], titles: torch.Tensor) -> Seconds:
    """Seconds per note for one forward pass over the batch (eval mode, no autograd)."""
    model.eval()
    with torch.inference_mode():
        return timed(lambda: model(*notes, titles)) / notes[0].shape[0]


def training_parts(model: RAC, optimizer: torch.optim.Optimizer, notes: tuple[torch.Tensor, torch.Tensor],
                   targets: torch.Tensor, title_tokens: torch.Tensor) -> tuple[dict[str, Seconds], torch.Tensor]:
    """Seconds of the parts of one optimizer step, run the way ``rac.train`` runs them, and the step's E_t."""
    model.train()
    encoded: list[torch.Tensor] = []
    parts = {"titles_forward": timed(lambda: encoded.append(model.encode_titles(title_tokens)))}
    e_t = encoded[0]
    e_leaf = e_t.detach().requires_grad_()

    def micro_batch() -> None:
        logits = model(*notes, e_leaf)
        F.binary_cross_entropy_with_logits(logits, targets).backward()

    parts["micro_batch"] = timed(micro_batch)
    parts["titles_backward"] = timed(lambda: e_t.backward(e_leaf.grad))
    parts["optimizer"] = timed(lambda: (optimizer.step(), optimizer.zero_grad(set_to_none=True)))
    return parts, e_leaf.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition each (under 2 minutes)")
    parser.add_argument("--batch", type=int, default=4, help="training micro-batch (notes); default 4")
    parser.add_argument("--infer-batch", type=int, default=2, help="notes per inference forward; default 2")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--codes", type=int, default=8_930)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    infer_reps, train_reps, peak_reps = (1, 1, 2) if args.quick else (3, 2, 4)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    config = RACConfig(vocab_size=args.vocab, n_codes=args.codes)
    model = RAC(config, embeddings=torch.randn(config.vocab_size, config.d, generator=gen) * 0.1)
    title_tokens = torch.randint(2, config.vocab_size, (config.n_codes, config.n_t), generator=gen)
    forward = flops_per_note(config, config.n_x)["total"]
    titles_fwd = title_flops(config)
    infer_flops = forward
    train_flops = training_flops_per_note(config)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {config}")
    print(f"FLOPs per note: forward {forward / 1e9:.1f} G (inference), training {train_flops / 1e9:.1f} G "
          f"(3 x forward + 3 x {titles_fwd / 1e9:.0f} G titles / {GLOBAL_BATCH})")

    peaks = [matmul_peak(peak_reps)]
    print(f"fp32 matmul peak: {peaks[-1].wall:.1f} GFLOP/s ({peaks[-1].cpu:.1f} per CPU second)")

    def rates(seconds: Seconds, flops: float) -> str:
        return f"{flops / seconds.wall / 1e9:.1f} GFLOP/s ({flops / seconds.cpu / 1e9:.1f} per CPU second)"

    # Training: one optimizer step's parts per repetition.
    optimizer = torch.optim.Adam(model.parameters(), lr=8e-5)
    train: list[Seconds] = []
    for rep in range(train_reps):
        notes = random_notes(config, args.batch, gen)
        targets = (torch.rand(args.batch, config.n_codes, generator=gen) < 0.002).float()
        parts, titles = training_parts(model, optimizer, notes, targets, title_tokens)
        per_step = parts["titles_forward"] + parts["titles_backward"] + parts["optimizer"]
        train.append(parts["micro_batch"] / args.batch + per_step / GLOBAL_BATCH)
        peaks.append(matmul_peak(peak_reps))
        print(f"training rep {rep + 1}: {train[-1].wall:.3f} s/note, {rates(train[-1], train_flops)} ("
              + ", ".join(f"{k} {v.wall:.2f} s" for k, v in parts.items()) + f"); peak now {peaks[-1].wall:.1f}")

    # Inference: the titles are encoded once and cached (the last step's E_t stands in for that cache).
    model.eval()
    with torch.inference_mode():
        model(*random_notes(config, 1, gen), titles)  # warm-up (oneDNN primitives, allocator)
    infer: list[Seconds] = []
    for rep in range(infer_reps):
        infer.append(inference_seconds(model, random_notes(config, args.infer_batch, gen), titles))
        peaks.append(matmul_peak(peak_reps))
        print(f"inference rep {rep + 1}: {infer[-1].wall:.3f} s/note, {rates(infer[-1], infer_flops)}; "
              f"peak now {peaks[-1].wall:.1f}")

    peak, peak_cpu = max(p.wall for p in peaks), max(p.cpu for p in peaks)
    fractions = {}
    for name, seconds, flops in (("inference", infer, infer_flops), ("training", train, train_flops)):
        best, median = min(s.wall for s in seconds), statistics.median(s.wall for s in seconds)
        best_cpu = min(s.cpu for s in seconds)
        fractions[name] = flops / best / 1e9 / peak
        print(f"{name}: best {best:.3f} s/note ({flops / best / 1e9:.1f} GFLOP/s, {fractions[name]:.3f} of peak), "
              f"median {median:.3f} s/note ({flops / median / 1e9 / peak:.3f} of peak); per CPU second "
              f"{flops / best_cpu / 1e9:.1f} GFLOP = {flops / best_cpu / 1e9 / peak_cpu:.3f} of the matmul's")
    print(f"peak: best {peak:.1f} GFLOP/s, median {statistics.median(p.wall for p in peaks):.1f} over "
          f"{len(peaks)} measurements; best per CPU second {peak_cpu:.1f}; load average now "
          f"{os.getloadavg()[0]:.1f}")
    print(f"inference_peak_fraction={fractions['inference']:.3f} training_peak_fraction={fractions['training']:.3f}")

if __name__ == "__main__":
    main()
