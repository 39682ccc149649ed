"""MIMIC-IV fixtures: a synthetic MIMIC-IV corpus and its ICD-10 study (session-scoped, built through the CLI).

- ``mimic4_corpus``: ``bench demo-data --schema mimic4 --admissions 300`` (a Path);
- ``icd10_study``: that corpus prepared with MIMIC-IV's defaults (ICD-10, codes seen in 10 or more split
  admissions) and sampled with n = 20 (a Path to the study root).

They are shared: a test must NOT write into them; copy first (``shutil.copytree`` or ``copy_study``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.synthetic_mimic4 import SPLIT_FILE

MIMIC4_ADMISSIONS = 300
ICD10_SAMPLE = 20


@pytest.fixture(scope="session")
def mimic4_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mimic4") / "corpus"
    assert main(["demo-data", "--schema", "mimic4", "--out", str(out), "--admissions", str(MIMIC4_ADMISSIONS)]) == 0
    return out


@pytest.fixture(scope="session")
def icd10_study(mimic4_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = tmp_path_factory.mktemp("icd10-study") / "study"
    base = ["--study", str(study)]
    assert main([*base, "prepare", "--mimic", str(mimic4_corpus), "--splits", str(mimic4_corpus / SPLIT_FILE)]) == 0
    assert main([*base, "sample", "--n", str(ICD10_SAMPLE)]) == 0
    return study
