"""Simulated coders: the ``paper`` behaviour lands on the RAC paper's human row, ``careful`` stays as it was.

The generator (``annotation.simulate``) codes the demo-sized study (508 notes, the demo's two coders and
its overlap design) and the project's scorer scores the sets under the paper profile, as
`bench score --profile paper` does. The path through a real Label Studio server is in
``test_labelstudio_score.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from annotation.projects import assign
from annotation.simulate import (BEHAVIOURS, PAPER_PRECISION, PAPER_RECALL, Vocabulary, draw_coders,
                                 simulate_assignment)
from benchmark.cli.demo import DEMO_CODERS
from benchmark.cli.labelstudio import CODER_BEHAVIOURS
from benchmark.conventions import PROFILES
from benchmark.exports import Annotation, CoderExports
from benchmark.references import read_references
from benchmark.sampling import read_sample, read_shortlist
from benchmark.study import Study
from benchmark.table1 import score_table1

DEMO_DESIGN = "overlap:40"      # what `bench demo` gives two coders on 508 notes


def _simulated(study: Study, behaviour: str, seed: int) -> dict[tuple[str, int], tuple[list[str], float, bool, bool]]:
    sample = read_sample(study)
    shares = assign(len(sample), list(DEMO_CODERS), DEMO_DESIGN)
    assignment = {coder: [sample[i] for i in positions] for coder, positions in shares.items()}
    models = draw_coders(DEMO_CODERS, behaviour, seed)
    return simulate_assignment(models, Vocabulary.from_study(study), read_references(study, sample), assignment, seed)


def _table1(study: Study, answers: dict[tuple[str, int], tuple[list[str], float, bool, bool]]) -> dict[str, Any]:
    """Table 1 under the paper profile, of the annotations the export would hold (skipped notes left out)."""
    annotations = [Annotation("simulated", None, hadm_id, coder, None, None, tuple(codes), simulated=True)
                   for (coder, hadm_id), (codes, _, _, skipped) in answers.items() if not skipped]
    admissions = sorted({a.hadm_id for a in annotations})
    return score_table1(study, CoderExports(annotations, {}), [], PROFILES["paper"], "paper",
                        read_references(study, admissions), read_shortlist(study), n_resamples=20)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_behaviour_lands_on_the_papers_human_row(demo_study: Study, seed: int) -> None:
    table = _table1(demo_study, _simulated(demo_study, "paper", seed))
    pooled = table["rows"][0]
    assert table["profile"] == "paper" and pooled["system"] == "Simulated coders (pooled)"
    assert table["n_documents"] >= 500                                       # the 508 notes, a few skipped
    # RAC paper Table 1, "Human coders": micro P 47.7, R 12.1; the band is 3 and 2 points.
    assert abs(pooled["micro"]["precision"] - PAPER_PRECISION) <= 0.03, pooled["micro"]
    assert abs(pooled["micro"]["recall"] - PAPER_RECALL) <= 0.02, pooled["micro"]
    # About 4 codes per note against about 16 in the reference.
    assert 3.5 <= pooled["codes_per_note"] <= 4.7 and 14 <= pooled["reference_codes_per_note"] <= 18
    assert [r["kind"] for r in table["rows"]] == ["humans", "coder", "coder"]


def test_paper_coders_get_frequent_codes_right_and_err_on_near_misses(demo_study: Study) -> None:
    answers = _simulated(demo_study, "paper", 0)
    vocab = Vocabulary.from_study(demo_study)
    references = read_references(demo_study, read_sample(demo_study))
    found, missed, wrong, siblings = [], [], 0, 0
    for (_, hadm_id), (codes, _, _, _) in answers.items():
        reference = set(references[hadm_id])
        assert set(codes) <= vocab.in_shortlist                              # the picker offers nothing else
        found += [vocab.train_count[c] for c in codes if c in reference]
        missed += [vocab.train_count[c] for c in reference - set(codes)]
        categories = {vocab.category[c] for c in reference - set(codes)}
        for code in set(codes) - reference:
            wrong += 1
            siblings += vocab.category[code] in categories
    assert np.median(found) > 2 * np.median(missed)                          # common conditions first
    assert 0.3 <= siblings / wrong <= 0.7                                    # specificity errors, sibling_share


def test_careful_behaviour_is_todays_coders(demo_study: Study) -> None:
    pooled = _table1(demo_study, _simulated(demo_study, "careful", 0))["rows"][0]
    # The demo's coders before the paper behaviour: micro P about 88, R about 61.
    assert pooled["micro"]["precision"] > 0.8 and 0.5 < pooled["micro"]["recall"] < 0.75


def test_a_seed_reproduces_the_same_annotations(demo_study: Study) -> None:
    first = _simulated(demo_study, "paper", 7)
    assert _simulated(demo_study, "paper", 7) == first
    assert _simulated(demo_study, "paper", 8) != first


def test_the_cli_offers_every_behaviour() -> None:
    assert set(CODER_BEHAVIOURS) == set(BEHAVIOURS)
