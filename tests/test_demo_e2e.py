"""The acceptance test of the whole product: `bench demo`, smaller, through every real component.

Synthetic corpus -> prepare -> sample -> a real local Label Studio -> simulated coders coding through its
API as their own accounts -> pull -> a tiny RAC trained on the CPU -> predict -> score -> evaluate ->
report, opened in headless Chromium.
"""

from __future__ import annotations

import json

import pytest

from benchmark.cli import main as bench

pytestmark = [pytest.mark.slow, pytest.mark.labelstudio, pytest.mark.browser]


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory: pytest.TempPathFactory):
    study_dir = tmp_path_factory.mktemp("demo") / "study"
    argv = ["--study", str(study_dir), "demo", "--admissions", "300", "--n", "24", "--preset", "tiny",
            "--set", "epochs=1"]
    try:
        code = bench(argv)
        yield study_dir, code
    finally:
        bench(["--study", str(study_dir), "labelstudio", "stop"])


def test_demo_produces_scores_for_simulated_coders_and_the_model(demo_study) -> None:
    study_dir, code = demo_study
    assert code == 0
    scores = json.loads((study_dir / "scores.json").read_text())
    rows = {row["system"]: row for row in scores["table1"]["rows"]}
    humans = [row for row in rows.values() if row["kind"] in ("humans", "coder")]
    models = [row for row in rows.values() if row["kind"] == "model"]
    # Two simulated coder accounts plus the pooled row, every one of them labelled simulated.
    assert len(humans) == 3 and all(row["simulated"] for row in humans)
    assert all("imulated" in row["system"] for row in humans)
    assert sorted(row["system"] for row in models) == ["RAC (demo-small)", "TF-IDF + LR (demo-lr)"]
    assert not any(row["simulated"] for row in models)
    # Humans and the model are scored on the same admissions: the 24 sampled notes the coders completed.
    assert {row["n_documents"] for row in (models[0], rows[humans[0]["system"]])} == {24}
    assert scores["table1"]["agreement"]["n_overlap_tasks"] >= 2
    assert {row["system"] for row in scores["table2"]["rows"]} == {"RAC (demo-small)", "TF-IDF + LR (demo-lr)"}
    assert scores["table2"]["rows"][0]["n_documents"] == sum(
        1 for _ in (study_dir / "synthetic-corpus" / "test_full_hadm_ids.csv").open())
    assert (scores["data_source"], scores["dataset"], scores["code_system"]) == ("synthetic", "MIMIC-III", "ICD-9-CM")
    # The synthetic MDACE companion: its coders beside the model on the test split, and evidence scores.
    mdace = scores["table1_mdace"]
    assert mdace["rows"][0]["system"].startswith("MDACE coders (synthetic companion)")
    assert mdace["rows"][-1]["kind"] == "model" and mdace["mdace"]["n_charts"] == scores["table2"]["rows"][0]["n_documents"]
    assert scores["evidence"]["rows"][0]["n_charts"] == mdace["mdace"]["n_charts"]


def test_demo_report_opens_in_chromium(demo_study, browser, artifact_dir) -> None:
    study_dir, code = demo_study
    assert code == 0
    report = study_dir / "report" / "index.html"
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: requests.append(req.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    text = page.inner_text("body")
    assert "Simulated" in text and "RAC (demo-small)" in text and "SYNTHETIC" in text.upper()
    assert page.locator("img, svg").count() >= 4
    page.screenshot(path=str(artifact_dir / "demo-report.png"), full_page=False)
    page.close()
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests)


def test_labelstudio_status_and_the_token_stays_in_its_0600_file(demo_study, capsys) -> None:
    study_dir, code = demo_study
    assert code == 0
    capsys.readouterr()
    assert bench(["--study", str(study_dir), "labelstudio", "status"]) == 0
    assert "running at http://127.0.0.1:" in capsys.readouterr().out
    credentials = study_dir / "labelstudio" / "credentials"
    assert credentials.stat().st_mode & 0o777 == 0o600
    token = json.loads(credentials.read_text())["api_key"].encode()
    # Outside Label Studio's own data directory, the admin token is nowhere: not in exports, scores, report.
    server_data = {p for p in (study_dir / "labelstudio").rglob("*") if p.is_file()}
    leaked = [p for p in study_dir.rglob("*") if p.is_file() and p not in server_data and token in p.read_bytes()]
    assert leaked == []
