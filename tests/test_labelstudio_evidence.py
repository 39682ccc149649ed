"""Evidence on the coder page, on a real Label Studio 1.23 server (session fixture) and in headless Chromium.

`bench setup-labelstudio --assist tiny --show-evidence` on the small study (two coders, split design, so a
crossover): every project gets the evidence highlighter, and every assisted task carries RAC's predicted codes
and, for each, its evidence windows as predicted regions of the note linked to the code, checked through the
API. In the browser a coder sees the highlighted windows, accepts one proposed code, rejects the other,
highlights a word for the accepted code and submits; `bench pull`'s export carries the code and its spans
(the proposed windows kept and the coder's own one), and the rejected code's windows are counted, not scored.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import requests

from annotation.accounts import set_passwords
from annotation.client import connect
from annotation.config import EVIDENCE_COLOR, EVIDENCE_CONTROL, items_file
from benchmark.labelstudio_files import load_state, read_coders
from benchmark.sampling import read_shortlist
from annotation.pull import pull
from benchmark import cli
from benchmark.exports import read_coder_exports
from benchmark.predictions import Predictions, write_predictions
from benchmark.study import Study
from benchmark.text import token_spans
from tests.fixtures_labelstudio import attached_copy

pytestmark = pytest.mark.labelstudio

CODERS = ["ev-a@example.org", "ev-b@example.org"]
PASSWORD = "Evidence-Secret-456"


# The regions drawn on the note as [start, end, label]. A region across lines is a span per line, sharing the
# class htx-highlight-<region>: the first span carries data-start, the last data-end and data-label. Waits
# (returns false) until at least n regions are drawn: the editor redraws the note once the pre-annotation is in.
DRAWN_REGIONS = """n => {
    const regions = new Map();
    for (const el of document.querySelectorAll('.htx-highlight')) {
        const key = [...el.classList].find(c => c.startsWith('htx-highlight-'));
        const r = regions.get(key) || {};
        if (el.dataset.start !== undefined) r.start = +el.dataset.start;
        if (el.dataset.end !== undefined) r.end = +el.dataset.end;
        if (el.dataset.label !== undefined) r.label = el.dataset.label;
        regions.set(key, r);
    }
    const out = [...regions.values()].map(r => [r.start, r.end, r.label]);
    return out.length >= n && out;
}"""


def _windows(text: str) -> dict[int, list[tuple[int, int]]]:
    """Token-aligned windows as RAC writes them: column 0 gets two, column 1 one."""
    _, starts, ends = token_spans(text)
    return {0: [(int(starts[0]), int(ends[1])), (int(starts[4]), int(ends[6]))], 1: [(int(starts[8]), int(ends[9]))]}


@pytest.fixture(scope="module")
def evidence_setup(small_study: Study, labelstudio_server, tmp_path_factory):
    """The small study set up with `--assist tiny --show-evidence`; RAC proposes shortlist codes 0 and 1 everywhere."""
    root = tmp_path_factory.mktemp("ls-evidence") / "study"
    study = attached_copy(small_study.root, root, labelstudio_server)
    sample = [int(x) for x in study.sample.read_text().split()]
    shortlist = read_shortlist(study)
    docs = pd.read_parquet(study.documents, columns=["hadm_id", "text"])
    text = dict(zip(docs["hadm_id"].astype(int), docs["text"]))
    probs = np.zeros((len(sample), 3), dtype=np.float32)
    probs[:, :2] = 0.9
    evidence = [{"hadm_id": h, "codes": {shortlist[c]: [{"start": b, "end": e, "score": 0.1} for b, e in spans]
                                          for c, spans in _windows(text[h]).items()}} for h in sample]
    write_predictions(study.predictions_dir / "tiny-sample", Predictions(
        name="tiny-sample", hadm_ids=np.asarray(sample), codes=shortlist[:3], probs=probs, run="tiny", split="sample"),
        evidence)
    assert cli.main(["--study", str(root), "setup-labelstudio", "--coders", ",".join(CODERS), "--simulated",
                     "--assist", "tiny", "--show-evidence"]) == 0
    return study, text, shortlist


def _tasks(conn, project_id: int) -> list[dict]:
    response = requests.get(f"{conn.url}/api/tasks", params={"project": project_id, "page_size": 1000, "fields": "all"},
                            headers={"Authorization": f"Token {conn.creds.api_key}"}, timeout=60)
    assert response.ok
    return response.json()["tasks"]


def test_assisted_tasks_carry_evidence_regions_linked_to_codes(evidence_setup) -> None:
    study, text, shortlist = evidence_setup
    conn = connect(study.labelstudio_dir)
    state = load_state(study.labelstudio_dir)
    assert sorted((p["coder"], p["arm"]) for p in state["projects"]) == sorted(
        (c, arm) for c in CODERS for arm in ("unassisted", "assisted"))
    for entry in state["projects"]:
        config = conn.client.projects.get(entry["id"]).label_config
        assert items_file(config) is not None                  # the code picker still loads its tree from the file
        (tree,) = [el for el in ET.fromstring(config).iter("Taxonomy") if el.get("name") == EVIDENCE_CONTROL]
        assert tree.get("labeling") == "true" and tree.get("apiUrl") is None  # both arms: the same page
        leaves = [el for el in tree.iter("Choice") if len(el) == 0]
        assert sorted(el.get("alias") for el in leaves) == sorted(shortlist)
        assert {el.get("color") for el in leaves} == {EVIDENCE_COLOR}   # a highlight takes its leaf's color
        tasks = _tasks(conn, entry["id"])
        assert len(tasks) == len(entry["task_ids"]) > 0
        if entry["arm"] == "unassisted":
            assert all(not t["predictions"] for t in tasks)
            continue
        for task in tasks:
            (prediction,) = task["predictions"]
            assert prediction["model_version"] == "tiny"
            codes = [r for r in prediction["result"] if r["from_name"] == "codes"]
            assert [path[-1] for path in codes[0]["value"]["taxonomy"]] == shortlist[:2]
            regions = [r for r in prediction["result"] if r["from_name"] == EVIDENCE_CONTROL]
            h = int(task["data"]["hadm_id"])
            expected = sorted((shortlist[c], b, e) for c, spans in _windows(text[h]).items() for b, e in spans)
            got = sorted((r["value"]["taxonomy"][0][-1], r["value"]["start"], r["value"]["end"]) for r in regions)
            assert got == expected
            assert all(r["type"] == "taxonomy" and r["value"]["text"] == text[h][r["value"]["start"]:r["value"]["end"]]
                       for r in regions)
            assert len({r["id"] for r in regions}) == len(regions)  # one region per window


def test_show_evidence_needs_assist_and_cannot_change_imported_tasks(evidence_setup, capsys) -> None:
    study, _, _ = evidence_setup
    assert cli.main(["--study", str(study.root), "setup-labelstudio", "--simulated", "--show-evidence"]) == 2
    assert "--assist RUN" in capsys.readouterr().err
    assert cli.main(["--study", str(study.root), "setup-labelstudio", "--simulated", "--assist", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert "imported with RAC's evidence" in err and "\n" not in err
    before = json.loads((study.labelstudio_dir / "projects.json").read_text())
    assert cli.main(["--study", str(study.root), "setup-labelstudio", "--simulated", "--assist", "tiny",
                     "--show-evidence"]) == 0
    assert "0 task(s) imported" in capsys.readouterr().out   # idempotent; --evidence is kept from the first run
    assert json.loads((study.labelstudio_dir / "projects.json").read_text()) == before
    assert items_file(connect(study.labelstudio_dir).client.projects.get(before["projects"][0]["id"]).label_config)


@pytest.mark.browser
def test_coder_sees_evidence_accepts_a_code_and_highlights_a_word(evidence_setup, browser, artifact_dir) -> None:
    study, text, shortlist = evidence_setup
    conn = connect(study.labelstudio_dir)
    coder = read_coders(study.labelstudio_dir)[0]
    set_passwords(conn.local_dir, {coder.email: PASSWORD})
    entry = next(p for p in load_state(study.labelstudio_dir)["projects"]
                 if p["coder"] == coder.email and p["arm"] == "assisted")
    task_id = entry["task_ids"][0]
    hadm = load_state(study.labelstudio_dir)["tasks"][str(task_id)]
    windows = _windows(text[hadm])
    accepted, rejected = shortlist[0], shortlist[1]

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{conn.url}/user/login/")
        page.fill("input[name=email]", coder.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(lambda u: "/user/login" not in u, timeout=60_000)
        page.goto(f"{conn.url}/projects/{entry['id']}/data?tab=0&task={task_id}")
        n_windows = sum(len(spans) for spans in windows.values())
        drawn = page.wait_for_function(DRAWN_REGIONS, arg=n_windows, timeout=120_000).json_value()
        assert sorted((b, e) for b, e, _ in drawn) == sorted(w for spans in windows.values() for w in spans)
        labels = [label for _, _, label in drawn]
        assert sum(f"{accepted} " in label for label in labels) == 2 and sum(f"{rejected} " in label for label in labels) == 1
        page.screenshot(path=str(artifact_dir / "labelstudio-evidence-proposed.png"))

        # Reject the second proposal: remove it from the code picker (its highlight stays, the scorer drops it).
        picked = page.locator(".htx-taxonomy").first
        picked.locator(".ant-select-selection-item", has_text=f"{rejected} ").locator(".ant-select-selection-item-remove").click()
        picked.locator(".ant-select-selection-item", has_text=f"{rejected} ").wait_for(state="detached", timeout=30_000)
        # Highlight one more word for the accepted code: pick it in the evidence tree, then double-click a word.
        page.locator(".htx-taxonomy").last.click()
        search = page.get_by_test_id("taxonomy-search").last
        search.fill(accepted)
        node = page.locator(".ant-select-tree-treenode", has_text=f"{accepted} ").last
        node.wait_for(state="visible", timeout=30_000)
        node.locator(".ant-select-tree-checkbox").first.click()
        page.keyboard.press("Escape")
        _, starts, ends = token_spans(text[hadm])
        word = (int(starts[12]), int(ends[12]))
        _double_click_word(page, word)
        marked = page.wait_for_function(DRAWN_REGIONS, arg=n_windows + 1, timeout=30_000).json_value()
        assert [word[0], word[1]] in [[b, e] for b, e, _ in marked]
        page.screenshot(path=str(artifact_dir / "labelstudio-evidence-marked.png"))
        with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as posted:
            page.get_by_role("button", name="Submit").first.click()
        assert posted.value.ok
    finally:
        context.close()

    pulled = pull(study, conn).outputs["assisted"]
    exported = read_coder_exports([pulled], study)
    (annotation,) = [a for a in exported.annotations if a.task_id == task_id]
    assert annotation.codes == (accepted,)
    assert dict(annotation.evidence) == {accepted: tuple(sorted([*windows[0], word]))}
    assert exported.counts["evidence_spans_code_not_picked"] == len(windows[1])
    (task,) = [t for t in json.loads(pulled.read_text()) if t["id"] == task_id]
    (own,) = [r for r in task["annotations"][0]["result"]
              if r["from_name"] == EVIDENCE_CONTROL and r["value"]["start"] == word[0]]
    assert own["value"]["text"] == text[hadm][word[0]:word[1]] and own["value"]["taxonomy"][0][-1] == accepted


def _double_click_word(page, span: tuple[int, int]) -> None:
    """Double-click the note's word at character offsets ``span``: the browser selects it, Label Studio makes a region.

    Label Studio draws each line of the note as a span with a ``<br>`` after it, so a newline counts one
    character there."""
    box = page.evaluate(
        """([start, end]) => {
            const root = document.querySelector('.lsf-richtext__container');  // a line per span, <br> between
            const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT);
            let seen = 0, node;
            while ((node = walker.nextNode())) {
                if (node.nodeName === 'BR') { seen += 1; continue; }  // the note's newline
                if (node.nodeType !== Node.TEXT_NODE) continue;
                const n = node.textContent.length;
                if (seen + n > start) {
                    const range = document.createRange();
                    range.setStart(node, start - seen); range.setEnd(node, Math.min(n, end - seen));
                    const r = range.getBoundingClientRect();
                    return {x: r.x + r.width / 2, y: r.y + r.height / 2};
                }
                seen += n;
            }
            return null;
        }""", list(span))
    assert box is not None
    page.mouse.dblclick(box["x"], box["y"])


def test_simulated_coders_evidence_is_scored_against_mdace_and_between_coders(
        small_study: Study, synthetic_corpus_small, labelstudio_server, tmp_path, capsys) -> None:
    """End to end on the real server: `--evidence`, simulated coders highlight, `pull`, `score` -> coder_evidence."""
    from benchmark.mdace import import_mdace
    from benchmark.synthetic_mdace import write_companion

    root = tmp_path / "study"
    study = attached_copy(small_study.root, root, labelstudio_server)
    write_companion(synthetic_corpus_small, seed=0, out_root=tmp_path)
    import_mdace(study, tmp_path / "mdace")
    coders = ["sev-a@example.org", "sev-b@example.org"]
    assert cli.main(["--study", str(root), "setup-labelstudio", "--simulated", "--coders", ",".join(coders),
                     "--design", "overlap:6", "--evidence"]) == 0
    assert cli.main(["--study", str(root), "simulate-coders", "--behaviour", "careful", "--seed", "1"]) == 0
    assert cli.main(["--study", str(root), "pull"]) == 0
    capsys.readouterr()
    assert cli.main(["--study", str(root), "score", "--coders", str(study.exports_dir / "merged-latest.json"),
                     "--bootstrap", "5"]) == 0
    out = capsys.readouterr().out
    assert "Against MDACE (synthetic companion)" in out and "Between coders" in out
    block = json.loads(study.scores.read_text())["coder_evidence"]
    assert block["n_spans"] > 0 and block["vs_mdace"]["n_shared_charts"] > 0
    rows = {r["coder"]: r for r in block["vs_mdace"]["rows"]}
    assert sorted(rows) == sorted([*coders, "All coders"])
    for coder in coders:  # the first place of a code's phrase is one of the places the companion marks
        assert rows[coder]["correct_codes"]["exact_span"]["precision"] > 0.9, rows[coder]
        assert 0 < rows[coder]["all_codes"]["exact_span"]["recall"] < 1
    (pair,) = block["agreement"]
    assert pair["n_tasks"] == 6 and pair["shared_codes"]["exact_span"]["f1"] > 0.9  # same rule, same codes: same spans
