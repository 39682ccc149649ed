"""An ICD-10 study in a real Label Studio server: the picker, a coder annotating through the API, pull, score.

The picker's tree has ICD-10's four levels (CM: chapter, block, category, code; PCS: section, body system,
root operation, code), and the coder's picks carry those four-level paths through Label Studio, the pull
and the scorer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from annotation import server as ls_server
from annotation.accounts import coder_token, set_passwords
from annotation.client import connect
from annotation.config import choice_codes, items_file
from benchmark.labelstudio_files import load_state, read_coders
from benchmark.sampling import read_shortlist
from benchmark import cli, codesystems
from tests.fixtures_labelstudio import attached_copy
from tests.test_picker_tree import tree_paths

pytestmark = pytest.mark.labelstudio

CODER = "icd10.coder@example.org"


def test_icd10_picker_annotation_pull_and_score(icd10_study: Path, labelstudio_server, tmp_path: Path) -> None:
    from label_studio_sdk import LabelStudio

    study = attached_copy(icd10_study, tmp_path / "study", labelstudio_server)
    assert cli.main(["--study", str(study.root), "setup-labelstudio", "--coders", CODER]) == 0
    conn = connect(study.labelstudio_dir)
    (entry,) = load_state(study.labelstudio_dir)["projects"]
    project = conn.client.projects.get(entry["id"])
    config = project.label_config
    assert "ICD-10-CM/PCS codes: search" in config and "ICD-9" not in config
    assert project.title.startswith("ICD-10 coding") and "every ICD-10-CM/PCS code" in project.expert_instruction
    tree = json.loads((ls_server.files_dir(conn.local_dir) / items_file(config)).read_text(encoding="utf-8"))
    shortlist = read_shortlist(study)
    assert sorted(choice_codes(config, tree)) == sorted(shortlist)  # the picker offers the ICD-10 shortlist
    chapters = set(codesystems.get(10, "dx").chapters()) | set(codesystems.get(10, "px").chapters())
    assert {node["value"] for node in tree} <= chapters  # top level: ICD-10-CM chapters and PCS sections
    paths = tree_paths(tree)
    assert {len(path) for path in paths.values()} == {4}
    for code, path in paths.items():  # every leaf where the code system's hierarchy puts it
        assert path == codesystems.get(10, codesystems.kind_of(code, 10)).hierarchy(code)

    set_passwords(conn.local_dir, {CODER: "pw-icd10-Secret-123"})
    (coder,) = read_coders(study.labelstudio_dir)
    client = LabelStudio(base_url=conn.url, api_key=coder_token(conn.url, CODER, "pw-icd10-Secret-123"))
    refs = pd.read_parquet(study.references)
    hadm_of = load_state(study.labelstudio_dir)["tasks"]
    truth_of = {t: sorted(refs.loc[refs["hadm_id"] == hadm_of[str(t)], "code"]) for t in entry["task_ids"]}
    task_id = next(t for t, codes in truth_of.items() if {codesystems.kind_of(c, 10) for c in codes} == {"dx", "px"})
    truth = truth_of[task_id]
    task = conn.client.tasks.get(task_id)
    picked = sorted({codesystems.kind_of(c, 10): c for c in truth}.values())  # one CM and one PCS code
    result = [{"from_name": "codes", "to_name": "text", "type": "taxonomy",
               "value": {"taxonomy": [list(paths[c]) for c in picked]}}]  # what the picker stores for a pick
    client.annotations.create(task.id, result=result, lead_time=30.0)

    assert cli.main(["--study", str(study.root), "pull"]) == 0
    merged = next(study.exports_dir.glob("merged-latest.json"))
    annotated = [t for t in json.loads(merged.read_text()) if t["annotations"]]
    assert [t["id"] for t in annotated] == [task.id]
    assert annotated[0]["coding_bench"]["coder"] == coder.email
    (stored,) = annotated[0]["annotations"][0]["result"]
    assert stored["value"]["taxonomy"] == [list(paths[c]) for c in picked]  # four levels, as posted
    assert cli.main(["--study", str(study.root), "score", "--coders", str(merged)]) == 0
    rows = {r["system"]: r for r in json.loads(study.scores.read_text())["table1"]["rows"]}
    human = rows["Human coders"]
    assert human["n_documents"] == 1
    assert human["micro"]["precision"] == 1.0  # both picks are reference codes
    assert human["micro"]["recall"] == pytest.approx(len(picked) / len(truth))
