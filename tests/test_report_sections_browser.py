"""The report's coder-evidence and arms sections in headless Chromium: shown, equal to scores.json, clean, no note text.

The study is the small synthetic one with its MDACE companion imported (tests/test_coder_evidence.py's
``evidence_study``); `bench score` scores two coders' highlighted spans (one marks MDACE's spans, the other half
of them plus a wrong one, as tests/test_coder_evidence.py does) and `bench compare-arms` a crossover in which the
assisted arm copies RAC's proposals (as tests/test_arms.py does); `bench evidence` scores a model's windows, so the
evidence section holds its figure too. The page is compared with the scores.json those commands wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.predictions import Predictions, write_predictions
from benchmark.study import Study
from reports.render import REPORT_NAME, render_html, render_report
from tests.fixtures_study import copy_study
from tests.test_arms import write_crossover
from tests.test_coder_evidence import _charts, _texts, _write, annotation, evidence_study, region  # noqa: F401
from tests.test_exports import full_task
from tests.test_report_browser import Page, text_outside_figure

pytestmark = pytest.mark.browser

SECTIONS = ("#evidence", "#arms")


# The page's formats, written out here (not the renderer's helpers) so that a wrong format fails the test.
def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


@pytest.fixture(scope="module")
def sections_study(evidence_study: Study, tmp_path_factory: pytest.TempPathFactory) -> tuple[Study, set[str]]:
    """The study after `bench score` (coder evidence) and `bench compare-arms`; and the coders' span texts."""
    root = tmp_path_factory.mktemp("report-sections")
    study = copy_study(evidence_study, root / "study")
    charts, gold = _charts(study)
    text = _texts(study)
    tasks, spans = [], set()
    for i, h in enumerate(charts[:6]):
        codes = sorted({c for _, _, c in gold[h]})
        exact = [region(text[h], b, e, c) for b, e, c in gold[h]]
        half = exact[: max(1, len(exact) // 2)] + [region(text[h], 0, 40, codes[0])]
        tasks.append(full_task(i + 1, h, [annotation(10 * i, 3, codes, exact), annotation(10 * i + 1, 4, codes, half)]))
        spans |= {r["value"]["text"] for r in exact + half}
    assert main(["--study", str(study.root), "score", "--coders", str(_write(root, tasks)), "--bootstrap", "5"]) == 0

    # A model whose windows are MDACE's spans on half of the charts (and the note's opening elsewhere): `bench
    # evidence` then fills the section's own table and its figure, whose windows are note text too.
    refs = {int(h): sorted(g["code"]) for h, g in pd.read_parquet(study.references).groupby("hadm_id")}
    test = [h for h in sorted(gold) if h in refs]
    codes = sorted({c for h in test for c in refs[h]})
    probs = np.array([[0.9 if c in refs[h] else 0.1 for c in codes] for h in test], dtype=np.float32)
    windows = [{"hadm_id": h, "codes": {c: [{"start": b, "end": e, "score": 0.9} for b, e, g in gold[h] if g == c]
                                        if i % 2 == 0 and any(g == c for *_, g in gold[h])
                                        else [{"start": 0, "end": 40, "score": 0.5}] for c in refs[h]}}
               for i, h in enumerate(test)]
    spans |= {text[h][0:40] for h in test}
    write_predictions(study.predictions_dir / "small-test", Predictions(
        "small-test", np.asarray(test), codes, probs, run="small", split="test"), windows)
    assert main(["--study", str(study.root), "evidence", "--predictions", "small-test"]) == 0

    crossover = write_crossover(study, root)
    assert main(["--study", str(study.root), "compare-arms", "--permutations", "200",
                 "--unassisted", str(crossover.unassisted), "--assisted", str(crossover.assisted)]) == 0
    return study, spans


@pytest.fixture(scope="module")
def scores(sections_study: tuple[Study, set[str]]) -> dict[str, Any]:
    return json.loads(sections_study[0].scores.read_text())


@pytest.fixture(scope="module")
def sections_page(browser: Any, sections_study: tuple[Study, set[str]]) -> Iterator[Page]:
    opened = Page(browser, render_report(sections_study[0]))
    yield opened
    opened.context.close()


def test_sections_are_visible_and_the_page_is_clean(sections_page: Page, scores: dict[str, Any], artifact_dir: Path) -> None:
    assert scores["coder_evidence"] and scores["arms"]  # both blocks were written, so both sections must show
    for selector in ("#coder-evidence", "table.coder-evidence", "#arms", "table.arms"):
        element = sections_page.page.locator(selector)
        element.scroll_into_view_if_needed()
        assert element.is_visible(), selector
        box = element.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 10, selector
    for section in SECTIONS:  # clipped from the page scrolled to the top, so the sticky bar stays out of the shot
        clip = sections_page.page.evaluate("s => { window.scrollTo(0, 0); const r = document.querySelector(s)"
                                           ".getBoundingClientRect(); return {x: r.left, y: r.top, width: r.width,"
                                           " height: r.height}; }", section)
        sections_page.page.screenshot(path=str(artifact_dir / f"report-{section[1:]}.png"), full_page=True, clip=clip)
    sections_page.assert_clean()
    assert sections_page.requests[0] == sections_page.url


def test_a_link_to_a_section_shows_its_heading(sections_page: Page) -> None:
    """Followed from the nav (or to its anchor), each section's heading lands below the sticky bar, not under it."""
    for anchor in ("#evidence", "#arms", "#coder-evidence"):
        if anchor == "#coder-evidence":  # a part of the evidence section: no nav link of its own
            sections_page.page.goto(sections_page.url + anchor)
        else:
            sections_page.page.locator(f"nav a[href='{anchor}']").click()
        top, bar, seen = sections_page.page.evaluate(
            """a => { const el = document.querySelector(a), h = el.matches('section') ? el.querySelector('h2') : el;
                      const r = h.getBoundingClientRect();
                      return [r.top, document.querySelector('.topbar').getBoundingClientRect().bottom,
                              h.contains(document.elementFromPoint(r.left + 4, (r.top + r.bottom) / 2))]; }""", anchor)
        assert top >= bar and seen, (anchor, top, bar)
    sections_page.assert_clean()


def measure_rows(page: Any, table: str) -> list[tuple[str, list[list[Any]]]]:
    """Each row of an evidence table as shown: its header, and per cell [metric, data-value, text]."""
    return [(header, cells) for header, cells in page.eval_on_selector_all(
        f"{table} tbody tr", "trs => trs.map(tr => [tr.querySelector('th').innerText, Array.from("
        "tr.querySelectorAll('td')).map(td => [td.dataset.metric, Number(td.dataset.value), td.innerText])])")]


def expected_rows(measures: list[str], parts: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, list[list[Any]]]]:
    """What ``measure_rows`` must read for (header, {measure: {precision, recall, f1}}) parts of scores.json."""
    return [(header, [[f"{m}_{k}", part[m][k], pct(part[m][k])] for m in measures
                      for k in ("precision", "recall", "f1")]) for header, part in parts]


def test_coder_evidence_cells_equal_scores(sections_page: Page, scores: dict[str, Any]) -> None:
    block = scores["coder_evidence"]
    parts = [(f"{row['coder']}, against MDACE, {label.replace('_', ' ')}", row[label])
             for row in block["vs_mdace"]["rows"] for label in ("all_codes", "correct_codes")]
    parts += [(f"{p['a']} vs {p['b']} ({p['n_tasks']} tasks), between coders, {label.replace('_', ' ')}", p[label])
              for p in block["agreement"] for label in ("all_codes", "shared_codes")]
    assert len(parts) == 2 * 3 + 2  # users 3 and 4 and the pooled row against MDACE; the one pair between them
    assert measure_rows(sections_page.page, "table.coder-evidence") == expected_rows(block["measures"], parts)
    assert block["vs_mdace"]["rows"][0]["all_codes"]["exact_span"]["f1"] == 1.0  # user 3 marked MDACE's spans
    # The line above the table counts the spans and annotations that scores.json counts.
    summary = sections_page.page.locator("#coder-evidence + p").inner_text()
    assert summary.startswith(f"{block['n_spans']} spans in {block['n_annotations_with_evidence']} of "
                              f"{block['n_annotations']} annotations")


def test_model_evidence_cells_equal_scores(sections_page: Page, scores: dict[str, Any]) -> None:
    block = scores["evidence"]
    parts = [(f"{row['system']}, {label}", part) for row in block["rows"]
             for label, part in (("all predicted codes", row["all_codes"]),
                                 ("correctly predicted codes", row["correct_codes"]),
                                 ("random windows, all codes", row["random_windows"]["all_codes"]),
                                 ("random windows, correct codes", row["random_windows"]["correct_codes"]))]
    assert len(parts) == 4
    assert measure_rows(sections_page.page, "table.evidence:not(.coder-evidence)") == expected_rows(block["measures"], parts)


def test_arms_cells_equal_scores(sections_page: Page, scores: dict[str, Any]) -> None:
    block = scores["arms"]
    shown = sections_page.page.eval_on_selector_all(
        "table.arms tbody tr",
        "trs => trs.map(tr => [tr.dataset.coder, tr.dataset.arm,"
        " Array.from(tr.querySelectorAll('td')).map(td => td.innerText)])")
    expected = []
    for row in block["rows"]:
        for arm in ("unassisted", "assisted"):
            r = row[arm]
            cells = [arm, str(r["n_notes"]), pct(r["precision"]), pct(r["recall"]), pct(r["f1"]),
                     num(r["codes_per_note"]), num(r["median_lead_time_s"]),
                     pct(r["agreement_with_model_f1"])]
            if arm == "unassisted":  # the paired test spans both rows of the coder; 200 permutations: p >= 1/201
                test = row["paired"]
                cells.append(f"{pct(test['difference'])} over {test['n_notes']} notes, p = {test['p_value']:.3f}"
                             if test else "no note in both arms")
            expected.append([row["coder"], arm, cells])
    assert shown == expected
    assert [r["coder"] for r in block["rows"]] == ["user 3", "user 4", "All coders"]
    assert block["rows"][-1]["paired"]["n_notes"] == 20
    headers = sections_page.page.locator("table.arms tbody th[scope='row']").all_inner_texts()
    assert headers == [r["coder"] for r in block["rows"]]
    assert "tiny" in sections_page.page.locator("#arms > p").first.inner_text()  # the assisted run is named


def test_sections_fit_and_their_figures_are_drawn(browser: Any, sections_page: Page) -> None:
    """At 1366 px every table of the two sections fits its box (no sideways scrolling, nothing cut) and the page no
    wider than the window; any figure there is loaded, drawn at a non-zero size, and its labels lie inside it."""
    widths = sections_page.page.evaluate(
        """sels => sels.flatMap(sel => Array.from(document.querySelectorAll(sel + ' table')).map(t => {
             const box = t.closest('.scroll'); return [sel, box.scrollWidth, box.clientWidth]; }))""", list(SECTIONS))
    assert len(widths) == 3 and all(scroll <= client for _, scroll, client in widths), widths
    assert sections_page.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    figures = {section: sections_page.page.locator(f"{section} figure img").evaluate_all(
        "imgs => imgs.map(i => { i.scrollIntoView(); const r = i.getBoundingClientRect();"
        " return [i.closest('figure').dataset.figure, i.complete, i.naturalWidth, r.width * r.height, i.src]; })")
        for section in SECTIONS}
    assert {section: [f[0] for f in found] for section, found in figures.items()} == {
        "#evidence": ["evidence_frequency"], "#arms": []}
    for found in figures.values():
        assert all(loaded and width > 300 and area > 0 for _, loaded, width, area, _ in found)
        assert [text_outside_figure(browser, src) for *_, src in found] == [[]] * len(found)


def test_default_report_holds_no_span_text(sections_page: Page, sections_study: tuple[Study, set[str]]) -> None:
    """The coders' highlighted texts and the model's windows are note text: never in a report without --include-text."""
    study, spans = sections_study
    html = study.report_dir.joinpath(REPORT_NAME).read_text()
    dom = sections_page.page.content()
    codes = pd.read_parquet(study.codes, columns=["short_title", "long_title"])
    titles = [t.lower() for column in codes for t in codes[column]]
    # A span that is a code's title (MDACE marks the words of a diagnosis) may appear as that title: not note text.
    distinctive = [s for s in spans if len(s) >= 8 and not any(s.lower() in t for t in titles)]
    assert len(distinctive) >= 10
    assert [s for s in distinctive if s in html or s in dom] == []
    assert any(s in render_html(study, include_text=True) for s in distinctive)  # where text is asked for, it shows
