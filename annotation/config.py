"""The labeling config: the note, a code picker over the study's shortlist, a comment and a flag.

Two pickers, both a control named ``codes`` whose items show "code title" and store the bare dotted
code through ``alias`` (so exports need no title parsing; docs/architecture.md §7; confirmed in both UIs):

- ``choices``: the paper's flat list, one ``<Choice>`` per shortlist code, with a ``<Filter>`` that
  searches by code number or title words. The filter MUST have a ``name``: without one Label Studio
  accepts the config and renders nothing.
- ``taxonomy``: the code system's hierarchy, ``leafsOnly`` so only codes can be picked; its search box
  matches numbers and words too. ICD-9: chapter -> 3-character category -> code (the catalogue's
  ``chapter`` and ``category`` columns). ICD-10: ICD-10-CM chapter -> block -> 3-character category ->
  code, then ICD-10-PCS section -> body system -> root operation -> code
  (``benchmark.codesystems.CodeSystem.hierarchy``). One function, ``code_paths``, gives each code's path
  for the tree and for every taxonomy result we write (predictions, simulated coders, evidence
  regions), so a stored path is always a path of the tree. Two ways to hand it the tree:

  * **items from a URL** (``items_url``; what the study's own server gets): ``<Taxonomy apiUrl=...>``
    with no children, and the tree as one JSON file (``taxonomy_items``) that Label Studio itself serves
    from its local-files folder. The editor keeps the items as plain objects, so the page costs about
    what an empty config costs (perf/RESULTS.md), while nested ``<Choice>`` tags make the editor build
    one model per tag (~5,000) on every page load.
  * **nested ``<Choice>`` tags** (no ``items_url``; for a server named by ``--url``, whose disk we
    cannot write to): the same tree inline in the XML.

  ``apiUrl`` must be absolute for the 1.23 frontend (``new URL(apiUrl)``), except that it resolves a
  path starting ``/projects/<n>/resolve`` against the page's own origin (its storage-proxy route). So
  the items URL is ``/projects/0/resolve/../../../data/local-files/?d=<file>``, which the browser
  normalizes to ``<origin>/data/local-files/?d=<file>``: the config names no host or port, so it stays
  valid when the server restarts on another port or is reached through an SSH tunnel or a proxy.
  The browser test pins this behaviour for the pinned Label Studio.

**Evidence** (``evidence=True``, ``bench setup-labelstudio --evidence``): a second Taxonomy, named
``evidence``, over the same code tree, with ``labeling="true"``: Label Studio's taxonomy
*as a labeling tool* (on in 1.23, behind the frontend flag ``fflag_feat_front_lsdv_5452_taxonomy_labeling``).
The coder picks a code in it, then highlights words in the note; each highlight becomes a region of the note
carrying that code, and one result ``{"type": "taxonomy", "value": {"start", "end", "text", "taxonomy":
[[chapter, ..., code]]}}`` (the code's ``code_paths`` path) with character offsets into the task text. Its
tree is always inline, with a ``color`` on every leaf: a region takes its highlight color and its label (the
code and title, on the note and in the region list) from its leaf, and with the tree loaded from ``apiUrl``
the regions already in a task when it opens (RAC's proposed windows, a saved annotation) are drawn before the
items arrive and stay without label or color (checked in the browser with 1.23.2).
The inline tree costs page time (perf/RESULTS.md), so it is there only with ``evidence``.
We chose this tag over the alternatives because it links a span to a code in one result and with the
least work for a coder:

- ``<Labels>`` with one ``<Label>`` per code: 4,000 label buttons above the note;
- one ``<Label value="Evidence">`` plus a per-region ``<Taxonomy perRegion="true">``: two results per
  span joined by a region id, and a label click, a highlight and a code search for every span (here:
  a code pick and a highlight; with the editor's setting to keep labels selected (``continuousLabeling``)
  one pick serves all of a code's highlights);
- per-region ``<Choices>`` "restricted to the codes picked": Label Studio builds a control's options
  from the config or the task data only, never from another control's current value, so the
  restriction cannot be expressed; the scorer enforces it instead (``benchmark.exports``: evidence of a
  code the coder did not pick in ``codes`` is counted and left out, so removing a code also rejects
  its evidence).

The rest of the contract: a ``TextArea`` named ``comment`` and a ``Choices`` named
``insufficient_documentation``. Reference codes never appear here: the only codes in the config (or its
items file) are the shortlist, which is the coding vocabulary the coders see anyway.

>>> import pandas as pd
>>> cat = pd.DataFrame({"code": ["428.0", "428.1"], "long_title": ["Congestive heart failure", "Left heart failure"],
...                     "short_title": ["CHF", "LHF"], "category": ["428", "428"],
...                     "chapter": ["390-459 Circulatory", "390-459 Circulatory"]})
>>> xml = labeling_config(["428.0", "428.1"], cat, ui="choices")
>>> choice_codes(xml)
['428.0', '428.1']
>>> choice_codes(labeling_config(["428.0"], cat, ui="taxonomy"))
['428.0']
>>> items = taxonomy_items(["428.0", "428.1"], cat)
>>> items[0]["children"][0]["children"][1]
{'value': '428.1 Left heart failure', 'alias': '428.1'}
>>> xml = labeling_config(["428.0", "428.1"], cat, ui="taxonomy", items_url=items_url("t.json"))
>>> items_file(xml), choice_codes(xml, items)
('t.json', ['428.0', '428.1'])
>>> xml = labeling_config(["428.0"], cat, ui="choices", evidence=True)
>>> [(el.get("name"), el.get("labeling")) for el in ET.fromstring(xml).iter("Taxonomy")]
[('evidence', 'true')]
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from benchmark import codesystems
from benchmark.errors import UserError

UIS = ("choices", "taxonomy")
DEFAULT_UI = "taxonomy"  # measured: perf/RESULTS.md, Label Studio, "Coder page: navigation → picker usable"
CONTROL = "codes"
EVIDENCE_CONTROL = "evidence"
SEARCH_PLACEHOLDER = "Search codes: number or words"
EVIDENCE_PLACEHOLDER = "Code to highlight evidence for"
EVIDENCE_COLOR = "#ffd54f"  # a highlighter yellow: evidence regions are drawn in their code's color
TITLE_CHARS = 80  # long titles are cut here: shorter strings are fewer layout lines in the picker
# Resolved by the browser to <origin>/data/local-files/?d=<file> (see the module docstring for why).
ITEMS_URL_PREFIX = "/projects/0/resolve/../../../data/local-files/?d="


def _label(code: str, title: str) -> str:
    title = " ".join(str(title or "").split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    return f"{code} {title}".strip()


def _catalogue_rows(codes: Sequence[str], catalogue: pd.DataFrame) -> pd.DataFrame:
    """The catalogue's rows of ``codes``, in that order; every code must be in it."""
    table = catalogue.set_index("code")
    missing = [code for code in codes if code not in table.index]
    if missing:
        raise UserError(f"shortlist.txt: {len(missing)} code(s) not in codes.parquet (first: {missing[0]}); "
                        f"re-run `bench sample` after `bench prepare`")
    return table.loc[list(codes)]


def _titles(shortlist: Sequence[str], catalogue: pd.DataFrame) -> pd.DataFrame:
    """One row per shortlist code, in shortlist order, with its title."""
    rows = _catalogue_rows(shortlist, catalogue)
    long_title = rows["long_title"].fillna("").astype(str)
    title = long_title.where(long_title.str.len() > 0, rows["short_title"].fillna("").astype(str))
    return pd.DataFrame({"code": list(shortlist), "title": title.to_numpy()})


def code_paths(codes: Sequence[str], catalogue: pd.DataFrame, version: int = 9) -> list[tuple[str, ...]]:
    """Each code's place in the picker: its branch labels, top first, then the code itself.

    The tree (``taxonomy_items``) nests codes along these paths and every taxonomy result we write
    (``annotation.projects.codes_result``, ``evidence_result``) stores them, so the two always agree.
    ICD-9 (``version`` 9): the catalogue's chapter ("Unclassified" where it has none) and category
    columns, as the picker has always shown them. ICD-10: ``CodeSystem.hierarchy``, four levels (CM:
    chapter, block, category; PCS: section, body system, root operation), the kind told by the
    canonical code's shape. Codes missing from the catalogue raise ``UserError``.

    >>> cat = pd.DataFrame({"code": ["428.0", "I50.9", "0DTJ4ZZ"], "chapter": ["390-459 Circulatory", None, None],
    ...                     "category": ["428", "I50", "0DT"]})
    >>> code_paths(["428.0"], cat)
    [('390-459 Circulatory', '428', '428.0')]
    >>> for path in code_paths(["I50.9", "0DTJ4ZZ"], cat, version=10):
    ...     print(path)
    ('I00-I99 Diseases of the circulatory system', 'I30-I5A Other forms of heart disease', 'I50', 'I50.9')
    ('0 Medical and Surgical', '0D', '0DT', '0DTJ4ZZ')
    """
    rows = _catalogue_rows(codes, catalogue)
    if version == 9:
        chapters = rows["chapter"].fillna("Unclassified").astype(str).to_numpy()
        categories = rows["category"].astype(str).to_numpy()
        return [(chapter, category, code) for chapter, category, code in zip(chapters, categories, codes)]
    return [codesystems.get(version, codesystems.kind_of(code, version)).hierarchy(code) for code in codes]


def _branch_order(version: int) -> Callable[[str], tuple[bool, str]]:
    """Sort key of branch labels: by label; in ICD-10, the PCS sections after the CM chapters.

    Sorting by label alone is classification order within CM and within PCS, but would put the PCS
    sections ("0 Medical and Surgical" ... "X New Technology") around the CM chapters.
    """
    sections = frozenset(codesystems.get(10, "px").chapters()) if version == 10 else frozenset()
    return lambda label: (label in sections, label)


def _nested(leaves: list[tuple[tuple[str, ...], dict[str, Any]]], order: Callable[[str], Any]) -> list[dict[str, Any]]:
    """Leaves under their branches (``(branch labels, leaf)`` pairs): branches sorted, leaves in given order."""
    here: list[dict[str, Any]] = []
    below: dict[str, list[tuple[tuple[str, ...], dict[str, Any]]]] = {}
    for branches, leaf in leaves:
        if branches:
            below.setdefault(branches[0], []).append((branches[1:], leaf))
        else:
            here.append(leaf)
    return here + [{"value": label, "children": _nested(below[label], order)} for label in sorted(below, key=order)]


def taxonomy_items(shortlist: Sequence[str], catalogue: pd.DataFrame, color: str | None = None,
                   version: int = 9) -> list[dict[str, Any]]:
    """The code tree along ``code_paths``, in Label Studio's Taxonomy item shape.

    ICD-9: chapter -> category -> code. ICD-10 (``version`` 10): CM chapter -> block -> category ->
    code, then PCS section -> body system -> root operation -> code. Branches carry ``value`` and
    ``children``, sorted by label; leaves ``value`` ("code title") and ``alias`` (the bare code, which
    is what a result stores), in shortlist order, and ``color`` when given (the evidence tree: a
    region's highlight takes its label's color, and is invisible without one). Served as JSON for
    ``apiUrl`` and also the source of the nested ``<Choice>`` tags, so both taxonomy configs offer the
    same tree.

    >>> cat = pd.DataFrame({"code": ["I50.9", "0DTJ4ZZ"], "long_title": ["Heart failure, unspecified", "Appendectomy"],
    ...                     "short_title": ["", ""], "category": ["I50", "0DT"], "chapter": ["", ""]})
    >>> items = taxonomy_items(["I50.9", "0DTJ4ZZ"], cat, version=10)
    >>> [node["value"] for node in items]
    ['I00-I99 Diseases of the circulatory system', '0 Medical and Surgical']
    >>> items[0]["children"][0]["children"][0]["children"]
    [{'value': 'I50.9 Heart failure, unspecified', 'alias': 'I50.9'}]
    """
    rows = _titles(shortlist, catalogue)
    paint = {"color": color} if color else {}
    leaves = [(path[:-1], {"value": _label(row.code, row.title), "alias": row.code, **paint})
              for path, row in zip(code_paths(shortlist, catalogue, version), rows.itertuples(index=False))]
    return _nested(leaves, _branch_order(version))


def items_url(file_name: str) -> str:
    """The ``apiUrl`` for an items file in the server's local-files folder (host- and port-free)."""
    return ITEMS_URL_PREFIX + urllib.parse.quote(file_name)


def items_file(xml: str) -> str | None:
    """The items file a taxonomy config loads through ``apiUrl``, or None when the tree is inline."""
    control = _control(xml)
    url = control.get("apiUrl") if control is not None else None
    if not url:
        return None
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["d"][0]


def labeling_config(shortlist: Sequence[str], catalogue: pd.DataFrame, ui: str = DEFAULT_UI,
                    items_url: str | None = None, codes_label: str = "ICD-9-CM", evidence: bool = False,
                    version: int = 9) -> str:
    """The Label Studio XML for ``ui`` ("choices" or "taxonomy") over ``shortlist``.

    ``items_url`` (taxonomy only): load the tree from there (``taxonomy_items`` as JSON) instead of
    inlining it as nested ``<Choice>`` tags. ``codes_label`` names the study's code system in the
    picker's header (``benchmark.codesystems.study_label``) and ``version`` its ICD version (9 or 10; the
    tree's levels, ``code_paths``). ``evidence`` adds the evidence highlighter (its tree always inline, in
    ``EVIDENCE_COLOR``: see the module docstring).
    """
    if ui not in UIS:
        raise UserError(f"--ui {ui!r}: expected one of {', '.join(UIS)}")
    if not shortlist:
        raise UserError("shortlist.txt is empty: run `bench sample` to build the coding shortlist")
    # Side by side: the note scrolls on the left, the picker stays in view on the right (a long note
    # above the picker would make coders scroll past every page of it to reach the codes).
    view = ET.Element("View", style="display: flex; gap: 16px; align-items: flex-start")
    note = ET.SubElement(view, "View", style="flex: 3; min-width: 0; max-height: 80vh; overflow-y: auto")
    ET.SubElement(note, "Header", value="Discharge summary (sample #$sample_index)")
    ET.SubElement(note, "Text", name="text", value="$text")
    side = ET.SubElement(view, "View", style="flex: 2; min-width: 320px; position: sticky; top: 0")
    ET.SubElement(side, "Header", value=f"{codes_label} codes: search by number or words", size="5")
    if ui == "choices":
        ET.SubElement(side, "Filter", name="code_filter", toName=CONTROL, minlength="1",
                      placeholder=SEARCH_PLACEHOLDER)
        picker = ET.SubElement(side, "Choices", name=CONTROL, toName="text", choice="multiple",
                               showInline="false", required="false")
        for row in _titles(shortlist, catalogue).itertuples(index=False):
            ET.SubElement(picker, "Choice", value=_label(row.code, row.title), alias=row.code)
    else:
        _code_tree(side, CONTROL, shortlist, catalogue, version, items_url, SEARCH_PLACEHOLDER)
    if evidence:
        ET.SubElement(side, "Header", value="Evidence: pick a code here, then highlight its words in the note",
                      size="6")
        _code_tree(side, EVIDENCE_CONTROL, shortlist, catalogue, version, None, EVIDENCE_PLACEHOLDER,
                   color=EVIDENCE_COLOR, labeling="true")
    flag = ET.SubElement(side, "Choices", name="insufficient_documentation", toName="text", choice="single")
    ET.SubElement(flag, "Choice", value="Insufficient documentation to code this note", alias="yes")
    ET.SubElement(side, "TextArea", name="comment", toName="text", placeholder="Comment (optional)",
                  rows="2", maxSubmissions="1", editable="true")
    return ET.tostring(view, encoding="unicode")


def _code_tree(parent: ET.Element, name: str, shortlist: Sequence[str], catalogue: pd.DataFrame, version: int,
               items_url: str | None, placeholder: str, color: str | None = None, **extra: str) -> None:
    """A Taxonomy over the code tree: from the items file when there is one, else inline."""
    tree = ET.SubElement(parent, "Taxonomy", name=name, toName="text", leafsOnly="true", showFullPath="false",
                         placeholder=placeholder, minWidth="320px", dropdownWidth="560px", **extra)
    if items_url:
        tree.set("apiUrl", items_url)
    else:
        _nest(tree, taxonomy_items(shortlist, catalogue, color, version))


def _nest(parent: ET.Element, items: list[dict[str, Any]]) -> None:
    for item in items:
        element = ET.SubElement(parent, "Choice", value=item["value"])
        for key in ("alias", "color"):
            if key in item:
                element.set(key, item[key])
        _nest(element, item.get("children", []))


def _control(xml: str) -> ET.Element | None:
    return next((el for el in ET.fromstring(xml).iter() if el.get("name") == CONTROL), None)


def _leaves(items: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for item in items:
        children = item.get("children")
        out += _leaves(children) if children else [item.get("alias") or item["value"]]
    return out


def choice_codes(xml: str, items: list[dict[str, Any]] | None = None) -> list[str]:
    """The codes a config offers in its ``codes`` control (leaf aliases), in config order.

    A taxonomy that loads its tree from a URL offers what its items file holds: pass that file's
    parsed JSON as ``items`` (``items_file(xml)`` names it).
    """
    control = _control(xml)
    if control is None:
        return []
    if control.get("apiUrl"):
        if items is None:
            raise ValueError("this config loads its codes from apiUrl: pass the items file's JSON")
        return _leaves(items)
    return [el.get("alias") or el.get("value", "") for el in control.iter("Choice") if len(el) == 0]
