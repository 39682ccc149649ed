"""Coders' evidence spans: read from every export format, refused when they cannot be read, scored against MDACE
and between coders (`bench score` -> scores.json ``coder_evidence``).

Exports are built in the shape Label Studio 1.23 writes for the ``evidence`` control (a labeling Taxonomy:
``{"type": "taxonomy", "value": {"start", "end", "text", "taxonomy": [[chapter, category, code]]}}``, as
tests/test_labelstudio_evidence.py sees the real server write it); JSON_MIN and CSV come from
label-studio-sdk's own converter. The study is the small synthetic one with its MDACE companion imported, so
the coders' spans can be compared with hand-computed scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from annotation.config import labeling_config
from benchmark.cli import main
from benchmark.coder_evidence import POOLED, score_coder_evidence
from benchmark.evidence import evidence_scores
from benchmark.exports import read_coder_exports
from benchmark.mdace import import_mdace, summary_evidence
from benchmark.study import Study
from benchmark.synthetic_mdace import write_companion
from tests.fixtures_study import copy_study
from tests.test_exports import full_task, write_formats


@pytest.fixture(scope="module")
def evidence_study(small_study: Study, synthetic_corpus_small: Path, tmp_path_factory: pytest.TempPathFactory):
    """The small study with the MDACE companion imported; its sample lies in the test split, like MDACE's charts."""
    root = tmp_path_factory.mktemp("coder-evidence")
    study = copy_study(small_study, root / "study")
    write_companion(synthetic_corpus_small, seed=0, out_root=root)
    import_mdace(study, root / "mdace")
    return study


@pytest.fixture
def study(evidence_study: Study, tmp_path: Path) -> Study:
    return copy_study(evidence_study, tmp_path / "study")


def _texts(study: Study) -> dict[int, str]:
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "text"])
    return dict(zip(docs["hadm_id"].astype(int), docs["text"]))


def region(text: str, start: int, end: int, code: str, name: str = "evidence") -> dict:
    return {"id": f"r{start}", "from_name": name, "to_name": "text", "type": "taxonomy", "origin": "manual",
            "value": {"start": start, "end": end, "text": text[start:end], "taxonomy": [["chapter", "cat", code]]}}


def annotation(ann_id: int, coder: int, codes: list[str], regions: list[dict]) -> dict:
    picked = [{"from_name": "codes", "to_name": "text", "type": "taxonomy",
               "value": {"taxonomy": [["chapter", "cat", c] for c in codes]}}] if codes else []
    return {"id": ann_id, "completed_by": coder, "result": picked + regions, "was_cancelled": False,
            "lead_time": 60.0, "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z"}


def _charts(study: Study) -> tuple[list[int], dict[int, list[tuple[int, int, str]]]]:
    """Sampled admissions that have MDACE spans in the summary, and those spans."""
    gold = summary_evidence(study)
    sample = [int(x) for x in study.sample.read_text().split()]
    return [h for h in sample if gold.get(h)], gold


def _write(tmp_path: Path, tasks: list[dict], name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tasks))
    return path


def test_spans_are_read_from_full_json_min_and_csv(study: Study, tmp_path: Path) -> None:
    charts, gold = _charts(study)
    text = _texts(study)
    h0, h1 = charts[:2]
    (b0, e0, c0), *_ = gold[h0]
    b1, e1, c1 = gold[h1][0]
    other = next(c for _, _, c in gold[h1] if c != c1) if len({c for *_, c in gold[h1]}) > 1 else "401.9"
    tasks = [
        full_task(1, h0, [annotation(10, 3, [c0], [region(text[h0], b0, e0, c0), region(text[h0], 0, 5, c0)])]),
        # the second region's code was not picked (a rejected proposal): counted, not evidence
        full_task(2, h1, [annotation(11, 3, [c1], [region(text[h1], b1, e1, c1), region(text[h1], 0, 4, other)])]),
    ]
    config = labeling_config(["401.9", c0, c1, other], pd.read_parquet(study.codes), ui="taxonomy", evidence=True)
    paths = write_formats(tasks, config, tmp_path / "formats")
    for kind, path in paths.items():
        result = read_coder_exports([path], study)
        got = {a.hadm_id: (a.codes, dict(a.evidence)) for a in result.annotations}
        assert got == {h0: ((c0,), {c0: tuple(sorted({(0, 5), (b0, e0)}))}), h1: ((c1,), {c1: ((b1, e1),)})}, kind
        assert result.counts["evidence_spans"] == 3 and result.counts["evidence_spans_code_not_picked"] == 1, kind
        assert result.counts["annotations_with_evidence"] == 2, kind
        assert any("did not pick" in note for note in result.notes), kind


def _fails(study: Study, export: Path, capsys) -> str:
    code = main(["--study", str(study.root), "score", "--coders", str(export), "--bootstrap", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_spans_that_cannot_be_read_are_refused_in_one_line(study: Study, tmp_path: Path, capsys) -> None:
    charts, gold = _charts(study)
    text = _texts(study)
    h = charts[0]
    b, e, c = gold[h][0]
    shifted = region(text[h], b, e, c)
    shifted["value"]["text"] = text[h][b + 1:e + 1] if text[h][b + 1:e + 1] != text[h][b:e] else "something else"
    outside = region(text[h], b, e, c)
    outside["value"].update(start=len(text[h]) - 2, end=len(text[h]) + 5)
    two = region(text[h], b, e, c)
    two["value"]["taxonomy"].append(["chapter", "cat", "401.9"])
    xpath = region(text[h], b, e, c)
    xpath["value"].update(start="/p[1]", end="/p[2]")
    unknown = region(text[h], b, e, "999.99")
    for bad, expected in ((shifted, "another text, or offsets counted another way"), (outside, "lies outside"),
                          (two, "carries 2 codes"), (xpath, "not character offsets"), (unknown, "999.99")):
        export = _write(tmp_path, [full_task(1, h, [annotation(10, 3, [c], [bad])])], f"bad-{expected[:5]}.json")
        err = _fails(study, export, capsys)
        assert expected in err and "task 1" in err and str(export) in err


def test_coder_evidence_against_mdace_and_between_coders(study: Study, tmp_path: Path, capsys) -> None:
    """Coder 3 marks exactly MDACE's spans; coder 4 marks half of them plus a wrong one; both code the same charts."""
    charts, gold = _charts(study)
    text = _texts(study)
    charts = charts[:6]
    tasks = []
    for i, h in enumerate(charts):
        codes = sorted({c for _, _, c in gold[h]})
        exact = [region(text[h], b, e, c) for b, e, c in gold[h]]
        half = exact[: max(1, len(exact) // 2)] + [region(text[h], 0, 9, codes[0])]
        tasks.append(full_task(i + 1, h, [annotation(10 * i, 3, codes, exact),
                                          annotation(10 * i + 1, 4, codes, half)]))
    export = _write(tmp_path, tasks)
    assert main(["--study", str(study.root), "score", "--coders", str(export), "--bootstrap", "5"]) == 0
    out = capsys.readouterr().out
    assert "Coder evidence:" in out and "Against MDACE (synthetic companion)" in out and "Between coders" in out
    block = json.loads(study.scores.read_text())["coder_evidence"]
    rows = {r["coder"]: r for r in block["vs_mdace"]["rows"]}
    assert sorted(rows) == [POOLED, "user 3", "user 4"] and block["vs_mdace"]["n_shared_charts"] == len(charts)
    perfect = rows["user 3"]["all_codes"]
    assert all(perfect[m]["f1"] == 1.0 for m in block["measures"])
    # coder 4, recomputed straight from the definitions on the same spans
    expected = evidence_scores((text[h], gold[h], [(r["value"]["start"], r["value"]["end"],
                                                    r["value"]["taxonomy"][0][-1])
                                                   for r in t["annotations"][1]["result"] if r["from_name"] == "evidence"])
                               for h, t in zip(charts, tasks))
    assert rows["user 4"]["all_codes"] == json.loads(json.dumps(expected))
    assert rows[POOLED]["n_charts"] == 2 * len(charts)
    (pair,) = block["agreement"]
    assert (pair["a"], pair["b"], pair["n_tasks"]) == ("user 3", "user 4", len(charts))
    for m in block["measures"]:  # coder 3 is MDACE here, so agreement equals coder 4's score against MDACE
        assert pair["all_codes"][m]["f1"] == pytest.approx(rows["user 4"]["all_codes"][m]["f1"])
        assert pair["all_codes"][m]["precision"] == pytest.approx(rows["user 4"]["all_codes"][m]["precision"])

    from reports.render import render_html

    html = render_html(study)  # the report's evidence section lists each coder's row and the pair
    assert 'id="coder-evidence"' in html and 'data-coder="user 4" data-codes="against MDACE, all codes"' in html
    assert 'data-codes="between coders, shared codes"' in html


def test_agreement_f1_is_symmetric_and_no_block_without_evidence(study: Study, tmp_path: Path) -> None:
    charts, gold = _charts(study)
    text = _texts(study)
    h = charts[0]
    codes = sorted({c for _, _, c in gold[h]})
    b, e, c = gold[h][0]
    one = [region(text[h], b, e, c), region(text[h], 0, 12, codes[-1])]
    two = [region(text[h], b, e, c), region(text[h], 2, 9, codes[0])]
    scored = {}
    for first, second in ((3, 4), (4, 3)):  # the user with the smaller name is the reference either way
        tasks = [full_task(1, h, [annotation(1, first, codes, one), annotation(2, second, codes, two)])]
        block = score_coder_evidence(study, read_coder_exports([_write(tmp_path, tasks, f"{first}.json")], study))
        scored[first] = block["agreement"][0]["all_codes"]
    assert scored[3] != scored[4]  # the reference swapped: precision and recall swap ...
    for m in scored[3]:
        assert scored[3][m]["f1"] == pytest.approx(scored[4][m]["f1"])  # ... F1 does not
        assert scored[3][m]["precision"] == pytest.approx(scored[4][m]["recall"])
    plain = [full_task(1, h, [annotation(1, 3, codes, [])])]
    assert score_coder_evidence(study, read_coder_exports([_write(tmp_path, plain, "plain.json")], study)) is None
