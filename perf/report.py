"""How long `bench report` takes on a full-size study, and how long Chromium takes to open the page.

Full size is the paper's: 3,372 test notes, 508 sampled notes with a per-note drill-down, 8,930 codes in
the catalogue and the prediction set. The study is synthetic (tests/report_study.py), built in a temporary
directory unless --study points at an existing one.

Printed figures, each next to a same-run reference on this machine:
  * render: `bench report` end to end in a fresh process (interpreter, imports, figures, template, write),
    and in-process after imports; reference: json-loading scores.json and writing the same number of bytes
    as the report (the floor for any renderer), and the bare interpreter start with the same imports.
  * open: Chromium's navigation to the report over file:// until the load event (median of 5); reference:
    the same navigation to a plain page of the same byte size (one <pre>), and to an empty page.

Goals (issue 6): render <= 10 s, open <= 2 s.

    .venv/bin/python perf/report.py [--study DIR] [--include-text]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.io import atomic_write_bytes  # noqa: E402
from benchmark.study import Study  # noqa: E402


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def render_in_fresh_process(study: Study, include_text: bool, out: Path) -> tuple[float, float]:
    """`bench report` in a new interpreter, so imports and start-up count as the user sees them.

    Returns (wall seconds, CPU seconds of the child): on a shared machine the CPU time is the steadier figure.
    """
    code = ("import sys; from pathlib import Path; from benchmark.study import Study; "
            "from reports.render import render_report; "
            f"print(render_report(Study(Path({str(study.root)!r})), out=Path({str(out)!r}), include_text={include_text}))")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def interpreter_with_imports() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import jinja2, matplotlib.figure, pyarrow.parquet, benchmark.study"],
                   check=True, cwd=ROOT)
    return time.perf_counter() - start


def open_times(paths: list[Path], repeat: int = 5) -> list[float]:
    """Median navigation time (file://, until the load event) per path, in one headless Chromium."""
    from playwright.sync_api import sync_playwright

    from tests.fixtures_browser import CHROMIUM_ARGS, chromium_path

    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            for path in paths:
                samples = []
                for _ in range(repeat):
                    page = browser.new_page(viewport={"width": 1366, "height": 800})
                    start = time.perf_counter()
                    page.goto(path.resolve().as_uri(), wait_until="load")
                    samples.append(time.perf_counter() - start)
                    page.close()
                results.append(statistics.median(samples))
        finally:
            browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=None, help="an existing study (default: build a full-size one)")
    parser.add_argument("--include-text", action="store_true", help="also measure the private copy with note text")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="perf-report-") as tmp:
        tmp_path = Path(tmp)
        if args.study is None:
            from tests.report_study import Size, build_study

            size = Size.full()
            build_s, study = timed(lambda: build_study(tmp_path / "study", size))
            print(f"built a synthetic study: {size.n_test:,} test notes, {size.n_sample} sampled, "
                  f"{size.n_dx + size.n_px:,} codes ({build_s:.1f} s, not counted)")
        else:
            study = Study(args.study.resolve())
        from reports.render import render_report

        variants = [False, True] if args.include_text else [False]
        for include_text in variants:
            label = "with --include-text" if include_text else "default (no note text)"
            out = tmp_path / ("report-text.html" if include_text else "report.html")
            fresh, fresh_cpu = render_in_fresh_process(study, include_text, out)
            render_report(study, out=out, include_text=include_text)  # warm imports and caches
            in_process, _ = timed(lambda: render_report(study, out=out, include_text=include_text), repeat=3)
            size_bytes = out.stat().st_size

            def reference() -> None:
                json.loads(study.scores.read_bytes())
                atomic_write_bytes(tmp_path / "same-size.bin", os.urandom(size_bytes))

            ref_s, _ = timed(reference, repeat=3)
            plain = tmp_path / "plain.html"
            plain.write_text("<!DOCTYPE html><title>x</title><pre>" + "x" * size_bytes + "</pre>", encoding="utf-8")
            empty = tmp_path / "empty.html"
            empty.write_text("<!DOCTYPE html><title>x</title>", encoding="utf-8")
            open_report, open_plain, open_empty = open_times([out, plain, empty])
            print(f"\n[{label}] load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
                  f"report {size_bytes / 1e6:.2f} MB, scores.json {study.scores.stat().st_size / 1e6:.2f} MB")
            print(f"  render, fresh process (what `bench report` costs): {fresh:6.2f} s   (goal <= 10 s; "
                  f"CPU {fresh_cpu:.2f} s)")
            print(f"  render, in process after imports:                  {in_process:6.2f} s")
            print(f"  reference: interpreter + the same imports:          {interpreter_with_imports():6.2f} s")
            print(f"  reference: json-load scores.json + write {size_bytes / 1e6:.2f} MB:  {ref_s:6.3f} s")
            print(f"  open in Chromium (file://, load event, median of 5): {open_report:6.3f} s   (goal <= 2 s)")
            print(f"  reference: a plain page of the same size:           {open_plain:6.3f} s")
            print(f"  reference: an empty page:                            {open_empty:6.3f} s")


if __name__ == "__main__":
    main()
