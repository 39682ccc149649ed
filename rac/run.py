"""What a run is made of, for training and prediction alike: its data, its model, and the model run over notes.

A run directory holds the word2vec table its vocabulary comes from; the study holds the notes, references and
code catalogue. ``load_data`` turns them into a ``RunData`` (vocabulary, label space, title ids, encoded
splits), ``build_model`` into the RAC those sizes describe, and ``note_batches`` / ``note_probs`` run a model
over notes the same way for dev evaluation in the trainer and for ``bench predict``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark import study_files
from benchmark.errors import UserError
from benchmark.study import Study
from rac import word2vec
from rac.config import TrainConfig
from rac.data import EncodedNotes, collate, encode_notes, title_tokens
from rac.model import RAC

DOC_COLUMNS = ["hadm_id", "split", "text", "sent_starts", "sent_ends"]


@dataclass
class RunData:
    """What a run reads: vocabulary + word2vec table, label space, title ids, encoded notes per split."""

    cfg: TrainConfig
    words: list[str]
    embeddings: np.ndarray
    codes: list[str]
    titles: torch.Tensor
    references: pd.DataFrame
    notes: dict[str, EncodedNotes] = field(default_factory=dict)

    def encode(self, docs: pd.DataFrame) -> EncodedNotes:
        return encode_notes(docs, {w: i for i, w in enumerate(self.words)},
                            {c: i for i, c in enumerate(self.codes)}, self.references, self.cfg.n_x)


def load_data(study: Study, run_dir: Path, cfg: TrainConfig, splits=("train", "dev", "test")) -> RunData:
    """The run's vocabulary (from its saved word2vec), the code catalogue's titles, and the encoded splits."""
    words, vectors = word2vec.embedding_table(*word2vec.load(run_dir / word2vec.FILENAME))
    codes = study_files.read_catalogue(study, ["code", "short_title", "long_title"])
    references = study_files.read_reference_codes(study)
    titles = torch.from_numpy(title_tokens(codes, {w: i for i, w in enumerate(words)}, cfg.n_t))
    data = RunData(cfg, words, vectors, codes["code"].tolist(), titles, references)
    if splits:
        docs = study_files.read_documents(study, DOC_COLUMNS)
        for split in splits:
            part = docs[docs["split"] == split].reset_index(drop=True)
            if part.empty and split != "test":
                raise UserError(f"{study.documents}: the {split} split is empty; RAC needs train and dev notes")
            data.notes[split] = data.encode(part)
    return data


def build_model(cfg: TrainConfig, data: RunData, device: torch.device) -> RAC:
    """RAC with its embeddings initialised from the run's word2vec table (same seed on every rank)."""
    torch.manual_seed(cfg.seed)
    model = RAC(cfg.model_config(len(data.words), len(data.codes)), torch.from_numpy(data.embeddings))
    return model.to(device)


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """``model.load_state_dict(weights)``, with a one-line error when the file was written for another model."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise UserError(f"{path}: these weights do not fit the run's model ({str(exc).splitlines()[0]}); "
                        f"it was written by another version of rac; train again with a new --name") from None


def autocast(device: torch.device):
    """bf16 autocast on GPU (the label-attention softmax stays fp32 inside the model); plain fp32 on CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def note_batches(
    model: torch.nn.Module, notes: EncodedNotes, indices: Sequence[int], titles: torch.Tensor, batch_size: int,
    device: torch.device, attention: bool = False,
) -> Iterator[tuple[list[int], np.ndarray, torch.Tensor | None]]:
    """Run the model (eval mode) over ``indices`` in length-sorted batches: (indices, probs, attention or None).

    Sorting by length keeps padding small; callers put the rows back in their own order.
    """
    model.eval()
    order = sorted(indices, key=lambda i: -len(notes.ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        tokens, mask, _ = collate([notes.ids[i] for i in chunk], None, 0)
        with autocast(device):
            out = model(tokens.to(device), mask.to(device), titles=titles, return_attention=attention)
        logits, attn = out if attention else (out, None)
        yield chunk, torch.sigmoid(logits.float()).cpu().numpy(), attn


def note_probs(model: torch.nn.Module, notes: EncodedNotes, indices: Sequence[int], titles: torch.Tensor,
               batch_size: int, device: torch.device) -> np.ndarray:
    """float32 [len(indices), n_codes] probabilities, rows in the order of ``indices``."""
    position = {index: row for row, index in enumerate(indices)}
    out = np.empty((len(indices), titles.shape[0]), dtype=np.float32)
    for chunk, probs, _ in note_batches(model, notes, indices, titles, batch_size, device):
        out[[position[i] for i in chunk]] = probs
    return out
