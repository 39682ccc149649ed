"""RAC's data pipeline: notes and titles to token ids, sentence-permutation augmentation, bucketed batches.

- Notes are re-tokenised from ``text`` with character offsets (``token_spans``, the same rule as
  ``benchmark.text.tokenize``, checked in tests against the study's ``tokens`` column), so ``bench predict`` can
  point its attention evidence into the note. Only the first ``n_x`` tokens are kept: that is what RAC reads.
- Each token belongs to a sentence of the documents' sentence layer (``sent_starts``/``sent_ends``).
  Augmentation shuffles the sentences of those first ``n_x`` tokens, so a shuffled copy holds exactly the
  tokens the original holds (the model sees the same words, in another sentence order) and keeps the labels.
- ``BucketSampler`` turns (note, copy) examples into global batches of similar length, the same batches for
  any number of ranks, and hands each rank its micro-batches. Everything an epoch draws comes from
  ``(seed, epoch, ...)``-seeded generators, so the sampler's state is just (epoch, step): a resumed run
  continues with exactly the batches and permutations it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from benchmark.text import token_spans, tokenize
from rac.model import PAD_ID, UNK_ID

@dataclass
class EncodedNotes:
    """The first ``n_x`` tokens of each note as ids, with offsets, sentence ids and label indices."""

    hadm_ids: np.ndarray          # int64 [n]
    ids: list[np.ndarray]         # int64 [len_i] token ids
    starts: list[np.ndarray]      # int32 [len_i] character offsets into the note text
    ends: list[np.ndarray]
    sentences: list[np.ndarray]   # int32 [len_i] non-decreasing sentence index per token
    labels: list[np.ndarray]      # int64 code indices (columns of the label space)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.ids], dtype=np.int64)


def encode_notes(
    documents: pd.DataFrame, word_index: dict[str, int], code_index: dict[str, int],
    references: pd.DataFrame, n_x: int,
) -> EncodedNotes:
    """Encode every row of ``documents`` (hadm_id, text, sent_starts, sent_ends) for the model.

    A note without any token keeps one ``UNK_ID`` so it still yields a (near-uninformative) prediction.
    Reference codes outside ``code_index`` are ignored (the label space is the code catalogue).
    """
    codes_by_hadm = references.groupby("hadm_id")["code"].agg(list).to_dict()
    out = EncodedNotes(np.asarray(documents["hadm_id"], dtype=np.int64), [], [], [], [], [])
    for hadm_id, text, sent_starts in zip(documents["hadm_id"], documents["text"], documents["sent_starts"]):
        words, starts, ends = token_spans(text)
        words, starts, ends = words[:n_x], starts[:n_x], ends[:n_x]
        ids = np.fromiter((word_index.get(w, UNK_ID) for w in words), dtype=np.int64, count=len(words))
        # Sentence of each token = the last sentence starting at or before it (tokens lie inside sentences).
        sent = np.searchsorted(np.asarray(sent_starts, dtype=np.int64), starts, side="right").astype(np.int32)
        if not len(ids):
            ids, starts, ends, sent = (np.array([UNK_ID]), np.zeros(1, np.int32), np.zeros(1, np.int32),
                                       np.zeros(1, np.int32))
        out.ids.append(ids)
        out.starts.append(starts)
        out.ends.append(ends)
        out.sentences.append(sent)
        labels = sorted({code_index[c] for c in codes_by_hadm.get(hadm_id, []) if c in code_index})
        out.labels.append(np.asarray(labels, dtype=np.int64))
    return out


def title_tokens(codes: pd.DataFrame, word_index: dict[str, int], n_t: int) -> np.ndarray:
    """[n_codes, n_t] ids of each code's long title followed by its short title, tokenised like the notes.

    A title whose words are all unknown keeps its ``UNK_ID`` tokens (the encoder still sees "some words");
    a code without any title is all padding, which the model turns into a zero title vector.
    """
    out = np.full((len(codes), n_t), PAD_ID, dtype=np.int64)
    for i, (long_title, short_title) in enumerate(zip(codes["long_title"], codes["short_title"])):
        words = tokenize(f"{long_title or ''} {short_title or ''}")[:n_t]
        out[i, : len(words)] = [word_index.get(w, UNK_ID) for w in words]
    return out


def shuffle_sentences(ids: np.ndarray, sentences: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The tokens of ``ids`` with whole sentences in a random order (tokens inside a sentence keep theirs).

    >>> ids, sent = np.array([1, 2, 3, 4, 5]), np.array([0, 0, 1, 2, 2])
    >>> sorted(shuffle_sentences(ids, sent, np.random.default_rng(0)).tolist())
    [1, 2, 3, 4, 5]
    """
    bounds = np.flatnonzero(np.diff(sentences)) + 1
    pieces = np.split(ids, bounds)
    order = rng.permutation(len(pieces))
    return np.concatenate([pieces[i] for i in order])


def example_ids(notes: EncodedNotes, index: int, copy: int, seed: int, epoch: int) -> np.ndarray:
    """Token ids of example (note ``index``, ``copy``): copy 0 is the note, copies 1.. are sentence-shuffled.

    The permutation is drawn from a generator seeded by (seed, epoch, note, copy): fresh every epoch, and the
    same whichever rank draws it or whether the run was resumed.
    """
    if copy == 0:
        return notes.ids[index]
    rng = np.random.default_rng([seed, epoch, index, copy])
    return shuffle_sentences(notes.ids[index], notes.sentences[index], rng)


def collate(token_lists: Sequence[np.ndarray], labels: Sequence[np.ndarray] | None, n_codes: int,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Pad to the longest note of the micro-batch: (tokens [B, L], mask [B, L], multi-hot targets [B, n_codes])."""
    width = max(len(t) for t in token_lists)
    tokens = torch.full((len(token_lists), width), PAD_ID, dtype=torch.long)
    for row, ids in enumerate(token_lists):
        tokens[row, : len(ids)] = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    targets = None
    if labels is not None:
        targets = torch.zeros((len(token_lists), n_codes), dtype=torch.float32)
        for row, cols in enumerate(labels):
            targets[row, torch.from_numpy(cols)] = 1.0
    return tokens, tokens != PAD_ID, targets


class BucketSampler:
    """Length-bucketed global batches of (note, copy) examples, split into per-rank micro-batches.

    Per epoch: shuffle all ``n_notes x (1 + copies)`` examples, cut the order into pools of ``bucket_batches``
    global batches, sort each pool by length and cut it into global batches, then shuffle the batches. The
    last batch is completed with examples from the start of the epoch's order (every example is seen each
    epoch, every step has a full global batch). Global batch ``b`` is cut into ``world x accum`` micro-batches
    of ``batch_per_rank`` consecutive (similar-length) examples; rank ``r`` takes micro-batches
    ``r*accum .. r*accum + accum - 1``. The global batch does not depend on the world size, which is what
    makes a 1-rank and an N-rank run compute the same step.

    State for checkpoints: ``{"epoch", "step"}`` (the next step to run in that epoch).
    """

    def __init__(self, lengths: np.ndarray, copies: int, global_batch: int, batch_per_rank: int,
                 rank: int, world_size: int, seed: int, bucket_batches: int):
        self.lengths = np.asarray(lengths)
        self.copies, self.global_batch, self.batch_per_rank = copies, global_batch, batch_per_rank
        self.rank, self.world_size, self.seed, self.bucket_batches = rank, world_size, seed, bucket_batches
        self.accum = global_batch // (batch_per_rank * world_size)
        self.epoch, self.step = 0, 0

    @property
    def n_examples(self) -> int:
        return len(self.lengths) * (1 + self.copies)

    def __len__(self) -> int:
        """Optimizer steps per epoch."""
        return -(-self.n_examples // self.global_batch)

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's global batches as arrays of example numbers (note = e // (1+copies), copy = e % (1+copies))."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n_examples)
        short = -len(order) % self.global_batch
        order = np.concatenate([order, order[:short]])
        example_len = self.lengths[order // (1 + self.copies)]
        pool = self.global_batch * self.bucket_batches
        batches: list[np.ndarray] = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(example_len[start : start + pool], kind="stable")]
            batches.extend(np.split(chunk, len(chunk) // self.global_batch))
        return [batches[i] for i in rng.permutation(len(batches))]

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.step = epoch, 0

    def __iter__(self) -> Iterator[list[list[tuple[int, int]]]]:
        """This rank's micro-batches for each remaining step of the epoch: [[(note, copy), ...], ...]."""
        batches = self.global_batches(self.epoch)
        for step in range(self.step, len(batches)):
            micro = np.split(batches[step], self.world_size * self.accum)
            mine = micro[self.rank * self.accum : (self.rank + 1) * self.accum]
            self.step = step + 1
            yield [[(int(e) // (1 + self.copies), int(e) % (1 + self.copies)) for e in mb] for mb in mine]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
