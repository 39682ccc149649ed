"""Label Studio figures: the 508-task setup time and the coder page's time to ready, per picker.

    .venv/bin/python perf/labelstudio.py [--data-dir DIR] [--repeats 3]

Starts a local server in a temporary data directory (or reuses the one in --data-dir), writes a 508-note
study to the data contract, and measures:

- setup: coder accounts (2) + projects + 508 task imports, i.e. what `bench setup-labelstudio` does;
- page ready in headless Chromium, signed in as a coder: navigation until the picker is usable, for the
  taxonomy and the choices picker over the full shortlist. The same run's reference figure is the same
  page with a 3-code config (the floor: Label Studio's own app load on this machine right now).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from annotation import server  # noqa: E402
from annotation.accounts import ensure_coders, set_passwords  # noqa: E402
from annotation.client import connect  # noqa: E402
from annotation.config import labeling_config  # noqa: E402
from annotation.projects import read_shortlist, setup_projects, task_data  # noqa: E402
from benchmark.sampling import read_sample  # noqa: E402
from benchmark.study import Study  # noqa: E402
from tests.fixtures_browser import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.fixtures_labelstudio import write_minimal_study  # noqa: E402
from tests.test_labelstudio_browser import SEARCH_PLACEHOLDER  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse this server data dir (kept running)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="perf-ls-"))
    data_dir = args.data_dir or work / "server"
    started = time.perf_counter()
    creds = server.start(data_dir)
    print(f"server start: {time.perf_counter() - started:.1f} s ({creds.url})")
    try:
        study = Study(write_minimal_study(work / "study"))
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
        measure_pages(conn, study, emails[0], args.repeats)
    finally:
        if args.data_dir is None:
            server.stop(data_dir)


def measure_pages(conn, study: Study, email: str, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    password = "Perf-Secret-123"
    set_passwords(conn.local_dir, {email: password})
    shortlist = read_shortlist(study)
    catalogue = pd.read_parquet(study.codes)
    note = task_data(study, read_sample(study)[:1])[0]
    urls = {}
    for name, codes, ui in (("floor (3 codes)", shortlist[:3], "choices"), ("taxonomy", shortlist, "taxonomy"),
                            ("choices", shortlist, "choices")):
        project = conn.client.projects.create(title=f"perf {name}", label_config=labeling_config(codes, catalogue, ui))
        task_id = conn.client.projects.import_tasks(project.id, request=[{"data": note}], return_task_ids=True).task_ids[0]
        urls[name] = (f"{conn.url}/projects/{project.id}/data?tab=0&task={task_id}", ui, codes[-1])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{conn.url}/user/login/")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(lambda u: "/user/login" not in u)
        times: dict[str, list[float]] = {name: [] for name in urls}
        nodes: dict[str, int] = {}
        for _ in range(repeats):
            for name, (url, ui, last) in urls.items():
                t = time.perf_counter()
                page.goto(url)
                if ui == "taxonomy":
                    page.locator(".htx-taxonomy").first.wait_for(state="visible", timeout=180_000)
                else:
                    page.locator(f'input[placeholder="{SEARCH_PLACEHOLDER}"]').wait_for(timeout=180_000)
                    page.get_by_text(last, exact=False).first.wait_for(state="attached", timeout=180_000)
                times[name].append(time.perf_counter() - t)
                nodes[name] = page.evaluate("document.getElementsByTagName('*').length")
        browser.close()
    floor = statistics.median(times["floor (3 codes)"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"page ready, {name:<16}: median {med:5.2f} s (runs {', '.join(f'{v:.2f}' for v in values)}), "
              f"{nodes[name]:>6} DOM nodes, {med - floor:+.2f} s over the floor")


if __name__ == "__main__":
    main()
