"""The coder's page in headless Chromium: sign in as a coder, open a task, find codes by number and by word.

The default picker is checked the way a study gets it: ``setup_projects`` with the default UI on the
study's local server (the taxonomy loading its tree from the served items file). The coder searches by a
title word and by the code number, picks the code, submits, and ``bench pull``'s export carries the bare
code with the coder's identity. The flat choices list and the inline-tree taxonomy (what a server named by
``--url`` gets) are checked for search too. Page-ready time (navigation to picker usable, each from
about:blank) is written to ``test-artifacts/labelstudio-page-ready.json`` with the same run's floor: the
same page with a 3-code config. The perf figures in perf/RESULTS.md come from ``perf/labelstudio.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from annotation.accounts import ensure_coders, set_passwords
from annotation.client import connect
from annotation.config import DEFAULT_UI, labeling_config
from annotation.projects import setup_projects, task_data
from benchmark.labelstudio_files import load_state
from annotation.pull import pull
from benchmark.sampling import read_sample, read_shortlist
from tests.fixtures_labelstudio import attached_copy

pytestmark = [pytest.mark.labelstudio, pytest.mark.browser]

CODER, PASSWORD = "browser@example.org", "Browser-Secret-789"
SEARCH_PLACEHOLDER = "Search codes: number or words"


@pytest.fixture(scope="module")
def coder_pages(annotation_study: Path, labelstudio_server, tmp_path_factory):
    """The coder's real project (default setup), plus one-note projects: floor, choices, inline taxonomy."""
    root = tmp_path_factory.mktemp("ls-browser") / "study"
    study = attached_copy(annotation_study, root, labelstudio_server)
    conn = connect(study.labelstudio_dir)
    coders, _ = ensure_coders(conn, study.labelstudio_dir, [CODER], simulated=False)
    set_passwords(conn.local_dir, {CODER: PASSWORD})
    setup_projects(study, conn, coders, progress=False)  # the default UI, as `bench setup-labelstudio` does
    (entry,) = load_state(study.labelstudio_dir)["projects"]
    assert entry["ui"] == DEFAULT_UI == "taxonomy"
    pages = {"default": f"{conn.url}/projects/{entry['id']}/data?tab=0&task={entry['task_ids'][0]}"}
    shortlist = read_shortlist(study)
    catalogue = pd.read_parquet(study.codes)
    note = task_data(study, read_sample(study)[:1])[0]
    for name, codes, ui in (("floor", shortlist[:3], "choices"), ("inline taxonomy", shortlist, "taxonomy"),
                            ("choices", shortlist, "choices")):
        project = conn.client.projects.create(title=f"browser {name}", label_config=labeling_config(codes, catalogue, ui))
        task_ids = conn.client.projects.import_tasks(project.id, request=[{"data": note}], return_task_ids=True).task_ids
        pages[name] = f"{conn.url}/projects/{project.id}/data?tab=0&task={task_ids[0]}"
    return study, conn, coders[0], entry, pages, catalogue.set_index("code"), shortlist


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
    """Seconds from navigation (from about:blank) until the picker can be used."""
    page.goto("about:blank")
    started = time.perf_counter()
    page.goto(url)
    if ui == "taxonomy":  # rendered only once its items are there (a spinner stands in while they load)
        page.locator(".htx-taxonomy").first.wait_for(state="visible", timeout=120_000)
    else:
        page.locator(f'input[placeholder="{SEARCH_PLACEHOLDER}"]').wait_for(state="visible", timeout=120_000)
        page.get_by_text(last_code, exact=False).first.wait_for(state="attached", timeout=120_000)
    return time.perf_counter() - started


def _title_word(title: str) -> str:
    return max((w.strip(",()") for w in title.split()), key=len)


def _search_taxonomy(page, code: str, word: str):
    """Open the taxonomy dropdown, search by ``word`` then by ``code``; return the code's tree node."""
    page.locator(".htx-taxonomy").first.click()
    search = page.get_by_test_id("taxonomy-search")
    node = page.locator(".ant-select-tree-treenode", has_text=f"{code} ").first
    for query in (word, code):  # the screenshot shows the last search
        search.fill("")  # a cleared search collapses the tree: the code is hidden until the query finds it
        node.wait_for(state="hidden", timeout=30_000)
        search.fill(query)
        node.wait_for(state="visible", timeout=30_000)
    return node


def test_coder_searches_picks_and_submits_a_code(browser, coder_pages, artifact_dir) -> None:
    study, conn, coder, entry, pages, catalogue, shortlist = coder_pages
    code = next(c for c in shortlist[len(shortlist) // 2:] if 12 < len(str(catalogue.at[c, "long_title"])) < 60)
    title = str(catalogue.at[code, "long_title"])
    word = _title_word(title)
    context, page = _sign_in(browser, conn.url)
    try:
        _open(page, pages["floor"], "choices", shortlist[2])  # the first visit fills the script cache
        ready = {"floor": _open(page, pages["floor"], "choices", shortlist[2]),
                 "default (taxonomy, items file)": _open(page, pages["default"], "taxonomy", shortlist[-1])}
        node = _search_taxonomy(page, code, word)
        page.screenshot(path=str(artifact_dir / "labelstudio-taxonomy-search.png"))
        node.locator(".ant-select-tree-checkbox").first.click()
        page.keyboard.press("Escape")
        page.locator(".ant-select-selection-item", has_text=f"{code} ").first.wait_for(state="visible", timeout=30_000)
        with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as posted:
            page.get_by_role("button", name="Submit").first.click()
        assert posted.value.ok

        ready["inline taxonomy"] = _open(page, pages["inline taxonomy"], "taxonomy", shortlist[-1])
        _search_taxonomy(page, code, word)
        page.keyboard.press("Escape")

        ready["choices"] = _open(page, pages["choices"], "choices", shortlist[-1])
        search = page.locator(f'input[placeholder="{SEARCH_PLACEHOLDER}"]')
        choice = page.get_by_text(f"{code} {title[:20]}", exact=False).first
        for query in (word, code):
            search.fill("no such code")  # hides every choice, so the query below must bring the code back
            choice.wait_for(state="hidden", timeout=30_000)
            search.fill(query)
            choice.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(artifact_dir / "labelstudio-choices-search.png"))
    finally:
        context.close()
    (artifact_dir / "labelstudio-page-ready.json").write_text(json.dumps(
        {"seconds": {k: round(v, 2) for k, v in ready.items()}, "shortlist": len(shortlist),
         "floor": "same page with a 3-code config (the machine's reference in this run)"}, indent=1) + "\n")
    print(f"\npage ready (s): {ready}")
    assert (artifact_dir / "labelstudio-taxonomy-search.png").stat().st_size > 10_000

    merged = json.loads(pull(study, conn).outputs["unassisted"].read_text())
    (task,) = [t for t in merged if t["annotations"]]
    assert task["id"] == entry["task_ids"][0] and task["coding_bench"]["coder"] == CODER
    (annotation,) = task["annotations"]
    assert annotation["completed_by"] == coder.id
    (result,) = [r for r in annotation["result"] if r["from_name"] == "codes"]
    assert result["type"] == "taxonomy"
    assert [path[-1] for path in result["value"]["taxonomy"]] == [code]  # the bare dotted code, as the leaf
    assert result["value"]["taxonomy"][0][:2] == [catalogue.at[code, "chapter"], catalogue.at[code, "category"]]
