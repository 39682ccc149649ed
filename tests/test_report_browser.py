"""The report in headless Chromium, opened from disk: values, figures, drill-down, no network, no errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmark.study import Study
from benchmark import reported
from reports import figures
from reports.render import TABLE2_COLUMNS, render_report
from tests.report_study import HOSTILE_TITLE, MODEL_SYSTEM, NOTE_MARKER, Size, build_study

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return build_study(tmp_path_factory.mktemp("report-browser") / "study", Size(n_test=24, n_sample=10))


class Page:
    """A page opened from a file:// URL, with every console message, page error and request recorded."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1366, "height": 800})
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")

    def assert_clean(self) -> None:
        assert self.errors == []
        assert [m for m in self.console if m.startswith(("error", "warning"))] == []
        assert [u for u in self.requests if u != self.url and not u.startswith("data:")] == []


@pytest.fixture(scope="module")
def default_page(browser: Any, study: Study) -> Iterator[Page]:
    page = Page(browser, render_report(study))
    yield page
    page.context.close()


def test_no_console_errors_and_no_network(default_page: Page) -> None:
    default_page.page.locator("details.note").first.evaluate("d => { d.open = true; }")
    default_page.page.wait_for_selector("details.note[data-built] table.drill")
    default_page.assert_clean()
    assert default_page.requests[0] == default_page.url


TABLE1_METRICS = (("micro_jaccard", ("micro", "jaccard")), ("micro_precision", ("micro", "precision")),
                  ("micro_recall", ("micro", "recall")), ("micro_f1", ("micro", "f1")),
                  ("macro_jaccard", ("macro", "jaccard")), ("macro_precision", ("macro", "precision")),
                  ("macro_recall", ("macro", "recall")), ("macro_f1", ("macro", "f1")),
                  ("per_document_jaccard", ("per_document_jaccard",)), ("exact_match", ("exact_match",)),
                  ("codes_per_note", ("codes_per_note",)), ("vocabulary_coverage", ("vocabulary_coverage",)))


def check_table1(page: Any, scores: dict[str, Any]) -> int:
    """Assert every Table 1 cell of both profiles equals scores.json (value, shown text, CI); return the count."""
    cells = page.eval_on_selector_all(
        "table.table1 tbody:not(.reported) td[data-metric]",
        "tds => tds.map(td => [td.dataset.profile, td.dataset.system, td.dataset.metric, td.dataset.value,"
        " td.dataset.ciLo || null, td.dataset.ciHi || null, td.querySelector('.v').textContent])",
    )
    shown = {(p, s, m): (v, lo, hi, text) for p, s, m, v, lo, hi, text in cells}
    checked = 0
    for profile in ("paper", "corrected"):
        for row in scores["profiles"][profile]["rows"]:
            for metric, path in TABLE1_METRICS:
                expected: Any = row
                for key in path:
                    expected = expected.get(key) if isinstance(expected, dict) else None
                value, lo, hi, text = shown[(profile, row["system"], metric)]
                if expected is None:
                    assert (value, text) == ("", "—")
                else:
                    assert float(value) == expected, (profile, row["system"], metric)
                    assert text == (f"{expected:.1f}" if metric == "codes_per_note" else f"{100 * expected:.1f}")
                interval = (row.get("ci95") or {}).get(metric)
                if interval:
                    assert (float(lo), float(hi)) == tuple(interval)
                checked += 1
    p_values = page.eval_on_selector_all("table.comparisons td[data-metric='p_value']",
                                         "tds => tds.map(td => Number(td.dataset.value))")
    assert p_values == [c["p_value"] for p in ("paper", "corrected") for c in scores["profiles"][p]["comparisons"]]
    simulated = page.eval_on_selector_all(
        "table.table1 tbody:not(.reported) tr",
        "trs => trs.map(tr => [tr.dataset.system, !!tr.querySelector('.badge-simulated')])")
    flags = {(r["system"], bool(r.get("simulated"))) for p in ("paper", "corrected") for r in scores["profiles"][p]["rows"]}
    assert {(system, flag) for system, flag in simulated} == flags
    return checked


def test_table1_cells_equal_scores(default_page: Page, study: Study) -> None:
    scores = json.loads(study.scores.read_text())
    assert check_table1(default_page.page, scores) == 2 * 4 * len(TABLE1_METRICS)


def reported_cells(rows: Any) -> list[dict[str, str]]:
    """The metric cells of reported rows, as shown: {"system", metric: shown text} per row."""
    return rows.evaluate_all(
        "trs => trs.map(tr => Object.assign({system: tr.dataset.system}, Object.fromEntries("
        "Array.from(tr.querySelectorAll('td[data-metric]')).map(td => [td.dataset.metric, td.innerText]))))")


def shown(value: float | None) -> str:
    return "n.r." if value is None else f"{100 * value:.1f}"


def test_table2_beside_reported(default_page: Page, study: Study) -> None:
    scores = json.loads(study.scores.read_text())["table2"]
    ours = default_page.page.eval_on_selector_all("td[data-table='table2']",
                                                  "tds => tds.map(td => [td.dataset.metric, Number(td.dataset.value)])")
    assert dict(ours) == {k: v for k, v in scores["rows"][0].items() if k in dict(ours)} and len(ours) == 10
    # The paper's RAC sits beside the study's runs ...
    beside = default_page.page.locator("table.table2:not(.paper) tbody.reported tr")
    assert beside.count() == 1 and "reported" in beside.first.inner_text()
    assert "Kim & Ganapathi 2021, Table 2" in beside.first.inner_text()
    not_reported = beside.first.locator("td[data-metric='precision_micro'] span")
    assert not_reported.get_attribute("title") == "not reported in the paper"
    rac = reported.table2_rows()[-1]
    assert reported_cells(beside) == [{"system": "RAC", **{k: shown(rac[k]) for k, *_ in TABLE2_COLUMNS}}]
    # ... and all of the paper's Table 2 folds out below, closed until asked for.
    details = default_page.page.locator("details#table2-paper")
    assert not details.evaluate("d => d.open")
    assert not details.locator("table").is_visible()
    details.locator("summary").click()
    paper = details.locator("tbody.reported tr")
    assert paper.first.is_visible()
    assert reported_cells(paper) == [{"system": r["system"], **{k: shown(r[k]) for k, *_ in TABLE2_COLUMNS}}
                                     for r in scores["reported"]]
    assert [r["system"] for r in scores["reported"]] == [r["system"] for r in reported.table2_rows()]
    svm = details.locator("tr[data-system='SVM'] td[data-metric='auc_macro'] span")
    assert svm.inner_text() == "n.r." and svm.get_attribute("title") == "not reported in the paper"
    details.locator("summary").click()


def test_table1_reported_rows_beside_the_paper_profile(default_page: Page, study: Study) -> None:
    """The paper's Table 1 rows sit under the study's rows in the paper profile only, labelled as reported."""
    page = default_page.page
    rows = page.locator("table.table1[data-profile='paper'] tbody.reported tr")
    expected = []
    for r in json.loads(study.scores.read_text())["profiles"]["paper"]["reported"]:
        cells = {f"{block}_{k}": shown(r[block][k]) for block in ("micro", "macro")
                 for k in ("jaccard", "precision", "recall", "f1")}
        cells.update({k: "n.r." for k in ("per_document_jaccard", "exact_match", "codes_per_note",
                                           "reference_codes_per_note", "vocabulary_coverage")})
        expected.append({"system": r["system"], **cells})
    assert reported_cells(rows) == expected
    assert [e["micro_precision"] for e in expected] == ["47.7", "63.7"]
    assert all("reported, not reproduced" in text and "Table 1" in text for text in rows.all_inner_texts())
    assert page.locator("table.table1[data-profile='corrected'] tbody.reported").count() == 0
    assert "shown under the paper profile" in page.locator("#table1-corrected").inner_text()


def test_figures_are_drawn(default_page: Page) -> None:
    figures = default_page.page.eval_on_selector_all(
        "figure[data-figure] img",
        "imgs => imgs.map(i => [i.closest('figure').dataset.figure, i.naturalWidth, i.src.slice(0, 25), i.alt])")
    assert [f[0] for f in figures] == ["frequency", "codes_per_note", "chapter", "throughput"]
    assert all(width > 300 and src == "data:image/svg+xml;base64" and alt for _, width, src, alt in figures)


def text_outside_figure(browser: Any, data_uri: str) -> list[str]:
    """The texts of an SVG figure that Chromium, with its own fonts, draws partly outside the figure (cut)."""
    svg = base64.b64decode(data_uri.split(",", 1)[1]).decode("utf-8")
    page = browser.new_page()
    try:
        page.set_content(f"<!DOCTYPE html><html><body style='margin:0'>{svg}</body></html>")
        return page.evaluate(
            """() => { const svg = document.querySelector('svg'), box = svg.getBoundingClientRect();
                return Array.from(svg.querySelectorAll('text')).filter(t => {
                  const r = t.getBoundingClientRect();
                  return r.width > 0 && (r.left < box.left - 0.5 || r.right > box.right + 0.5
                                         || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5); })
                  .map(t => t.textContent); }""")
    finally:
        page.close()


def test_figure_labels_are_not_cut(browser: Any, default_page: Page) -> None:
    """Every text of every figure (axis labels, long coder names, values) lies inside the figure."""
    sources = default_page.page.eval_on_selector_all("figure[data-figure] img", "imgs => imgs.map(i => i.src)")
    assert len(sources) == 4
    assert [text_outside_figure(browser, src) for src in sources] == [[]] * 4
    # An address too long to wrap widens the figure instead of being cut.
    rows = [{"system": "Coder A (a.coder.with.a.very.long.address@records.hospital.example.org)", "kind": "coder",
             "codes_per_note": 4.1, "reference_codes_per_note": 15.8},
            {"system": "Human coders", "kind": "humans", "codes_per_note": 4.0, "reference_codes_per_note": 15.8}]
    chart = figures.codes_per_note(rows, None)
    assert chart is not None and text_outside_figure(browser, chart.data_uri) == []


def test_definitions_leave_no_hole(default_page: Page) -> None:
    """Under each Table 1, the differences and the definitions fill their block: no empty area beside one."""
    feet = default_page.page.eval_on_selector_all(
        ".profile-foot", "feet => feet.map(f => [f.getBoundingClientRect().width * f.getBoundingClientRect().height,"
        " Array.from(f.children).map(c => c.getBoundingClientRect().width * c.getBoundingClientRect().height)])")
    assert len(feet) == 2
    for area, children in feet:
        assert len(children) == 2 and sum(children) >= 0.9 * area, (area, children)


def test_drilldown_marks_agreed_missed_extra(default_page: Page, study: Study) -> None:
    page = default_page.page
    doc = json.loads(study.scores.read_text())["per_document"][0]
    details = page.locator(f"details.note[data-hadm='{doc['hadm_id']}']")
    details.evaluate("d => { d.open = true; }")
    page.wait_for_selector(f"details.note[data-hadm='{doc['hadm_id']}'] table.drill")
    header = details.locator("table.drill thead th").all_inner_texts()
    column = header.index(MODEL_SYSTEM)
    statuses = details.locator("table.drill tbody tr").evaluate_all(
        f"trs => trs.map(tr => [tr.dataset.code, tr.children[{column}].dataset.status || null])")
    reference, model = set(doc["reference"]), set(doc["models"][MODEL_SYSTEM])
    expected = {c: ("agreed" if c in reference and c in model else "missed" if c in reference else "extra")
                for c in reference | model}
    assert {code: status for code, status in statuses if status} == expected
    # The hostile title on this note's first reference code is shown as text, never executed.
    assert details.locator(f"tr[data-code='{doc['reference'][0]}'] td").nth(1).inner_text() == HOSTILE_TITLE
    assert page.evaluate("window.__pwned") is None
    assert NOTE_MARKER not in page.content()


def test_tables_sort_by_clicking(default_page: Page) -> None:
    page = default_page.page
    table = page.locator("table.table1[data-profile='corrected']")
    header = table.locator("th[data-col]", has_text="F1").first
    header.click()
    values = table.locator("tbody td[data-metric='micro_f1']").evaluate_all("tds => tds.map(t => Number(t.dataset.value))")
    assert values == sorted(values)
    header.click()
    values = table.locator("tbody td[data-metric='micro_f1']").evaluate_all("tds => tds.map(t => Number(t.dataset.value))")
    assert values == sorted(values, reverse=True)


def test_screenshot_of_the_default_report(default_page: Page, artifact_dir: Path) -> None:
    path = artifact_dir / "report.png"
    default_page.page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 50_000


def test_include_text_shows_banner_and_evidence(browser: Any, study: Study, artifact_dir: Path) -> None:
    page = Page(browser, render_report(study, include_text=True))
    try:
        banner = page.page.locator("#text-banner")
        assert banner.is_visible() and "CONTAINS MIMIC TEXT, DO NOT SHARE" in banner.inner_text()
        doc = json.loads(study.scores.read_text())["per_document"][0]
        details = page.page.locator(f"details.note[data-hadm='{doc['hadm_id']}']")
        details.locator("summary").click()
        assert NOTE_MARKER in details.locator("pre.note").inner_text()
        details.locator("button.ev").first.click()
        marks = details.locator("pre.note mark")
        assert 1 <= marks.count() <= 3
        assert banner.is_visible()  # sticky: still on screen after scrolling to the evidence
        page.page.screenshot(path=str(artifact_dir / "report-with-text.png"))
        page.assert_clean()
    finally:
        page.context.close()


def test_report_from_the_real_scorer(browser: Any, small_study: Study, tmp_path: Path, artifact_dir: Path) -> None:
    """`bench score` and `bench evaluate` (the scoring engineer's code) write scores.json; the page shows it."""
    import argparse

    import numpy as np
    import pandas as pd

    from benchmark.cli import score as score_cli
    from benchmark.predictions import Predictions, write_predictions
    from tests.fixtures_study import copy_study
    from tests.test_exports import choices_annotation, full_task

    study = copy_study(small_study, tmp_path / "study")
    refs = {int(h): sorted(g["code"]) for h, g in pd.read_parquet(study.references).groupby("hadm_id")}
    sample = [int(x) for x in study.sample.read_text().split()]
    rng = np.random.default_rng(1)
    tasks = []
    for i, h in enumerate(sample):
        annotations = [choices_annotation(10 * i + 1, 1, [c for c in refs[h] if rng.random() < 0.7])]
        if i % 4 == 0:  # an overlap subset, for agreement
            annotations.append(choices_annotation(10 * i + 2, 2, [c for c in refs[h] if rng.random() < 0.6]))
        tasks.append(full_task(100 + i, h, annotations))
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    codes = pd.read_parquet(study.codes, columns=["code"])["code"].tolist()
    column = {c: i for i, c in enumerate(codes)}
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "split", "text"])
    test = docs[docs["split"] == "test"]
    probs = rng.random((len(test), len(codes))).astype(np.float32) * 0.55
    for r, h in enumerate(test["hadm_id"]):
        for c in refs[int(h)]:
            probs[r, column[c]] = rng.uniform(0.3, 1.0)
    preds = Predictions("small-test", test["hadm_id"].to_numpy(), codes, probs, run="small", split="test")
    evidence = [{"hadm_id": int(h), "codes": {c: [{"start": 0, "end": min(40, len(t)), "score": 0.9}]
                                               for c in preds.code_sets()[int(h)]}}
                for h, t in zip(test["hadm_id"], test["text"])]
    write_predictions(study.predictions_dir / "small-test", preds, evidence)

    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--study")
    score_cli.register(parser.add_subparsers(dest="command"))
    for argv in (["evaluate"], ["score", "--coders", str(export), "--bootstrap", "20"]):
        args = parser.parse_args(["--study", str(study.root), *argv])
        assert args.func(args) == 0
    scores = json.loads(study.scores.read_text())

    page = Page(browser, render_report(study))
    try:
        assert check_table1(page.page, scores) == 2 * len(scores["profiles"]["paper"]["rows"]) * len(TABLE1_METRICS)
        shown_t2 = page.page.eval_on_selector_all("td[data-table='table2']",
                                                  "tds => tds.map(td => [td.dataset.metric, td.dataset.value])")
        row = scores["table2"]["rows"][0]
        assert all((value == "" and row[m] is None) or float(value) == row[m] for m, value in shown_t2)
        assert page.page.locator("figure[data-figure] img").count() == 4
        first = page.page.locator("details.note").first
        first.evaluate("d => { d.open = true; }")
        page.page.wait_for_selector("details.note[data-built] table.drill")
        page.page.screenshot(path=str(artifact_dir / "report-real-scorer.png"), full_page=True)
        page.assert_clean()
    finally:
        page.context.close()
