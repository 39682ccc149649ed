"""`bench report` without a browser: no note text by default, partial studies, escaping, CLI wiring.

The browser test (tests/test_report_browser.py) checks the rendered page itself: values, figures, network.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pytest

from benchmark import reported
from benchmark.cli import report as report_cli
from benchmark.errors import UserError
from benchmark.study import Study
from reports.render import default_output, render_html, render_report
from tests.report_study import HOSTILE_TITLE, NOTE_MARKER, Size, build_study


@pytest.fixture(scope="module")
def full_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return build_study(tmp_path_factory.mktemp("report") / "study", Size(n_test=24, n_sample=10))


@pytest.fixture(scope="module")
def default_report(full_study: Study) -> Path:
    return render_report(full_study)


@pytest.fixture(scope="module")
def text_report(full_study: Study) -> Path:
    return render_report(full_study, include_text=True)


def _drill_data(html: str) -> dict:
    return json.loads(html.split('<script type="application/json" id="drill-data">', 1)[1].split("</script>", 1)[0])


def _note_texts(study: Study) -> list[str]:
    import pandas as pd

    return pd.read_parquet(study.documents, columns=["text"])["text"].tolist()


def test_default_report_contains_no_note_text(full_study: Study, default_report: Path) -> None:
    path = default_report
    assert path == full_study.report_dir / "index.html"
    html = path.read_text(encoding="utf-8")
    assert NOTE_MARKER not in html
    # No line of any note either (beyond the short boilerplate lines every note shares, like section headers).
    for text in _note_texts(full_study):
        for line in text.splitlines():
            if len(line) > 30:
                assert line not in html
    assert "This report contains no note text" in html
    assert 'id="text-banner"' not in html
    assert oct(stat.S_IMODE(os.stat(path).st_mode)) == "0o644"


def test_include_text_adds_notes_evidence_and_banner(full_study: Study, text_report: Path) -> None:
    path = text_report
    assert path == default_output(full_study, include_text=True) != default_output(full_study, include_text=False)
    html = path.read_text(encoding="utf-8")
    assert NOTE_MARKER in html
    assert "CONTAINS MIMIC TEXT, DO NOT SHARE" in html
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # MIMIC text: owner only
    data = _drill_data(html)
    scores = json.loads(full_study.scores.read_text())
    first = scores["per_document"][0]
    assert NOTE_MARKER in data["texts"][str(first["hadm_id"])]
    evidence = data["evidence"]["RAC (small)"][str(first["hadm_id"])]
    assert set(evidence) == set(first["models"]["RAC (small)"])
    assert all(len(w) == 3 and w[0] < w[1] for windows in evidence.values() for w in windows)


def test_titles_and_names_are_escaped(default_report: Path) -> None:
    html = default_report.read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in html
    assert "example.invalid" in html  # present, but only inside escaped JSON, never as a live URL
    assert '<img src="https://' not in html
    assert HOSTILE_TITLE in _drill_data(html)["titles"].values()


def test_rerun_is_identical_and_numbers_come_from_scores(full_study: Study, default_report: Path) -> None:
    """A re-run writes the same bytes; each Table 1 value appears as the exact float from scores.json."""
    html = render_html(full_study)
    assert html == default_report.read_text(encoding="utf-8")
    scores = json.loads(full_study.scores.read_text())
    for profile in ("paper", "corrected"):
        for row in scores["profiles"][profile]["rows"]:
            value = row["micro"]["f1"]
            assert (f'data-profile="{profile}" data-system="{row["system"]}" data-metric="micro_f1" '
                    f'data-value="{value!r}"') in html
    assert "reported" in html and "0.948" in html


def test_provenance_is_read_from_what_the_steps_record(full_study: Study, default_report: Path) -> None:
    """The sample's seed and shortlist rule come from `bench sample`'s figures, not from a guess at key names."""
    html = default_report.read_text(encoding="utf-8")
    figures = full_study.step("sample")["figures"]
    assert f"seed {figures['seed']}" in html and f"rule: {figures['rule']}" in html
    assert "synthetic" in html


def test_paper_tables_beside_the_study(default_report: Path) -> None:
    """Table 1's reported rows under the paper profile only; Table 2's RAC beside the runs, all 14 folded out."""
    html = default_report.read_text(encoding="utf-8")
    paper = html.split('id="table1-paper"', 1)[1].split('id="table1-corrected"', 1)[0]
    corrected = html.split('id="table1-corrected"', 1)[1].split('id="table2"', 1)[0]
    for row in reported.table1_rows():
        assert f'<tr data-system="{row["system"]}" data-reported="true">' in paper
        assert f'data-metric="micro_precision" data-value="{row["micro"]["precision"]!r}"' in paper
    assert 'data-reported="true"' not in corrected
    table2 = html.split('<section id="table2">', 1)[1].split('<section id="figures">', 1)[0]
    main, folded = table2.split('<details class="paper-table2"', 1)
    assert main.count('data-reported="true"') == 1 and '<tr data-system="RAC" data-reported="true">' in main
    assert [line.split('"')[1] for line in folded.split("<tr data-system=")[1:]] == \
        [row["system"] for row in reported.table2_rows()]
    assert "CAML&#39;s harmonic form" in table2 and "copied from Kim &amp; Ganapathi (2021), Table 2" in table2


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ({"scores": False}, ["bench score --coders EXPORT.json &amp;&amp; bench evaluate"]),
        ({"coders": False}, ["bench setup-labelstudio", "Coder export (the human arm)"]),
        ({"model": False}, ["bench train --name NAME", "Model predictions (the machine arm)"]),
        ({"table2": False}, ["bench evaluate", "Table 2 (the model on the full test split)"]),
        ({"sample": False, "scores": False, "model": False}, ["bench sample", "bench train --name NAME"]),
    ],
    ids=["no-scores", "no-coders", "no-model", "no-table2", "no-sample"],
)
def test_partial_studies_render_and_say_what_is_missing(tmp_path: Path, pieces: dict[str, bool],
                                                        expected: list[str]) -> None:
    study = build_study(tmp_path / "study", Size(n_test=8, n_sample=4, n_dx=40, n_px=10, words=30), **pieces)
    path = render_report(study)
    html = path.read_text(encoding="utf-8")
    assert 'id="missing"' in html
    for text in expected:
        assert text in html
    assert "Traceback" not in html
    assert NOTE_MARKER not in html


def test_empty_study_renders(tmp_path: Path) -> None:
    """A directory with nothing in it yet still gives a page listing every step to run."""
    study = Study(tmp_path)
    html = render_report(study).read_text(encoding="utf-8")
    for command in ("bench prepare", "bench sample", "bench setup-labelstudio", "bench train --name NAME",
                    "bench score --coders EXPORT.json"):
        assert command in html


def test_bad_scores_are_one_line_user_errors(tmp_path: Path) -> None:
    study = Study(tmp_path)
    study.scores.write_text('{"schema": 1, "table1": ')
    with pytest.raises(UserError, match=r"scores.json is not valid JSON .*re-run `bench score`"):
        render_report(study)
    study.scores.write_text('{"schema": 99}')
    with pytest.raises(UserError, match=r"schema 99, this report reads schema 1"):
        render_report(study)
    with pytest.raises(UserError, match="is not a study directory"):
        render_report(Study(tmp_path / "absent"))


def test_cli_prints_the_path(full_study: Study, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--study")
    report_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "shared" / "report.html"
    args = parser.parse_args(["--study", str(full_study.root), "report", "--out", str(out)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert NOTE_MARKER not in out.read_text(encoding="utf-8")
    args = parser.parse_args(["--study", str(full_study.root), "report", "--include-text"])
    assert args.include_text and args.out is None


def test_bench_report_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.cli import main

    (tmp_path / "scores.json").write_text("[1, 2")
    assert main(["--study", str(tmp_path), "report"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench report: error: ") and "Traceback" not in err


def test_minimal_scores_render(tmp_path: Path) -> None:
    """The smallest scores.json the scoring issue promises (no CIs, breakdowns, profiles or drill-down)."""
    study = Study(tmp_path)
    block = {"jaccard": 0.4, "precision": 0.6, "recall": 0.5, "f1": 0.55}
    study.scores.write_text(json.dumps({"schema": 1, "table1": {
        "conventions": {"label_set": "shortlist", "label_set_size": 10, "undefined": "zero", "macro_f1": "mean"},
        "rows": [{"system": "Human coders", "kind": "humans", "n_documents": 3, "micro": block, "macro": block}]},
        "table2": {"rows": [{"system": "RAC (x)", "auc_macro": 0.9, "auc_micro": 0.95, "f1_macro": 0.1,
                             "f1_micro": 0.5, "p_at_5": 0.7, "p_at_8": 0.6, "p_at_15": 0.5}]}}))
    html = render_report(study).read_text(encoding="utf-8")
    assert 'data-metric="micro_f1" data-value="0.55"' in html and 'data-metric="auc_macro" data-value="0.9"' in html
    assert "Model predictions (the machine arm)" in html
