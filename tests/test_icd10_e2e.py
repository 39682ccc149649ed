"""The ICD-10 acceptance test: the ICD-9 demo's whole path on the synthetic MIMIC-IV corpus.

Synthetic MIMIC-IV corpus -> prepare (Edin et al.'s split file) -> sample -> setup-labelstudio on the session's
real Label Studio -> simulated coders coding through its API as their own accounts -> pull -> a tiny RAC under
2-process gloo DDP (`bench train --nproc 2`, torchrun) and TF-IDF + LR -> predict -> score -> evaluate ->
report, opened in headless Chromium. Every step goes through `benchmark.cli.main`, as a user's commands do.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from annotation.pull import DEFAULT_NAME
from benchmark.cli import main as bench
from benchmark.labelstudio_files import read_coders
from benchmark.sampling import read_sample
from benchmark.study import Study
from benchmark.study_files import read_catalogue, read_reference_codes
from benchmark.synthetic_mimic4 import SPLIT_FILE
from tests.fixtures_labelstudio import LabelStudioServer, attach_study

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio, pytest.mark.ddp, pytest.mark.browser]

N_SAMPLE = 24
CODERS = ("cm.coder@icd10.invalid", "pcs.coder@icd10.invalid")
RAC_RUN, LR_RUN = "icd10-tiny", "icd10-lr"
MODELS = {"RAC (icd10-tiny)", "TF-IDF + LR (icd10-lr)"}
CM_DOTTED = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")  # I50.9, S62.639K
PCS = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")  # 0DTJ4ZZ: seven characters, no I or O


@dataclass(frozen=True)
class Run:
    study: Study
    console: str  # everything the in-process steps printed (torchrun's workers print to the real stdout)


@pytest.fixture(scope="module")
def icd10_run(mimic4_corpus: Path, labelstudio_server: LabelStudioServer,
              tmp_path_factory: pytest.TempPathFactory) -> Run:
    study = Study(tmp_path_factory.mktemp("icd10-e2e") / "study")
    attach_study(study.root, labelstudio_server)  # setup-labelstudio uses the session's server, not a second one
    merged = study.exports_dir / DEFAULT_NAME
    steps = [
        ["prepare", "--mimic", str(mimic4_corpus), "--splits", str(mimic4_corpus / SPLIT_FILE)],
        ["sample", "--n", str(N_SAMPLE)],
        ["setup-labelstudio", "--coders", ",".join(CODERS), "--design", "overlap:4", "--simulated"],
        ["simulate-coders", "--seed", "0"],
        ["pull"],
        ["train", "--name", RAC_RUN, "--preset", "tiny", "--set", "epochs=1", "--nproc", "2"],
        ["predict", "--run", RAC_RUN, "--split", "sample"],
        ["predict", "--run", RAC_RUN, "--split", "test"],
        ["train", "--model", "tfidf-lr", "--name", LR_RUN],
        ["predict", "--run", LR_RUN, "--split", "sample"],
        ["predict", "--run", LR_RUN, "--split", "test"],
        ["score", "--coders", str(merged)],
        ["evaluate"],
        ["report"],
    ]
    console = io.StringIO()
    for argv in steps:
        with contextlib.redirect_stdout(console):
            code = bench(["--study", str(study.root), *argv])
        assert code == 0, f"bench {' '.join(argv)} exited {code}:\n{console.getvalue()[-3000:]}"
    return Run(study, console.getvalue())


@pytest.fixture(scope="module")
def scores(icd10_run: Run) -> dict[str, Any]:
    return json.loads(icd10_run.study.scores.read_text(encoding="utf-8"))


def test_the_study_is_mimic4_icd10(icd10_run: Run, scores: dict[str, Any]) -> None:
    prepare = icd10_run.study.step("prepare")
    assert prepare["dataset"] == "MIMIC-IV" and prepare["code_system"] == {
        "icd_version": 10, "dx": "ICD-10-CM", "px": "ICD-10-PCS"}
    assert (scores["data_source"], scores["dataset"], scores["code_system"]) == ("synthetic", "MIMIC-IV", "ICD-10-CM/PCS")
    for profile in ("paper", "corrected"):
        assert scores["profiles"][profile]["conventions"]["validation"]["code_system"] == "ICD-10-CM/PCS"
    # Nothing the steps printed calls this study's codes ICD-9.
    assert "ICD-10-CM/PCS" in icd10_run.console and "ICD-9" not in icd10_run.console


def test_references_are_dotted_icd10_cm_and_seven_character_pcs(icd10_run: Run, scores: dict[str, Any]) -> None:
    kinds = dict(read_catalogue(icd10_run.study, ["code", "system"]).itertuples(index=False))
    references = set(read_reference_codes(icd10_run.study)["code"])
    dx = {c for c in references if kinds.get(c) == "dx"}
    px = {c for c in references if kinds.get(c) == "px"}
    assert dx and px and dx | px == references  # both kinds, each code of the label space
    assert all(CM_DOTTED.match(c) for c in dx), sorted(c for c in dx if not CM_DOTTED.match(c))
    assert all(PCS.match(c) for c in px), sorted(c for c in px if not PCS.match(c))
    assert any("." in c for c in dx)
    sampled = {c for doc in scores["per_document"] for c in doc["reference"]}
    assert sampled & dx and sampled & px


def test_each_coder_annotated_as_their_own_account(icd10_run: Run) -> None:
    study = icd10_run.study
    ids = {c.email: c.id for c in read_coders(study.labelstudio_dir)}
    assert sorted(ids) == sorted(CODERS)
    tasks = json.loads((study.exports_dir / DEFAULT_NAME).read_text(encoding="utf-8"))
    authors = {(t["coding_bench"]["coder"], a["completed_by"]) for t in tasks for a in t["annotations"]}
    assert authors == set(ids.items())  # every annotation by the task's coder, none by the admin token
    assert len(tasks) == N_SAMPLE + 4 and all(len(t["annotations"]) == 1 for t in tasks)  # 4 notes coded twice


def test_table1_scores_coders_and_models_on_the_same_sampled_notes(icd10_run: Run, scores: dict[str, Any]) -> None:
    table1 = scores["table1"]
    rows = {row["system"]: row for row in table1["rows"]}
    humans = [row for row in rows.values() if row["kind"] in ("humans", "coder")]
    assert len(humans) == 3 and all(row["simulated"] and "imulated" in row["system"] for row in humans)
    assert {name for name, row in rows.items() if row["kind"] == "model"} == MODELS
    sample = set(read_sample(icd10_run.study))
    assert len(sample) == N_SAMPLE
    assert {doc["hadm_id"] for doc in scores["per_document"]} == sample
    assert all(doc["humans"] and set(doc["models"]) == MODELS for doc in scores["per_document"])
    pooled = next(row for row in humans if row["kind"] == "humans")
    assert {rows[m]["n_documents"] for m in MODELS} == {pooled["n_documents"]} == {table1["n_documents"]} == {N_SAMPLE}
    coded = {c for doc in scores["per_document"] for codes in doc["humans"].values() for c in codes}
    assert coded and all(CM_DOTTED.match(c) or PCS.match(c) for c in coded)  # the coders picked ICD-10 codes
    assert table1["agreement"]["n_overlap_tasks"] == 4
    assert table1["reported"] == [] and scores["profiles"]["paper"]["reported"] == []  # the paper's are ICD-9 rows
    # Breakdowns by ICD-10-CM chapter and ICD-10-PCS section.
    for name in rows:
        chapters = table1["breakdowns"]["chapter"][name]
        assert "I00-I99 Diseases of the circulatory system" in chapters and "0 Medical and Surgical" in chapters


def test_table2_has_the_runs_and_no_paper_row(icd10_run: Run, scores: dict[str, Any]) -> None:
    table2 = scores["table2"]
    n_test = icd10_run.study.step("prepare")["summary"]["admissions"]["test"]
    assert {row["system"] for row in table2["rows"]} == MODELS
    assert {row["n_documents"] for row in table2["rows"]} == {n_test}
    assert table2["reported"] == []  # the paper's Table 2 is MIMIC-III, ICD-9


def test_rac_trained_under_two_process_ddp(icd10_run: Run) -> None:
    run_dir = icd10_run.study.runs_dir / RAC_RUN
    last = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert last["world_size"] == 2 and len(last["rng"]) == 2  # both ranks' RNG states, gathered to rank 0
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["epochs_run"] == 1 and summary["system"] == "RAC"
    assert (icd10_run.study.predictions_dir / f"{RAC_RUN}-test" / "evidence.jsonl").exists()


def test_report_in_chromium_names_icd10_and_mimic4(icd10_run: Run, browser: Any, artifact_dir: Path) -> None:
    report = icd10_run.study.report_dir / "index.html"
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    console: list[str] = []
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(report.as_uri(), wait_until="load")
        page.locator("details.note").first.evaluate("d => { d.open = true; }")  # the drill-down builds on open
        page.wait_for_selector("details.note[data-built] table.drill")
        text = page.inner_text("body")
        provenance = page.inner_text("#provenance")
        assert "ICD-10-CM/PCS coding study" in text and "MIMIC-IV" in text and "SYNTHETIC" in text
        assert "RAC (icd10-tiny)" in text and "Simulated" in text
        # ICD-9 only where prepare's rules explain both versions MIMIC-IV holds (provenance), nowhere else.
        assert "ICD-9" not in text.replace(provenance, "")
        assert all("ICD-10" in line for line in provenance.splitlines() if "ICD-9" in line)
        figures = page.eval_on_selector_all(
            "figure[data-figure] img", "imgs => imgs.map(i => [i.closest('figure').dataset.figure, i.complete,"
            " i.naturalWidth, i.src.slice(0, 25)])")
        assert [f[0] for f in figures] == ["frequency", "codes_per_note", "chapter", "throughput"]
        assert all(done and width > 300 and src == "data:image/svg+xml;base64" for _, done, width, src in figures)
        chapter_caption = page.inner_text("figure[data-figure='chapter'] figcaption")
        assert "ICD-10-CM/PCS" in chapter_caption
        # Table 2: the study's runs, with no paper row beside them and no word of one.
        assert page.locator("table.table2 tbody.reported").count() == 0
        assert page.locator("details#table2-paper").count() == 0
        assert "rows marked" not in page.inner_text("#table2")
        page.screenshot(path=str(artifact_dir / "icd10-report.png"), full_page=False)
    finally:
        context.close()
    assert errors == []
    assert [m for m in console if m.startswith(("error", "warning"))] == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
