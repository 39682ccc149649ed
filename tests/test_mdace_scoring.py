"""Table 1's MDACE rows (`bench score-mdace`) and evidence scoring (`bench evidence`) on the small synthetic
study with its MDACE companion and a test-split prediction set whose evidence windows are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.evidence import evidence_scores
from benchmark.mdace import import_mdace
from benchmark.predictions import Predictions, write_predictions
from benchmark.study import Study
from benchmark.synthetic_mdace import write_companion
from tests.fixtures_study import copy_study


@pytest.fixture(scope="module")
def mdace_study(small_study: Study, synthetic_corpus_small: Path, tmp_path_factory: pytest.TempPathFactory):
    """A study copy with the MDACE companion imported and a test prediction set: each predicted code's windows
    are its MDACE spans (when it has any) plus one window of 3 tokens at a fixed place."""
    root = tmp_path_factory.mktemp("mdace-scoring")
    study = copy_study(small_study, root / "study")
    write_companion(synthetic_corpus_small, seed=0, out_root=root)
    import_mdace(study, root / "mdace")
    refs = {int(h): sorted(g["code"]) for h, g in pd.read_parquet(study.references).groupby("hadm_id")}
    codes = pd.read_parquet(study.codes)["code"].tolist()
    col = {c: i for i, c in enumerate(codes)}
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "split", "text"])
    test = docs[docs["split"] == "test"]
    rng = np.random.default_rng(0)
    probs = rng.random((len(test), len(codes))).astype(np.float32) * 0.52
    for r, h in enumerate(test["hadm_id"]):
        for c in refs[int(h)]:
            probs[r, col[c]] = rng.uniform(0.3, 1.0)
    spans = pd.read_parquet(study.mdace_spans).dropna(subset=["doc_begin"])
    gold = {(int(h), c): [(int(b), int(e)) for b, e in g[["doc_begin", "doc_end"]].itertuples(index=False)]
            for (h, c), g in spans.groupby(["hadm_id", "code"])}
    evidence = []
    for r, h in enumerate(test["hadm_id"].astype(int)):
        predicted = [codes[i] for i in np.flatnonzero(probs[r].astype(np.float16) >= 0.5)]
        evidence.append({"hadm_id": h, "codes": {c: [{"start": b, "end": e, "score": 0.5} for b, e in gold.get((h, c), [])]
                                                 + [{"start": 0, "end": 20, "score": 0.1}] for c in predicted}})
    write_predictions(study.predictions_dir / "small-test",
                      Predictions("small-test", test["hadm_id"].to_numpy(), codes, probs, run="small", split="test"),
                      evidence)
    return study, gold, evidence


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_score_mdace_rows_beside_models(mdace_study, capsys):
    study, _, _ = mdace_study
    code, out, err = _run(capsys, "--study", str(study.root), "score-mdace", "--bootstrap", "200")
    assert code == 0, err
    assert "Table 1 (MDACE)" in out and "MDACE types counted: all" in out and "RAC (small)" in out
    assert "MDACE coders read all of a chart's notes" in out
    scores = json.loads(study.scores.read_text())
    table = scores["table1_mdace"]
    names = [r["system"] for r in table["rows"]]
    assert names == ["MDACE coders (synthetic companion), all notes",
                     "MDACE coders (synthetic companion), discharge-summary evidence", "RAC (small)"]
    n_test = int((pd.read_parquet(study.documents, columns=["split"])["split"] == "test").sum())
    assert {r["n_documents"] for r in table["rows"]} == {n_test} == {table["mdace"]["n_charts"]}
    mdace = table["rows"][0]
    # The companion's coders are the references' codes that have a planted phrase: never wrong, some missed.
    assert mdace["micro"]["precision"] == 1.0 and 0.3 < mdace["micro"]["recall"] < 1.0
    assert all("micro_jaccard" in r["ci95"] for r in table["rows"])
    assert {c["b"] for c in table["comparisons"]} == {"RAC (small)"} and set(scores["profiles_mdace"]) == {"paper", "corrected"}
    assert set(table["breakdowns"]["frequency"]) == set(names)

    code, out, err = _run(capsys, "--study", str(study.root), "score-mdace", "--mdace-types", "human", "--bootstrap", "50")
    assert code == 0, err
    human = json.loads(study.scores.read_text())["table1_mdace"]
    assert "MDACE types counted: human" in out and human["mdace"]["types"] == "human"
    assert human["rows"][0]["micro"]["recall"] < mdace["micro"]["recall"]


def test_evidence_scores_windows_against_mdace_spans(mdace_study, capsys):
    study, gold, evidence = mdace_study
    code, out, err = _run(capsys, "--study", str(study.root), "evidence")
    assert code == 0, err
    assert "Evidence vs MDACE spans" in out and "random windows" in out and "synthetic companion" in out
    block = json.loads(study.scores.read_text())["evidence"]
    row = block["rows"][0]
    assert row["system"] == "RAC (small)" and row["n_charts"] > 0
    # Every correctly predicted code's gold spans were given as windows: full recall there, extra windows cost precision.
    exact = row["correct_codes"]["exact_span"]
    assert exact["fn"] == 0 and exact["tp"] > 0 and exact["precision"] < 1.0
    # Against the direct computation on the same inputs (exact spans need no text beyond the offsets).
    text = pd.read_parquet(study.documents, columns=["hadm_id", "text"]).set_index("hadm_id")["text"]
    charts = []
    for item in evidence:
        h = item["hadm_id"]
        g = [(b, e, c) for (hh, c), spans in gold.items() if hh == h for b, e in spans]
        p = [(w["start"], w["end"], c) for c, ws in item["codes"].items() for w in ws]
        charts.append((text[h], g, p))
    assert row["all_codes"] == evidence_scores(charts)
    assert row["random_windows"]["all_codes"]["token"]["f1"] < row["all_codes"]["token"]["f1"]
    assert set(row["by_frequency"]) == {"0", "1-5", "6-50", "51-500", ">500"}


def test_evidence_and_score_mdace_errors_are_one_line(mdace_study, small_study: Study, tmp_path: Path, capsys):
    study, _, _ = mdace_study
    for argv, fragment in (([ "evidence"], "bench import-mdace"), (["score-mdace"], "bench import-mdace")):
        code, _, err = _run(capsys, "--study", str(small_study.root), *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    psv = tmp_path / "other.psv"
    psv.write_text("1|428.0\n")
    code, _, err = _run(capsys, "--study", str(study.root), "evidence", "--predictions", str(psv))
    assert code == 2 and "no evidence.jsonl" in err
    broken = copy_study(study, tmp_path / "broken")
    (broken.predictions_dir / "small-test" / "evidence.jsonl").write_text('{"hadm_id": 1}\n')
    code, _, err = _run(capsys, "--study", str(broken.root), "evidence")
    assert code == 2 and "evidence.jsonl line 1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.browser
def test_report_shows_the_mdace_rows_and_the_evidence_section(mdace_study, capsys, browser):
    study, _, _ = mdace_study
    for argv in (["score-mdace", "--bootstrap", "50"], ["evidence"], ["report"]):
        code, _, err = _run(capsys, "--study", str(study.root), *argv)
        assert code == 0, err
    scores = json.loads(study.scores.read_text())
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: requests.append(req.url))
    page.goto((study.report_dir / "index.html").as_uri())
    page.wait_for_load_state("load")
    assert page.locator("#table1-mdace h3").inner_text().startswith("MDACE coders and models on the")
    systems = page.eval_on_selector_all("#table1-mdace table.table1 tbody tr", "trs => trs.map(tr => tr.dataset.system)")
    assert systems == [r["system"] for r in scores["table1_mdace"]["rows"]]
    text = page.inner_text("#table1-mdace")
    assert "MDACE coders read all of a chart's notes" in text and "Chart comments by kind: Need OP report" in text
    shown = page.eval_on_selector_all("table.evidence tbody tr td", "tds => tds.map(td => [td.dataset.metric, "
                                      "td.dataset.value, td.textContent])")
    row = scores["evidence"]["rows"][0]
    n = len(scores["evidence"]["measures"]) * 3
    expected = [(f"{m}_{k}", row["all_codes"][m][k]) for m in scores["evidence"]["measures"]
                for k in ("precision", "recall", "f1")]
    assert [(m, float(v)) for m, v, _ in shown[:n]] == expected
    assert [t for _, _, t in shown[:n]] == [f"{100 * v:.1f}" for _, v in expected]
    assert len(shown) == 4 * n  # all codes, correct codes, and the two random-window baselines
    assert "Synthetic MDACE companion" in page.inner_text("#evidence")
    assert page.locator("#fig-evidence-frequency img").evaluate("img => img.naturalWidth > 0")
    assert not errors and all(u.startswith(("file:", "data:")) for u in requests), (errors, requests)
    page.close()
