"""The labeling config: the note, a code picker over the study's shortlist, a comment and a flag.

Two pickers, both a control named ``codes`` whose items show "code title" and store the bare dotted
code through ``alias`` (so exports need no title parsing; DESIGN.md §7 confirmed it in both UIs):

- ``choices``: the paper's flat list, one ``<Choice>`` per shortlist code, with a ``<Filter>`` that
  searches by code number or title words. The filter MUST have a ``name``: without one Label Studio
  accepts the config and renders nothing.
- ``taxonomy``: the ICD-9 hierarchy chapter -> 3-character category -> code, ``leafsOnly`` so only
  codes can be picked; its search box matches numbers and words too. Far fewer DOM nodes, because
  collapsed branches are not rendered (the faster page; see perf/RESULTS.md).

The rest of the contract: a ``TextArea`` named ``comment`` and a ``Choices`` named
``insufficient_documentation``. Reference codes never appear here: the only codes in the config are
the shortlist, which is the coding vocabulary the coders see anyway.

>>> import pandas as pd
>>> cat = pd.DataFrame({"code": ["428.0", "428.1"], "long_title": ["Congestive heart failure", "Left heart failure"],
...                     "short_title": ["CHF", "LHF"], "category": ["428", "428"],
...                     "chapter": ["390-459 Circulatory", "390-459 Circulatory"]})
>>> xml = labeling_config(["428.0", "428.1"], cat, ui="choices")
>>> choice_codes(xml)
['428.0', '428.1']
>>> choice_codes(labeling_config(["428.0"], cat, ui="taxonomy"))
['428.0']
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pandas as pd

from benchmark.errors import UserError

UIS = ("choices", "taxonomy")
DEFAULT_UI = "taxonomy"  # measured: see perf/RESULTS.md "Label Studio coder page"
CONTROL = "codes"
TITLE_CHARS = 80  # long titles are cut here: shorter strings are fewer layout lines in the picker


def _label(code: str, title: str) -> str:
    title = " ".join(str(title or "").split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    return f"{code} {title}".strip()


def _titles(shortlist: Sequence[str], catalogue: pd.DataFrame) -> pd.DataFrame:
    """One row per shortlist code, in shortlist order, with title, category and chapter."""
    table = catalogue.set_index("code")
    missing = [code for code in shortlist if code not in table.index]
    if missing:
        raise UserError(f"shortlist.txt: {len(missing)} code(s) not in codes.parquet (first: {missing[0]}); "
                        f"re-run `bench sample` after `bench prepare`")
    rows = table.loc[list(shortlist)]
    long_title = rows["long_title"].fillna("").astype(str)
    title = long_title.where(long_title.str.len() > 0, rows["short_title"].fillna("").astype(str))
    return pd.DataFrame({"code": list(shortlist), "title": title.to_numpy(),
                         "category": rows["category"].astype(str).to_numpy(),
                         "chapter": rows["chapter"].fillna("Unclassified").astype(str).to_numpy()})


def labeling_config(shortlist: Sequence[str], catalogue: pd.DataFrame, ui: str = DEFAULT_UI) -> str:
    """The Label Studio XML for ``ui`` ("choices" or "taxonomy") over ``shortlist``."""
    if ui not in UIS:
        raise UserError(f"--ui {ui!r}: expected one of {', '.join(UIS)}")
    if not shortlist:
        raise UserError("shortlist.txt is empty: run `bench sample` to build the coding shortlist")
    rows = _titles(shortlist, catalogue)
    # Side by side: the note scrolls on the left, the picker stays in view on the right (a long note
    # above the picker would make coders scroll past every page of it to reach the codes).
    view = ET.Element("View", style="display: flex; gap: 16px; align-items: flex-start")
    note = ET.SubElement(view, "View", style="flex: 3; min-width: 0; max-height: 80vh; overflow-y: auto")
    ET.SubElement(note, "Header", value="Discharge summary (sample #$sample_index)")
    ET.SubElement(note, "Text", name="text", value="$text")
    side = ET.SubElement(view, "View", style="flex: 2; min-width: 320px; position: sticky; top: 0")
    ET.SubElement(side, "Header", value="ICD-9-CM codes: search by number or words", size="5")
    if ui == "choices":
        ET.SubElement(side, "Filter", name="code_filter", toName=CONTROL, minlength="1",
                      placeholder="Search codes: number or words")
        picker = ET.SubElement(side, "Choices", name=CONTROL, toName="text", choice="multiple",
                               showInline="false", required="false")
        for row in rows.itertuples(index=False):
            ET.SubElement(picker, "Choice", value=_label(row.code, row.title), alias=row.code)
    else:
        picker = ET.SubElement(side, "Taxonomy", name=CONTROL, toName="text", leafsOnly="true",
                               showFullPath="false", placeholder="Search codes: number or words",
                               minWidth="320px", dropdownWidth="560px")
        for chapter, in_chapter in rows.groupby("chapter", sort=True):
            chapter_el = ET.SubElement(picker, "Choice", value=chapter)
            for category, in_category in in_chapter.groupby("category", sort=True):
                category_el = ET.SubElement(chapter_el, "Choice", value=category)
                for row in in_category.itertuples(index=False):
                    ET.SubElement(category_el, "Choice", value=_label(row.code, row.title), alias=row.code)
    flag = ET.SubElement(side, "Choices", name="insufficient_documentation", toName="text", choice="single")
    ET.SubElement(flag, "Choice", value="Insufficient documentation to code this note", alias="yes")
    ET.SubElement(side, "TextArea", name="comment", toName="text", placeholder="Comment (optional)",
                  rows="2", maxSubmissions="1", editable="true")
    return ET.tostring(view, encoding="unicode")


def choice_codes(xml: str) -> list[str]:
    """The codes a config offers in its ``codes`` control (leaf aliases), in config order."""
    root = ET.fromstring(xml)
    control = next((el for el in root.iter() if el.get("name") == CONTROL), None)
    if control is None:
        return []
    return [el.get("alias") or el.get("value", "") for el in control.iter("Choice") if len(el) == 0]
