"""The paper-size RAC trainer on one GPU: bf16 throughput, memory, attention backend, MFU, full-recipe time.

    .venv/bin/python perf/gpu.py                      # one GPU, paper preset (goal: finishes within 8 minutes)
    .venv/bin/python perf/gpu.py --tiny --device cpu  # the same code path at toy size on a CPU (the test suite)

What it measures, in one run (the last line is the one-line summary; the lines above it give the details):

1. **bf16 training throughput** of the paper preset (``rac.config``'s ``paper``: n_x 4,096, d 300, 4 layers;
   8,930 codes, vocabulary 50,000, full-length random notes; ``--tiny`` takes the ``tiny`` preset) at per-GPU
   batch 4, 8 and 16, one optimizer step of the global batch 16 timed in its parts exactly as ``rac.train``
   runs it (``perf/rac.py``'s ``training_parts``: E_t once per step, 16 / batch micro-batches, one backward
   through the title encoder, Adam), under the trainer's bf16 autocast (``rac.predict.autocast``; fp32 on CPU).
   Notes per second = 16 / step time. The **peak memory** of each batch is ``torch.cuda.max_memory_allocated``
   over its step (an out-of-memory batch is reported as OOM).
2. **The SDPA backend** the self-attention actually runs at head dim 300, with the trainer's padding mask
   (``torch._fused_sdp_choice``, and each ``torch.nn.attention.sdpa_kernel`` backend tried alone;
   FlashAttention stops at head dim 256 and takes no mask), against the same attention with the head dim
   zero-padded to 320 (scale kept at 1/sqrt(300), so the result is unchanged) and as plain bf16 matmuls
   (``baddbmm`` + fp32 softmax + ``bmm``): forward + backward milliseconds at batch 4 x 4,096 tokens.
3. **MFU**: the FLOPs the recipe needs (``perf/rac.py``'s ``training_flops_per_note``, from
   ``rac.model.flops_per_note``/``title_flops``) x notes/s over the bf16 matmul peak measured in this run
   (fp32 on CPU).
4. **The full paper recipe's time**, extrapolated: 10 epochs x 3 copies (sentence permutation) x 47,723 train
   notes at the best batch's throughput, plus a dev pass per epoch and the final dev + test passes of two
   models (best, SWA) at the measured inference rate (eval batch 8). Notes are full length (4,096 tokens), so
   it is an upper bound for MIMIC-III, whose notes are shorter on average. Goal: <= 30 minutes on one
   H100-class GPU.

``--budget-s`` (default 480) stops measuring further batch sizes once it is spent, so the script ends in time.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a file, this directory would shadow the ``rac`` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from perf.rac import (GLOBAL_BATCH, MATMUL_SHAPES, inference_seconds, matmul_peak, random_notes, timed,
                      training_flops_per_note, training_parts)
from rac.config import resolve
from rac.model import RAC, RACConfig, attention
from rac.predict import autocast

TRAIN_NOTES, DEV_NOTES, TEST_NOTES = 47_723, 1_631, 3_372  # MIMIC-III full splits (Mullenbach et al. 2018)
EPOCHS, COPIES = 10, 3                                       # the paper's recipe: 10 epochs, x3 augmentation
GOAL_MINUTES = 30
EVAL_BATCH = 8
SIZES = {"paper": (50_000, 8_930), "tiny": (2_000, 64)}  # (vocabulary, codes) beside the preset's model sizes


def step_seconds(model: RAC, optimizer: torch.optim.Optimizer, config: RACConfig, batch: int, titles: torch.Tensor,
                 device: torch.device, gen: torch.Generator) -> float:
    """Wall seconds of one optimizer step of the global batch at ``batch`` notes per micro-batch."""
    tokens, mask = random_notes(config, batch, gen)
    targets = (torch.rand(batch, config.n_codes, generator=gen) < 0.002).float()
    with autocast(device):
        parts, _ = training_parts(model, optimizer, (tokens.to(device), mask.to(device)), targets.to(device), titles)
    micro_steps = GLOBAL_BATCH // batch
    return (parts["titles_forward"].wall + parts["titles_backward"].wall + parts["optimizer"].wall
            + micro_steps * parts["micro_batch"].wall)


def training(model: RAC, config: RACConfig, batches: list[int], reps: int, titles: torch.Tensor,
             device: torch.device, deadline: float) -> dict[int, dict[str, float | str]]:
    """Per batch: median step seconds, notes/s and peak GiB (or "OOM" / "skipped")."""
    optimizer = torch.optim.Adam(model.parameters(), lr=8e-5)
    gen = torch.Generator().manual_seed(0)
    out: dict[int, dict[str, float | str]] = {}
    for batch in batches:
        if time.perf_counter() > deadline:
            out[batch] = {"status": "skipped"}
            continue
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            step_seconds(model, optimizer, config, batch, titles, device, gen)  # warm-up: allocator, autotuning
            times = [step_seconds(model, optimizer, config, batch, titles, device, gen) for _ in range(reps)]
        except torch.cuda.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            out[batch] = {"status": "OOM"}
            continue
        seconds = statistics.median(times)
        # CPU has no allocator statistics: its peak is reported as n/a
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "n/a"
        out[batch] = {"status": "ok", "step_s": seconds, "notes_per_s": GLOBAL_BATCH / seconds, "peak_gib": peak}
        print(f"training batch {batch}: {seconds:.3f} s per step of {GLOBAL_BATCH} notes "
              f"({GLOBAL_BATCH / seconds:.2f} notes/s), peak memory {peak} GiB", flush=True)
    return out


def sdpa_choice(q: torch.Tensor, mask: torch.Tensor, scale: float | None = None) -> str:
    """The SDPA backend PyTorch picks for these inputs (its own dispatch rule), by name."""
    from torch.nn.attention import SDPBackend

    try:
        choice = torch._fused_sdp_choice(q[:, None], q[:, None], q[:, None], mask[:, None, None, :], 0.0, False,
                                         scale=scale)
    except RuntimeError as exc:  # no backend at all
        return f"none ({str(exc).splitlines()[0][:60]})"
    return {int(b.value): name for name, b in SDPBackend.__members__.items()}.get(int(choice), str(choice))


def attention_variants(d: int, tokens: int, batch: int, device: torch.device, dtype: torch.dtype,
                       reps: int) -> dict[str, dict[str, str | float]]:
    """Forward + backward ms of the self-attention at head dim ``d``: as the model runs it (SDPA), zero-padded
    to the next multiple of 64, and as explicit matmuls; with the backend each one runs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    padded = -(-d // 64) * 64 + (64 if d % 64 == 0 else 0)
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(batch, tokens, d, device=device, dtype=dtype, generator=gen).requires_grad_()
               for _ in range(3))
    mask = torch.ones(batch, tokens, dtype=torch.bool, device=device)
    mask[0, tokens // 2 :] = False  # a shorter note in the batch: the trainer's padding mask
    scale = 1 / math.sqrt(d)

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, padded - d))

    def model_sdpa() -> torch.Tensor:
        return attention(q, k, v, mask)

    def padded_sdpa() -> torch.Tensor:
        out = F.scaled_dot_product_attention(pad(q)[:, None], pad(k)[:, None], pad(v)[:, None],
                                             attn_mask=mask[:, None, None, :], scale=scale)
        return out[:, 0, :, :d]

    def matmuls() -> torch.Tensor:
        bias = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask, float("-inf"))
        scores = torch.baddbmm(bias[:, None, :], q * scale, k.transpose(1, 2))
        return torch.bmm(torch.softmax(scores.float(), dim=-1).to(dtype), v)

    def forward_backward(fn) -> float:
        fn().sum().backward()  # warm-up
        return statistics.median(timed(lambda: fn().sum().backward()).wall for _ in range(reps)) * 1e3

    reference = matmuls().detach().float()
    out: dict[str, dict[str, str | float]] = {}
    for label, fn, backend in ((f"sdpa_d{d}", model_sdpa, sdpa_choice(q.detach(), mask)),
                               (f"sdpa_d{padded}", padded_sdpa, sdpa_choice(pad(q.detach()), mask, scale)),
                               ("bf16_matmuls" if dtype == torch.bfloat16 else "matmuls", matmuls, "baddbmm+bmm")):
        err = (fn().detach().float() - reference).abs().max().item()
        out[label] = {"backend": backend, "ms": forward_backward(fn), "max_abs_diff": err}
    alone = []
    for name, backend in SDPBackend.__members__.items():
        if name in ("ERROR", "OVERRIDEABLE"):
            continue
        try:
            with sdpa_kernel([backend]):
                model_sdpa().sum().backward()
            alone.append(name)
        except (RuntimeError, NotImplementedError):  # "No viable backend": this one cannot run these inputs
            continue
    out["runs_alone"] = {"backend": "+".join(alone) or "none", "ms": float("nan"), "max_abs_diff": 0.0}
    for label, row in out.items():
        print(f"attention {label}: backend {row['backend']}, {row['ms']:.2f} ms forward+backward "
              f"(batch {batch} x {tokens} tokens), max |diff| vs matmuls {row['max_abs_diff']:.2e}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (seconds on a CPU; the test suite)")
    parser.add_argument("--reps", type=int, default=0, help="timed steps per batch size (default 3 GPU, 1 tiny)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="stop adding batch sizes after this")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("perf/gpu.py: no CUDA device here; run it on a GPU, or with --device cpu --tiny")
    device = torch.device(args.device)
    reps = args.reps or (1 if args.tiny else 3)
    size = "tiny" if args.tiny else "paper"
    config = resolve(size).model_config(*SIZES[size])  # the trainer's preset, as `bench train --preset` builds it
    batches = [1, 2, 4] if args.tiny else [4, 8, 16]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}"
          f", {'bf16 autocast' if dtype == torch.bfloat16 else 'fp32'}, {config}", flush=True)

    shapes = [(256, 256, 256)] if args.tiny else [(8192, 8192, 8192), *MATMUL_SHAPES]
    peak = matmul_peak(2 if args.tiny else 10, str(device), dtype, shapes).wall * 1e9
    print(f"{'bf16' if dtype == torch.bfloat16 else 'fp32'} matmul peak: {peak / 1e12:.3g} TFLOP/s", flush=True)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = RAC(config, embeddings=torch.randn(config.vocab_size, config.d, generator=gen) * 0.1).to(device)
    title_tokens = torch.randint(2, config.vocab_size, (config.n_codes, config.n_t), generator=gen).to(device)
    attn = attention_variants(config.d, config.n_x, batches[0], device, dtype, reps)
    train = training(model, config, batches, reps, title_tokens, device, started + args.budget_s)

    model.eval()
    with torch.no_grad(), autocast(device):
        titles = model.encode_titles(title_tokens)
    notes = tuple(t.to(device) for t in random_notes(config, EVAL_BATCH, gen))
    with autocast(device):
        inference_seconds(model, notes, titles)  # warm-up
        infer_notes_per_s = 1 / inference_seconds(model, notes, titles).wall
    print(f"inference batch {EVAL_BATCH}: {infer_notes_per_s:.2f} notes/s", flush=True)

    ok = {b: r for b, r in train.items() if r["status"] == "ok"}
    best = max(ok, key=lambda b: ok[b]["notes_per_s"]) if ok else None
    notes_per_s = ok[best]["notes_per_s"] if best else float("nan")
    mfu = training_flops_per_note(config) * notes_per_s / peak
    eval_notes = EPOCHS * DEV_NOTES + 2 * (DEV_NOTES + TEST_NOTES)
    recipe_min = (EPOCHS * COPIES * TRAIN_NOTES / notes_per_s + eval_notes / infer_notes_per_s) / 60
    memory = ",".join(f"{b}:" + str(r["peak_gib"] if r["status"] == "ok" else r["status"])
                      for b, r in train.items())
    sdpa = attn[f"sdpa_d{config.d}"]
    others = {k: v for k, v in attn.items() if k not in (f"sdpa_d{config.d}", "runs_alone")}
    print(f"gpu_check size={size} device={device.type} "
          f"train_notes_per_s={notes_per_s:.2f} best_batch={best} peak_mem_gib={memory} "
          f"sdpa_backend_d{config.d}={sdpa['backend']} sdpa_runs_alone={attn['runs_alone']['backend']} "
          f"attn_ms=" + ",".join(f"{k}:{v['ms']:.2f}" for k, v in [(f"sdpa_d{config.d}", sdpa), *others.items()])
          + f" matmul_peak_tflops={peak / 1e12:.3g} mfu={mfu:.3f} infer_notes_per_s={infer_notes_per_s:.2f} "
          f"full_recipe_min={recipe_min:.1f} goal_min={GOAL_MINUTES} "
          f"within_goal={'yes' if recipe_min <= GOAL_MINUTES else 'no'} wall_s={time.perf_counter() - started:.0f}",
          flush=True)


if __name__ == "__main__":
    main()
