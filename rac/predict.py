"""`bench predict`: a trained run's probabilities for every code and note, with attention evidence.

Which weights: the run's ``summary.json`` names the model (best-on-dev checkpoint or SWA average) that scored
the higher dev P@8 at the end of training, and the dev-tuned threshold tuned for *that* model; ``--model``
overrides the choice (and then uses that model's own tuned threshold). The title embeddings E_t depend only on
the weights, so they are computed once and cached in the run directory, keyed by the weights' SHA-256.

Evidence: for each predicted code, the three highest code-attention positions whose windows do not overlap;
a window is the ``kernel`` tokens around the position (the span the note convolution mixed into it), given as
character offsets ``[start, end)`` into the note text, with the attention weight at the position as ``score``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from benchmark.errors import UserError
from benchmark.io import atomic_path, sha256_file
from benchmark.metrics import threshold_scores
from benchmark.predictions import Predictions, write_predictions
from benchmark.study import Study
from rac.config import from_dict
from rac.run import DOC_COLUMNS, autocast, build_model, load_data, load_weights, note_batches

EVIDENCE_WINDOWS = 3


def evidence_windows(weights: np.ndarray, starts: np.ndarray, ends: np.ndarray, half: int,
                     k: int = EVIDENCE_WINDOWS) -> list[dict[str, float | int]]:
    """The top-``k`` non-overlapping token windows of one code's attention over one note.

    >>> w = np.array([0.1, 0.5, 0.05, 0.05, 0.3]); s = np.arange(5) * 4; e = s + 3
    >>> evidence_windows(w, s, e, half=1, k=2)
    [{'start': 0, 'end': 11, 'score': 0.5}, {'start': 12, 'end': 19, 'score': 0.3}]
    """
    n = len(starts)
    taken = np.zeros(n, dtype=bool)
    out: list[dict[str, float | int]] = []
    for position in np.argsort(-weights[:n], kind="stable"):
        lo, hi = max(0, position - half), min(n - 1, position + half)
        if taken[lo : hi + 1].any():
            continue
        taken[lo : hi + 1] = True
        out.append({"start": int(starts[lo]), "end": int(ends[hi]), "score": round(float(weights[position]), 6)})
        if len(out) == k:
            break
    return out


def load_run(study: Study, run: str, choice: str = "auto") -> tuple[dict, Path, float, str]:
    """(summary, weights file, threshold, model name) of a finished run."""
    run_dir = study.runs_dir / run
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        known = sorted(p.name for p in study.runs_dir.glob("*/summary.json")) if study.runs_dir.exists() else []
        raise UserError(f"{summary_path} does not exist: run `bench train --name {run}` to completion first"
                        + (f" (finished runs: {', '.join(p for p in known)})" if known else ""))
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    name = summary["selected"] if choice == "auto" else choice
    if name not in summary["models"]:
        raise UserError(f"--model {choice}: run {run} has models {', '.join(summary['models'])}")
    return summary, run_dir / summary["models"][name]["file"], float(summary["models"][name]["threshold"]), name


def cached_titles(model, weights: Path, title_ids: torch.Tensor, device: torch.device) -> torch.Tensor:
    """E_t for these weights: from ``<run>/title-embeddings-<sha>.pt`` or computed once and stored there."""
    digest = sha256_file(weights)[:16]
    cache = weights.parent / f"title-embeddings-{digest}.pt"
    if cache.exists():
        return torch.load(cache, map_location=device)
    model.eval()
    with torch.no_grad(), autocast(device):
        titles = model.encode_titles(title_ids.to(device)).float()
    with atomic_path(cache) as tmp:
        torch.save(titles.cpu(), tmp)
    return titles


def predict(study: Study, run: str, split: str = "test", choice: str = "auto", batch_size: int = 0) -> Path:
    """Write ``study/predictions/<run>-<split>/`` (probabilities, sets, evidence, .psv); return the directory."""
    from benchmark.sampling import prediction_documents

    summary, weights, threshold, model_name = load_run(study, run, choice)
    cfg = from_dict(summary["config"])
    data = load_data(study, study.runs_dir / run, cfg, splits=())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    docs = prediction_documents(study, split, DOC_COLUMNS)
    notes = data.encode(docs)
    model = build_model(cfg, data, device)
    load_weights(model, torch.load(weights, map_location=device)["model"], weights)
    titles = cached_titles(model, weights, data.titles, device)

    probs = np.empty((len(notes), len(data.codes)), dtype=np.float32)
    evidence: list[dict] = [{}] * len(notes)
    codes = np.asarray(data.codes)
    half = cfg.kernel // 2
    batch = batch_size or max(1, min(cfg.eval_batch, 4))
    with tqdm(total=len(notes), desc=f"predict {run} on {split}", unit="note") as bar:
        for chunk, p, attn in note_batches(model, notes, range(len(notes)), titles, batch, device, attention=True):
            # the sets as benchmark.predictions derives them from the stored float16 probabilities
            above = threshold_scores(p.astype(np.float16), threshold)
            for row, index in enumerate(chunk):
                probs[index] = p[row]
                predicted = np.flatnonzero(above[row])
                weights_rows = attn[row, torch.from_numpy(predicted).to(attn.device)].float().cpu().numpy()
                evidence[index] = {
                    "hadm_id": int(notes.hadm_ids[index]),
                    "codes": {str(codes[c]): evidence_windows(w, notes.starts[index], notes.ends[index], half)
                              for c, w in zip(predicted, weights_rows)},
                }
            bar.update(len(chunk))
    preds = Predictions(name=f"{run}-{split}", hadm_ids=notes.hadm_ids, codes=list(data.codes), probs=probs,
                        threshold=threshold, threshold_source="dev-tuned", run=run, split=split,
                        model=cfg.system_name)  # "RAC", or the ablation's Table 2 row ("RAC - SWA")
    out = write_predictions(study.predictions_dir / preds.name, preds, evidence)
    print(f"wrote {out} ({len(notes)} notes x {len(data.codes)} codes; model {model_name}, "
          f"dev-tuned threshold {threshold:.3f})")
    return out
