"""word2vec for RAC: skip-gram (gensim 4) on the TRAIN split only, saved with the run.

CAML trained its embeddings on every split, so test-only words got vectors shaped by the test notes; here
only training notes are seen, and words that occur only in dev/test map to the unknown id. The trained
vocabulary (frequency order) becomes the model vocabulary after two reserved ids: ``PAD_ID`` (zero vector)
and ``UNK_ID`` (the mean vector). The run keeps ``word2vec.txt`` in word2vec's plain text format (vocabulary +
vectors, readable by gensim's ``KeyedVectors.load_word2vec_format``), written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from benchmark.io import atomic_path
from rac.model import PAD_ID, UNK_ID

PAD, UNK = "<pad>", "<unk>"
FILENAME = "word2vec.txt"


def train_word2vec(
    sentences: Iterable[list[str]], d: int, window: int = 5, min_count: int = 10, epochs: int = 5,
    workers: int = 2, seed: int = 1234,
) -> tuple[list[str], np.ndarray]:
    """Train skip-gram vectors; return (words in frequency order, float32 vectors [len(words), d]).

    ``sentences`` must come from the training split only. gensim is deterministic for a fixed seed only with
    ``workers=1`` (thread scheduling changes the update order); the run stores the result, so a resumed or
    multi-rank run never retrains.
    """
    from gensim.models import Word2Vec

    logging.getLogger("gensim").setLevel(logging.WARNING)
    corpus = [s for s in sentences if s]
    model = Word2Vec(
        sentences=corpus, vector_size=d, window=window, min_count=min_count, sg=1, epochs=epochs,
        workers=workers, seed=seed,
    )
    words = list(model.wv.index_to_key)
    return words, np.asarray(model.wv.vectors, dtype=np.float32)


def embedding_table(words: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The model vocabulary (``<pad>``, ``<unk>``, then ``words``) and its initial embedding matrix."""
    assert (PAD_ID, UNK_ID) == (0, 1)
    d = vectors.shape[1]
    unk = vectors.mean(axis=0) if len(vectors) else np.zeros(d, np.float32)
    table = np.concatenate([np.zeros((1, d), np.float32), unk[None, :].astype(np.float32), vectors])
    return [PAD, UNK, *words], table


def save(path: Path, words: list[str], vectors: np.ndarray) -> None:
    """word2vec text format: a "count dim" header, then "word v1 v2 ..." lines (full float32 precision)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"{len(words)} {vectors.shape[1]}\n")
            for word, row in zip(words, vectors):
                fh.write(word + " " + " ".join(map(repr, row.tolist())) + "\n")


def load(path: Path) -> tuple[list[str], np.ndarray]:
    """Read what ``save`` wrote."""
    with open(path, encoding="utf-8") as fh:
        count, dim = (int(x) for x in fh.readline().split())
        words: list[str] = []
        vectors = np.empty((count, dim), np.float32)
        for i, line in enumerate(fh):
            word, *values = line.rstrip("\n").split(" ")
            words.append(word)
            vectors[i] = np.asarray(values, dtype=np.float32)
    return words, vectors
