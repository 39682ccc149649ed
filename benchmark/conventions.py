"""The scoring conventions: how macro values are formed, the two named profiles, and their sources.

Micro values never depend on them (except the 0/0 rule); macro values do, so every table records the
conventions it was scored under (docs/architecture.md §4). The two profiles:

``paper``: label set = the coding shortlist, 0/0 -> 0, macro-F1 = harmonic mean of macro-P and macro-R.
    Inferred, not stated, by the seed paper (Kim & Ganapathi 2021). Its Table 2 puts RAC beside CAML and
    LAAT with numbers comparable to theirs, and those come from caml-mimic's ``evaluation.py``: macro
    values are means over a fixed label set (the columns of the label matrix) with ``+1e-10``
    denominators, so a code never predicted counts as precision 0, and ``macro_f1`` is 2PR/(P+R) of
    those means. RAC's reported macro-F1 of 12.7 against micro-F1 58.6 (Kim & Ganapathi 2021, Table 2) is
    the size this harmonic form gives over thousands of rare codes. For the human study, the fixed label
    set the coders could choose from is the 4,075-code shortlist, so that is the macro label set.
    "Jaccard" is CAML's "accuracy", which is why micro J, P and R in the paper's Table 1 satisfy
    1/J = 1/P + 1/R - 1.
``corrected``: label set = the codes present in the scored references, 0/0 -> 0, macro-F1 = mean of
    per-code F1. This is Edin et al. (2023, medical-coding-reproducibility ``src/metrics.py``): metrics are
    computed after filtering to the codes that occur in the split's targets, precision of a reference
    code nobody predicted is 0 (their ``+1e-10``), recall and F1 are always defined for such codes, and
    macro F1 averages per-code F1 (their corrected twin of the "Mullenbach" metric).

For ``reference`` (and ``union``) the label set of a Table 1 row is taken from the references of *that
row's* admissions (``benchmark.table1``): a coder who coded part of the sample is not charged for codes of
notes they never saw. The table-level ``label_set_size`` is the size over all scored admissions; each row
carries its own. ``union`` is the references plus every code any compared system predicted, shared by all
rows so that their macro values share a denominator (scikit-learn's default union is per system).

Explicit ``label_set``/``undefined``/``macro_f1`` override a profile; a table whose conventions match
neither profile records ``profile: null``. Micro always counts every code (docs/architecture.md §4),
including codes outside the label space: a valid code of the code system (``benchmark.valid_codes``) that
no reference has is a false positive, in macro too under ``union``; how many there were is listed beside
the table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from benchmark.errors import UserError
from benchmark.references import Vocabulary

LABEL_SETS = ("shortlist", "all", "reference", "union")
DEFINITIONS = {
    "micro_jaccard": "TP/(TP+FP+FN), TP, FP, FN summed over all codes and documents (CAML's micro 'accuracy')",
    "micro_precision": "TP/(TP+FP) summed over all codes", "micro_recall": "TP/(TP+FN) summed over all codes",
    "micro_f1": "2TP/(2TP+FP+FN) summed over all codes",
    "macro": "per-code value averaged over the label set; 0/0 per the 'undefined' rule",
    "macro_f1_mean": "mean of per-code F1", "macro_f1_harmonic": "2PR/(P+R) of macro P and macro R",
    "per_document_jaccard": "mean over documents of |T∩P|/|T∪P|",
    "exact_match": "share of documents whose code set equals the reference",
    "vocabulary_coverage": "share of reference codes that the shortlist contains (caps coder recall)",
    "codes_per_note": "mean number of codes assigned per document",
    "pooled_humans": "every annotation scored; an admission coded by k coders weighs 1/k per annotation",
}


@dataclass(frozen=True)
class Conventions:
    """How macro values are formed (micro never depends on them, except the 0/0 rule)."""

    label_set: str = "reference"
    undefined: str = "zero"
    macro_f1: str = "mean"


PROFILES = {"paper": Conventions("shortlist", "zero", "harmonic"), "corrected": Conventions("reference", "zero", "mean")}
DEFAULT_PROFILE = "corrected"


def resolve_conventions(profile: str | None = None, label_set: str | None = None, undefined: str | None = None,
                        macro_f1: str | None = None) -> tuple[Conventions, str | None]:
    """A profile with explicit overrides; returns the conventions and the profile they match (or None).

    >>> resolve_conventions("paper", macro_f1="mean")
    (Conventions(label_set='shortlist', undefined='zero', macro_f1='mean'), None)
    >>> resolve_conventions(None, label_set="reference")[1]
    'corrected'
    """
    base = PROFILES[profile or DEFAULT_PROFILE]
    chosen = replace(base, **{k: v for k, v in (("label_set", label_set), ("undefined", undefined),
                                                ("macro_f1", macro_f1)) if v is not None})
    if chosen.label_set not in LABEL_SETS:
        raise UserError(f"--label-set must be one of {', '.join(LABEL_SETS)}, got {chosen.label_set!r}")
    matched = next((name for name, conv in PROFILES.items() if conv == chosen), None)
    return chosen, matched


def label_set_indices(name: str, vocab: Vocabulary, y_ref: np.ndarray, predicted: np.ndarray, shortlist: list[str]) -> np.ndarray:
    """Column indices of the macro label set (see ``Conventions``)."""
    if name == "shortlist":
        return np.array(sorted(vocab.index[c] for c in shortlist if c in vocab.index), dtype=np.int64)
    if name == "all":
        return np.arange(vocab.n_catalogue)
    if name == "reference":
        return np.flatnonzero(y_ref)
    return np.flatnonzero(y_ref | predicted)

