"""`bench sample`: the coding sample (seeded, from the test split) and the coding shortlist.

The paper's coders coded 508 test-split notes from a 4,075-code list. Loaded correctly, the codes that
occur in the test-split references number about 4,085, so the default shortlist rule is ``test-codes``;
``all`` takes the whole label space and a file path takes the user's own list (its codes that occur in no
reference are outside the label space, have no catalogue entry and title, and are left out and reported).
Whatever the rule, the vocabulary coverage is printed: the share of the sampled notes' reference codes
(each admission-code pair once) that the shortlist contains. A coder cannot pick a code missing from the
list, so coverage caps the coders' micro recall.

The sample is ``numpy.random.default_rng(seed).permutation`` of the test split's HADM_IDs (sorted), cut
to ``n``: the same study, n and seed give the same sample, and a larger n extends a smaller one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import codesystems, study_files
from benchmark.errors import UserError
from benchmark.io import atomic_write_text, sha256_file
from benchmark.study import Study, fingerprint

DEFAULT_N = 508
DEFAULT_SEED = 0
RULES = ("test-codes", "all")
MAX_LISTED = 200  # codes listed in study.toml (the count is always complete)


def sample(study: Study, n: int = DEFAULT_N, seed: int = DEFAULT_SEED, shortlist: str = "test-codes",
           force: bool = False) -> dict[str, Any]:
    """Write ``sample.csv`` and ``shortlist.txt`` and record ``[steps.sample]``; return the figures."""
    study.require("documents", "references", "codes")
    if n < 1:
        raise UserError(f"--n {n}: the sample needs at least one note")
    shortlist_file = None if shortlist in RULES else Path(shortlist).expanduser().resolve()
    parts = {"n": n, "seed": seed, "rule": shortlist if shortlist_file is None else "file",
             "references": sha256_file(study.references)}
    if shortlist_file is not None:
        if not shortlist_file.is_file():
            raise UserError(f"{shortlist_file}: shortlist file not found; pass test-codes, all or a file "
                            "with one ICD-9 code per line")
        parts["shortlist_file"] = sha256_file(shortlist_file)
    stamp = fingerprint(parts)
    study.check_inputs("sample", stamp, force, "sample size, seed, shortlist or prepared study")

    test = study_files.read_documents(study, ["hadm_id"], split="test")
    test_ids = np.sort(test["hadm_id"].to_numpy(dtype=np.int64))
    if len(test_ids) < n:
        raise UserError(f"{study.documents}: the test split has {len(test_ids):,} notes, fewer than --n {n:,}; "
                        "lower --n or prepare a larger corpus")
    chosen = test_ids[np.random.default_rng(seed).permutation(len(test_ids))[:n]]

    references = study_files.read_reference_codes(study)
    catalogue = study_files.read_catalogue(study, ["code", "in_test"])
    if shortlist == "test-codes":
        codes, outside = sorted(catalogue.loc[catalogue["in_test"], "code"]), []
        rule = "test-codes: the codes in the test-split references"
    elif shortlist == "all":
        codes, outside = sorted(catalogue["code"]), []
        rule = "all: the full label space"
    else:
        listed_codes = read_shortlist_file(shortlist_file, codesystems.study_version(study))
        label_space = set(catalogue["code"])
        codes = [code for code in listed_codes if code in label_space]
        outside = [code for code in listed_codes if code not in label_space]
        rule = f"file: {shortlist_file}"
        if not codes:
            raise UserError(f"{shortlist_file}: none of its {len(listed_codes):,} codes occurs in the references "
                            f"(first: {outside[0]}); check it holds "
                            f"{codesystems.study_label(codesystems.study_version(study))} codes")

    sampled = references[references["hadm_id"].isin(chosen)]
    listed = sampled["code"].isin(set(codes))
    atomic_write_text(study.sample, "".join(f"{h}\n" for h in chosen.tolist()))
    atomic_write_text(study.shortlist, "".join(f"{c}\n" for c in codes))
    figures = {
        "n": n, "seed": seed, "rule": rule, "shortlist_codes": len(codes),
        "file_codes_left_out_count": len(outside),
        "file_codes_left_out": outside[:MAX_LISTED],
        "test_split_notes": len(test_ids),
        "sampled_reference_codes": int(len(sampled)),
        "coverage": round(float(listed.mean()), 6) if len(sampled) else 0.0,
        "distinct_sampled_codes": int(sampled["code"].nunique()),
        "distinct_coverage": round(float(sampled.loc[listed, "code"].nunique() / max(sampled["code"].nunique(), 1)), 6),
    }
    study.record_step("sample", {
        "fingerprint": stamp,
        "params": {"n": n, "seed": seed, "shortlist": shortlist if shortlist_file is None else str(shortlist_file)},
        "inputs": {"references.parquet": parts["references"],
                   **({shortlist_file.name: parts["shortlist_file"]} if shortlist_file else {})},
        "rng": "numpy.random.default_rng(seed).permutation(sorted test HADM_IDs)[:n]",
        "outputs": study.file_hashes(study.sample, study.shortlist),
        "figures": figures,
    })
    return figures


def read_sample(study: Study) -> list[int]:
    """The coding sample's HADM_IDs in sample order (``sample.csv``)."""
    lines = [ln.strip() for ln in study.sample.read_text(encoding="utf-8").splitlines() if ln.strip()]
    try:
        return [int(x) for x in lines]
    except ValueError:
        raise UserError(f"{study.sample}: expected one HADM_ID per line; re-run `bench sample`") from None


def read_shortlist(study: Study) -> list[str]:
    """The study's coding shortlist in file order (``shortlist.txt``, as ``sample`` wrote it)."""
    study.require("shortlist")
    return [line.strip() for line in study.shortlist.read_text(encoding="utf-8").splitlines() if line.strip()]


def prediction_documents(study: Study, split: str, columns: list[str]) -> pd.DataFrame:
    """The notes a model predicts on: a split (``test``/``dev``) or the coding sample, in sample order."""
    if split not in ("test", "dev", "sample"):
        raise UserError(f"--split {split}: choose test, dev or sample")
    if split == "sample":
        docs = study_files.read_documents(study, columns)
        study.require("sample")
        wanted = read_sample(study)
        missing = set(wanted) - set(docs["hadm_id"])
        if missing:
            raise UserError(f"{study.sample}: {len(missing)} HADM_IDs are not in documents.parquet "
                            f"(e.g. {sorted(missing)[:3]}); re-run `bench sample`")
        docs = docs.set_index("hadm_id").loc[wanted].reset_index()
    else:
        docs = study_files.read_documents(study, columns, split=split)
    if docs.empty:
        raise UserError(f"{study.documents}: no admissions in split {split!r}")
    return docs


def read_shortlist_file(path: Path, version: int) -> list[str]:
    """A user's own shortlist (``--shortlist FILE``): one code per line, dotted or not, in ICD ``version``.

    Undotted codes are read as :func:`benchmark.codesystems.normalize` reads them.

    Blank lines and ``#`` comments are skipped; the codes come back normalised, distinct and sorted.
    """
    codes: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            codes.add(codesystems.normalize(value, version))
        except ValueError as exc:
            raise UserError(f"{path} line {number}: {exc}; write one {codesystems.study_label(version)} code per line"
                            ) from None
    if not codes:
        raise UserError(f"{path}: the shortlist file holds no codes")
    return sorted(codes)


def format_figures(figures: dict[str, Any]) -> str:
    """The lines `bench sample` prints."""
    lines = [
        f"sample: {figures['n']:,} of {figures['test_split_notes']:,} test-split notes (seed {figures['seed']})",
        f"shortlist rule: {figures['rule']}",
        f"shortlist: {figures['shortlist_codes']:,} codes",
        f"vocabulary coverage: {figures['coverage']:.1%} of the {figures['sampled_reference_codes']:,} sampled "
        f"reference codes are in the shortlist ({figures['distinct_coverage']:.1%} of "
        f"{figures['distinct_sampled_codes']:,} distinct codes)",
    ]
    if figures["file_codes_left_out_count"]:
        lines.append(f"left out: {figures['file_codes_left_out_count']:,} codes of the file occur in no reference "
                     f"(outside the label space, so no title in codes.parquet): "
                     f"{', '.join(figures['file_codes_left_out'][:10])}")
    return "\n".join(lines)
