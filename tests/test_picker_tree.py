"""The taxonomy picker's tree and the result paths we write share one path function (annotation.config.code_paths).

ICD-10 on the prepared synthetic MIMIC-IV study (real ICD-10-CM/PCS codes): four levels, CM chapters before
PCS sections, every leaf where ``CodeSystem.hierarchy`` puts it. ICD-9 on real ICD-9-CM codes: three levels
from the catalogue's columns, with its "Unclassified" chapter in the tree and in the results alike.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from annotation.config import code_paths, labeling_config, taxonomy_items
from annotation.projects import codes_result, evidence_result
from benchmark import codesystems
from benchmark.errors import UserError
from benchmark.sampling import read_shortlist
from benchmark.study import Study
from tests.fixtures_labelstudio import write_minimal_study


def tree_paths(items: list[dict[str, Any]], above: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """{leaf code: (branch labels..., code)} of a Taxonomy item tree."""
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        if "children" in item:
            out.update(tree_paths(item["children"], (*above, item["value"])))
        else:
            out[item["alias"]] = (*above, item["alias"])
    return out


def xml_paths(parent: ET.Element, above: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """{leaf alias: (branch values..., alias)} of nested ``<Choice>`` tags."""
    out: dict[str, tuple[str, ...]] = {}
    for choice in parent.findall("Choice"):
        if len(choice):
            out.update(xml_paths(choice, (*above, choice.get("value", ""))))
        else:
            out[choice.get("alias", "")] = (*above, choice.get("alias", ""))
    return out


@pytest.fixture(scope="module")
def icd10(icd10_study: Path) -> tuple[list[str], pd.DataFrame]:
    study = Study(icd10_study)
    return read_shortlist(study), pd.read_parquet(study.codes)


def test_icd10_tree_has_four_levels_along_the_code_systems_hierarchy(icd10: tuple[list[str], pd.DataFrame]) -> None:
    shortlist, catalogue = icd10
    assert {"I50.9", "0DTJ4ZZ"} <= set(shortlist)  # the fixture's seed-0 shortlist holds both
    items = taxonomy_items(shortlist, catalogue, version=10)
    paths = tree_paths(items)
    assert sorted(paths) == sorted(shortlist)
    assert paths["I50.9"] == ("I00-I99 Diseases of the circulatory system", "I30-I5A Other forms of heart disease",
                              "I50", "I50.9")
    assert paths["0DTJ4ZZ"] == ("0 Medical and Surgical", "0D", "0DT", "0DTJ4ZZ")
    for code, path in paths.items():
        assert path == codesystems.get(10, codesystems.kind_of(code, 10)).hierarchy(code)
    top = [node["value"] for node in items]
    cm, pcs = codesystems.get(10, "dx").chapters(), codesystems.get(10, "px").chapters()
    assert top == [c for c in cm if c in top] + [s for s in pcs if s in top]  # CM chapters, then PCS sections
    assert len(top) > len(set(top) - set(pcs)) > 0  # the shortlist has both kinds
    # the inline tree (a --url server) nests the same four levels as <Choice> tags
    xml = labeling_config(shortlist, catalogue, "taxonomy", codes_label="ICD-10-CM/PCS", version=10)
    (control,) = [el for el in ET.fromstring(xml).iter("Taxonomy") if el.get("name") == "codes"]
    assert xml_paths(control) == paths


def test_icd10_results_carry_the_trees_paths(icd10: tuple[list[str], pd.DataFrame]) -> None:
    shortlist, catalogue = icd10
    paths = tree_paths(taxonomy_items(shortlist, catalogue, version=10))
    (result,) = codes_result(shortlist, "taxonomy", catalogue, version=10)
    assert [tuple(p) for p in result["value"]["taxonomy"]] == [paths[c] for c in shortlist]
    regions = evidence_result({"I50.9": [(0, 2)], "0DTJ4ZZ": [(3, 5), (6, 8)], "I10": []}, "abcdefghij", catalogue,
                              version=10)
    assert [r["value"]["taxonomy"] for r in regions] == [[list(paths["I50.9"])]] + [[list(paths["0DTJ4ZZ"])]] * 2
    assert code_paths(shortlist, catalogue, 10) == [paths[c] for c in shortlist]


def test_icd9_tree_and_results_agree_and_keep_the_catalogue_columns(tmp_path: Path) -> None:
    study = Study(write_minimal_study(tmp_path / "study"))
    shortlist, catalogue = read_shortlist(study), pd.read_parquet(study.codes)
    catalogue.loc[catalogue["code"] == shortlist[0], "chapter"] = None  # a code the catalogue has no chapter for
    paths = tree_paths(taxonomy_items(shortlist, catalogue))
    rows = catalogue.set_index("code")
    assert paths[shortlist[0]] == ("Unclassified", rows.at[shortlist[0], "category"], shortlist[0])
    assert all(paths[c] == (rows.at[c, "chapter"], rows.at[c, "category"], c) for c in shortlist[1:])
    (result,) = codes_result(shortlist, "taxonomy", catalogue)
    assert [tuple(p) for p in result["value"]["taxonomy"]] == [paths[c] for c in shortlist]
    (region,) = evidence_result({shortlist[0]: [(0, 1)]}, "x", catalogue)
    assert region["value"]["taxonomy"] == [list(paths[shortlist[0]])]


def test_a_code_outside_the_catalogue_is_refused(icd10: tuple[list[str], pd.DataFrame]) -> None:
    _, catalogue = icd10
    with pytest.raises(UserError, match=r"1 code\(s\) not in codes.parquet \(first: Z99.89\)"):
        codes_result(["Z99.89"], "taxonomy", catalogue, version=10)
