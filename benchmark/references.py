"""The study's reference side: the reference code sets (``references.parquet``) and the vocabulary of the
label space (``codes.parquet``) that indexes every indicator matrix scoring builds.

Both files are written by ``benchmark.prepare``; Table 1 and Table 2 read them through this module, which reads
them through ``benchmark.study_files``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from benchmark import codesystems, study_files
from benchmark.errors import UserError
from benchmark.study import Study

if TYPE_CHECKING:
    from benchmark.predictions import Predictions


@dataclass
class Vocabulary:
    """Columns of every indicator matrix: the label space's codes, then any code outside it (valid codes of the
    code system that no reference has, and unknown strings kept by --allow-unknown): always wrong answers."""

    codes: list[str]
    index: dict[str, int]
    n_catalogue: int
    system: np.ndarray       # "dx" | "px" | "unknown" per column
    category: np.ndarray
    chapter: np.ndarray
    train_count: np.ndarray
    version: int = 9         # the study's ICD version: how a code outside the catalogue is classified

    @classmethod
    def from_study(cls, study: Study) -> Vocabulary:
        study.require("codes")
        cat = study_files.read_catalogue(study, ["code", "system", "category", "chapter", "train_count"])
        return cls(list(cat["code"]), {c: i for i, c in enumerate(cat["code"])}, len(cat),
                   cat["system"].to_numpy(object), cat["category"].to_numpy(object),
                   cat["chapter"].to_numpy(object), cat["train_count"].to_numpy(np.int64),
                   codesystems.study_version(study))

    def add(self, codes: Sequence[str]) -> None:
        """Append codes outside the catalogue (scored as wrong), classified by their shape when possible."""
        extra = sorted({c for c in codes if c not in self.index})
        if not extra:
            return
        systems, categories, chapters = [], [], []
        for code in extra:
            try:
                rules = codesystems.get(self.version, codesystems.kind_of(code, self.version))
                kind, category, chapter = rules.kind, rules.category(code), rules.chapter(code)
            except (ValueError, KeyError):
                kind, category, chapter = "unknown", code, "unknown"
            systems.append(kind)
            categories.append(category)
            chapters.append(chapter)
        for code in extra:
            self.index[code] = len(self.codes)
            self.codes.append(code)
        self.system = np.concatenate([self.system, np.array(systems, object)])
        self.category = np.concatenate([self.category, np.array(categories, object)])
        self.chapter = np.concatenate([self.chapter, np.array(chapters, object)])
        self.train_count = np.concatenate([self.train_count, np.zeros(len(extra), np.int64)])

    def matrix(self, sets: Sequence[Sequence[str]]) -> np.ndarray:
        """A dense ``[len(sets), n_codes]`` indicator matrix."""
        out = np.zeros((len(sets), len(self.codes)), dtype=bool)
        for row, codes in enumerate(sets):
            out[row, [self.index[c] for c in codes]] = True
        return out


def read_references(study: Study, hadm_ids: Sequence[int] | None = None) -> dict[int, list[str]]:
    """Reference code sets per admission (only ``hadm_ids`` when given)."""
    study.require("references")
    refs = study_files.read_reference_codes(study)
    if hadm_ids is not None:
        refs = refs[refs["hadm_id"].isin(list(hadm_ids))]
    out: dict[int, list[str]] = {int(h): [] for h in (hadm_ids or [])}
    for hadm_id, code in zip(refs["hadm_id"].to_numpy(), refs["code"].to_numpy()):
        out.setdefault(int(hadm_id), []).append(str(code))
    return {h: sorted(c) for h, c in out.items()}


def split_ids(study: Study, split: str) -> set[int]:
    """The admissions of one split (``sample`` counts as the test split it is drawn from)."""
    study.require("documents")
    docs = study_files.read_documents(study, ["hadm_id"], split="test" if split == "sample" else split)
    return set(docs["hadm_id"].astype(int))


def reference_matrix(study: Study, preds: Predictions) -> tuple[np.ndarray, int]:
    """References of ``preds``' admissions as ``[n, len(codes) + extra]`` booleans, and how many extra columns:
    reference codes the model has no column for come last (never predicted, never scored)."""
    hadm_ids = [int(h) for h in preds.hadm_ids]
    refs = read_references(study, hadm_ids)
    if not any(refs.get(h) for h in hadm_ids):
        raise UserError(f"{preds.name}: none of its {len(hadm_ids)} admissions has reference codes in this study; "
                        "predict on this study's notes")
    index = {c: i for i, c in enumerate(preds.codes)}
    extra = sorted({c for h in hadm_ids for c in refs.get(h, []) if c not in index})
    index.update({c: len(preds.codes) + i for i, c in enumerate(extra)})
    y_true = np.zeros((len(hadm_ids), len(index)), dtype=bool)
    for row, h in enumerate(hadm_ids):
        y_true[row, [index[c] for c in refs.get(h, [])]] = True
    return y_true, len(extra)
