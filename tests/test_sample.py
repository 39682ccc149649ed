"""`sample`: seeded test-split sample, shortlist rules, vocabulary coverage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import UserError
from benchmark.sampling import sample
from benchmark.study import Study
from tests.fixtures_study import copy_study


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_seed_reproducibility(small_study: Study, tmp_path: Path):
    n = small_study.step("sample")["figures"]["n"]
    a, b = copy_study(small_study, tmp_path / "a"), copy_study(small_study, tmp_path / "b")
    sample(a, n=n, seed=11, force=True)
    sample(b, n=n, seed=11, force=True)
    assert a.sample.read_bytes() == b.sample.read_bytes()
    first = _lines(a.sample)
    sample(b, n=n, seed=12, force=True)
    assert _lines(b.sample) != first
    # a larger n extends the smaller sample (same permutation, cut later)
    sample(b, n=n - 5, seed=11, force=True)
    assert _lines(b.sample) == first[: n - 5]
    # the shared fixture's own sample: test-split IDs, distinct, in sample (not sorted) order
    docs = pd.read_parquet(small_study.documents, columns=["hadm_id", "split"])
    ids = [int(h) for h in _lines(small_study.sample)]
    assert len(ids) == len(set(ids)) == n
    assert set(ids) <= set(docs.loc[docs["split"] == "test", "hadm_id"])
    assert ids != sorted(ids)


def test_default_shortlist_is_the_test_codes(small_study: Study):
    codes = pd.read_parquet(small_study.codes)
    refs = pd.read_parquet(small_study.references)
    docs = pd.read_parquet(small_study.documents, columns=["hadm_id", "split"])
    test_refs = refs[refs["hadm_id"].isin(docs.loc[docs["split"] == "test", "hadm_id"])]
    expected = sorted(set(test_refs["code"]))
    assert _lines(small_study.shortlist) == expected == sorted(codes.loc[codes["in_test"], "code"])
    figures = small_study.step("sample")["figures"]
    assert figures["coverage"] == 1.0  # the sample is drawn from the test split, so its codes are all listed
    assert figures["rule"].startswith("test-codes")


def test_rules_and_coverage(tiny_study: Study, tmp_path: Path):
    # The tiny test split: 100004 (00.40, 36.15, 401.9, V99.99) and 100005 (E878.8).
    figures = sample(tiny_study, n=2, seed=0)
    assert sorted(_lines(tiny_study.sample)) == ["100004", "100005"]
    assert _lines(tiny_study.shortlist) == ["00.40", "36.15", "401.9", "E878.8", "V99.99"]
    assert figures["shortlist_codes"] == 5 and figures["coverage"] == 1.0
    figures = sample(tiny_study, n=2, seed=0, shortlist="all", force=True)
    assert figures["shortlist_codes"] == 8 and figures["rule"] == "all: the full label space"
    listed = tmp_path / "list.txt"
    listed.write_text("# my coding list\n4019\n\ne8788  # undotted, lowercase\n250.00\n")
    figures = sample(tiny_study, n=2, seed=0, shortlist=str(listed), force=True)
    assert _lines(tiny_study.shortlist) == ["401.9", "E878.8"]  # 250.00 is in no reference: left out
    assert figures["file_codes_left_out"] == ["250.00"] and figures["file_codes_left_out_count"] == 1
    assert figures["coverage"] == pytest.approx(2 / 5)          # 401.9 and E878.8 of 5 sampled pairs
    assert figures["distinct_coverage"] == pytest.approx(2 / 5)
    record = tiny_study.step("sample")
    assert record["inputs"]["list.txt"] and record["params"]["shortlist"] == str(listed)


def test_errors(tiny_study: Study, tmp_path: Path):
    with pytest.raises(UserError, match="the test split has 2 notes, fewer than --n 3"):
        sample(tiny_study, n=3)
    bad = tmp_path / "bad.txt"
    bad.write_text("401.9\n42X.1\n")
    with pytest.raises(UserError, match=r"bad.txt line 2: .*42X.1"):
        sample(tiny_study, n=2, shortlist=str(bad))
    with pytest.raises(UserError, match="shortlist file not found"):
        sample(tiny_study, n=2, shortlist=str(tmp_path / "nope.txt"))
    sample(tiny_study, n=2, seed=0)
    with pytest.raises(UserError, match="different sample size, seed, shortlist.*--force"):
        sample(tiny_study, n=2, seed=1)
    before = tiny_study.provenance_path.read_bytes()
    sample(tiny_study, n=2, seed=0)  # the same parameters: an identical rewrite
    assert tiny_study.provenance_path.read_bytes() == before


def test_sample_needs_prepare(tmp_path: Path):
    with pytest.raises(UserError, match="run `bench prepare`"):
        sample(Study(tmp_path / "empty"), n=5)


@pytest.mark.slow
def test_demo_study_samples_508_notes(demo_study: Study):
    """The default synthetic corpus, prepared, leaves at least 600 test notes, so the paper's 508 fit."""
    figures = demo_study.step("sample")["figures"]
    assert figures["n"] == 508 and figures["test_split_notes"] >= 600
    assert len(set(_lines(demo_study.sample))) == 508
    assert figures["shortlist_codes"] == len(_lines(demo_study.shortlist)) > 0
    assert figures["coverage"] == 1.0
