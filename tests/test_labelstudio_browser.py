"""The coder's page in headless Chromium: sign in as a coder, open a task, find codes by number and by word.

Both pickers are checked on the full shortlist config. Page-ready time (navigation to picker usable) is
written to ``test-artifacts/labelstudio-page-ready.json`` with the same run's floor: the same page with a
3-code config. The perf figures in perf/RESULTS.md come from ``perf/labelstudio_ui.py``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from annotation.accounts import ensure_coders, set_passwords
from annotation.client import connect
from annotation.config import labeling_config
from annotation.projects import read_shortlist, task_data
from benchmark.sampling import read_sample
from benchmark.study import Study
from tests.fixtures_labelstudio import attach_study

pytestmark = [pytest.mark.labelstudio, pytest.mark.browser]

CODER, PASSWORD = "browser@example.org", "Browser-Secret-789"
SEARCH_PLACEHOLDER = "Search codes: number or words"


@pytest.fixture(scope="module")
def coder_pages(annotation_study: Path, labelstudio_server, tmp_path_factory):
    """One project per picker (plus a 3-code floor), one real note each, and a coder who can sign in."""
    root = tmp_path_factory.mktemp("ls-browser") / "study"
    shutil.copytree(annotation_study, root)
    attach_study(root, labelstudio_server)
    study = Study(root)
    conn = connect(study.labelstudio_dir)
    ensure_coders(conn, study.labelstudio_dir, [CODER], simulated=False)
    set_passwords(conn.local_dir, {CODER: PASSWORD})
    shortlist = read_shortlist(study)
    catalogue = pd.read_parquet(study.codes)
    note = task_data(study, read_sample(study)[:1])[0]
    pages = {}
    for name, codes, ui in (("floor", shortlist[:3], "choices"), ("taxonomy", shortlist, "taxonomy"),
                            ("choices", shortlist, "choices")):
        project = conn.client.projects.create(title=f"browser {name}", label_config=labeling_config(codes, catalogue, ui))
        task_ids = conn.client.projects.import_tasks(project.id, request=[{"data": note}], return_task_ids=True).task_ids
        pages[name] = f"{conn.url}/projects/{project.id}/data?tab=0&task={task_ids[0]}"
    return conn.url, pages, catalogue.set_index("code"), shortlist


def _sign_in(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", CODER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u, timeout=60_000)
    return context, page


def _open(page, url: str, ui: str, last_code: str) -> float:
    """Seconds from navigation until the picker can be used."""
    started = time.perf_counter()
    page.goto(url)
    if ui == "taxonomy":
        page.locator(".htx-taxonomy").first.wait_for(state="visible", timeout=120_000)
    else:
        page.locator(f'input[placeholder="{SEARCH_PLACEHOLDER}"]').wait_for(state="visible", timeout=120_000)
        page.get_by_text(last_code, exact=False).first.wait_for(state="attached", timeout=120_000)
    return time.perf_counter() - started


def _title_word(title: str) -> str:
    return max((w.strip(",()") for w in title.split()), key=len)


def test_coder_finds_codes_by_number_and_word_in_both_pickers(browser, coder_pages, artifact_dir) -> None:
    url, pages, catalogue, shortlist = coder_pages
    context, page = _sign_in(browser, url)
    try:
        ready = {"floor": _open(page, pages["floor"], "choices", shortlist[2])}
        code = next(c for c in shortlist[len(shortlist) // 2:] if 12 < len(str(catalogue.at[c, "long_title"])) < 60)
        title = str(catalogue.at[code, "long_title"])
        word = _title_word(title)

        ready["taxonomy"] = _open(page, pages["taxonomy"], "taxonomy", shortlist[-1])
        picker = page.locator(".htx-taxonomy").first
        picker.click()
        search = page.get_by_test_id("taxonomy-search")
        for query in (word, code):  # the screenshot shows the last search
            search.fill(query)
            page.locator(".ant-select-tree-treenode", has_text=f"{code} ").first.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(artifact_dir / "labelstudio-taxonomy-search.png"))
        page.keyboard.press("Escape")

        ready["choices"] = _open(page, pages["choices"], "choices", shortlist[-1])
        search = page.locator(f'input[placeholder="{SEARCH_PLACEHOLDER}"]')
        for query in (word, code):
            search.fill(query)
            page.get_by_text(f"{code} {title[:20]}", exact=False).first.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(artifact_dir / "labelstudio-choices-search.png"))
    finally:
        context.close()
    (artifact_dir / "labelstudio-page-ready.json").write_text(json.dumps(
        {"seconds": {k: round(v, 2) for k, v in ready.items()}, "shortlist": len(shortlist),
         "floor": "same page with a 3-code config (the machine's reference in this run)"}, indent=1) + "\n")
    print(f"\npage ready (s): {ready}")
    assert (artifact_dir / "labelstudio-taxonomy-search.png").stat().st_size > 10_000
