"""Codes are checked against the code system (every valid ICD-9-CM code), not the label space.

A prepared synthetic study and a full-JSON export (built as dicts, the shape Label Studio writes) in which
coders pick real codes that no kept admission has: `bench score` runs with no flag, scores them as wrong,
counts them, and its Table 1 equals scikit-learn computed here from the export and the references alone.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import jaccard_score, precision_score, recall_score
from sklearn.preprocessing import MultiLabelBinarizer

from benchmark.cli import main
from benchmark.study import Study
from tests.fixtures_study import copy_study
from tests.test_exports import choices_annotation, full_task

BOOTSTRAP = ["--bootstrap", "20"]


@pytest.fixture
def study(small_study: Study, tmp_path: Path) -> Study:
    return copy_study(small_study, tmp_path / "study")


def _references(study: Study) -> dict[int, list[str]]:
    refs = pd.read_parquet(study.references)
    return {int(h): sorted(g["code"]) for h, g in refs.groupby("hadm_id")}


def _outside_label_space(study: Study) -> list[str]:
    """Valid diagnoses of the synthetic D_ICD tables that no kept admission has (the corpus writes every CMS code)."""
    system = pd.read_parquet(study.code_system)
    label_space = set(pd.read_parquet(study.codes)["code"])
    mimic_dx = system[(system["source"] == "mimic") & (system["system"] == "dx")]["code"]
    return sorted(set(mimic_dx) - label_space)


def _export(study: Study) -> tuple[list[dict], list[tuple[str, int, list[str]]]]:
    """Tasks for 6 sampled admissions, coded by user 1 (all) and user 2 (two of them), with wrong valid codes.

    Returns the tasks and, per annotation, (coder, hadm_id, the dotted codes it holds).
    """
    refs, outside = _references(study), _outside_label_space(study)
    v_codes = [c for c in outside if c.startswith("V")]
    sample = [int(x) for x in study.sample.read_text().split()][:6]
    tasks, truth = [], []
    for i, hadm in enumerate(sample):
        ref = refs[hadm]
        mine = ref[: max(1, len(ref) // 2)] + outside[i: i + 2]              # half right, two wrong but valid
        annotations = [choices_annotation(100 + i, 1, mine)]
        truth.append(("user 1", hadm, sorted(set(mine))))
        if i < 2:  # a second coder on two notes, writing V codes undotted (a V code has one reading)
            theirs = ref[-1:] + [v_codes[i]]
            annotations.append(choices_annotation(200 + i, 2, [_undot_v(c) for c in theirs]))
            truth.append(("user 2", hadm, sorted(set(theirs))))
        tasks.append(full_task(i + 1, hadm, annotations))
    return tasks, truth


def _undot_v(code: str) -> str:
    """V45.81 -> V4581; other codes stay dotted ("4019" could read as 401.9 or 40.19, see normalise_code)."""
    return code.replace(".", "") if code.startswith("V") else code


def _bench(study: Study, *args: str) -> int:
    return main(["--study", str(study.root), *args])


def _fails(study: Study, capsys, *args: str) -> str:
    code = _bench(study, *args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def _sklearn_rows(truth: list[tuple[str, int, list[str]]], refs: dict[int, list[str]], label_set: str,
                  predicted_by_any: set[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Micro and macro J/P/R per Table 1 row (pooled humans, each coder), computed with scikit-learn only.

    Pooled humans weigh an admission coded by k coders 1/k per annotation. Macro runs over ``union`` (the row's
    references plus every predicted code) or ``reference`` (the row's references); 0/0 counts as 0.
    """
    per_hadm = pd.Series([h for _, h, _ in truth]).value_counts()
    rows = {"Human coders": truth, **{f"({c})": [t for t in truth if t[0] == c] for c in sorted({t[0] for t in truth})}}
    out = {}
    for name, items in rows.items():
        y_true_sets = [refs[h] for _, h, _ in items]
        y_pred_sets = [codes for _, _, codes in items]
        classes = sorted({c for s in y_true_sets + y_pred_sets for c in s} | predicted_by_any)
        mlb = MultiLabelBinarizer(classes=classes)
        y_true, y_pred = mlb.fit_transform(y_true_sets), mlb.transform(y_pred_sets)
        weights = np.array([1.0 / per_hadm[h] for _, h, _ in items]) if name == "Human coders" else None
        in_refs = {c for s in y_true_sets for c in s}
        labels = [c for c in classes if c in in_refs or (label_set == "union" and c in predicted_by_any)]
        macro = {"labels": [classes.index(c) for c in labels], "average": "macro", "zero_division": 0}
        out[name] = {
            "micro": {"jaccard": jaccard_score(y_true, y_pred, average="micro", sample_weight=weights),
                      "precision": precision_score(y_true, y_pred, average="micro", sample_weight=weights),
                      "recall": recall_score(y_true, y_pred, average="micro", sample_weight=weights)},
            "macro": {"jaccard": jaccard_score(y_true, y_pred, sample_weight=weights, **macro),
                      "precision": precision_score(y_true, y_pred, sample_weight=weights, **macro),
                      "recall": recall_score(y_true, y_pred, sample_weight=weights, **macro)},
        }
    return out


def _assert_table_matches(table: dict, expected: dict[str, dict[str, dict[str, float]]]) -> None:
    for name, want in expected.items():
        row = next(r for r in table["rows"] if r["system"] == name or r["system"].endswith(name))
        for average in ("micro", "macro"):
            for metric, value in want[average].items():
                assert row[average][metric] == pytest.approx(value, abs=1e-12), (name, average, metric)


def test_valid_codes_outside_the_label_space_are_wrong_answers(study: Study, tmp_path: Path, capsys):
    tasks, truth = _export(study)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    assert _bench(study, "score", "--coders", str(export), "--label-set", "union", "--undefined", "zero",
                  "--macro-f1", "mean", *BOOTSTRAP) == 0                    # no flag needed for valid codes
    printed = capsys.readouterr().out
    scores = json.loads(study.scores.read_text())
    table = scores["table1"]
    refs = _references(study)
    label_space = set(pd.read_parquet(study.codes)["code"])
    outside = [(c, h) for _, h, codes in truth for c in codes if c not in label_space]
    assert outside, "the export must hold valid codes outside the label space"
    predicted = {c for _, _, codes in truth for c in codes}
    _assert_table_matches(table, _sklearn_rows(truth, refs, "union", predicted))
    _assert_table_matches(scores["profiles"]["corrected"], _sklearn_rows(truth, refs, "reference", set()))
    # Wrong codes lower precision: every outside code is a false positive in micro.
    humans = table["rows"][0]
    assert humans["micro"]["precision"] < 1.0
    # Counted and listed, in scores.json and in the printed counts line.
    assert table["counts"]["codes_outside_label_space"] == len(outside)
    assert table["counts"]["annotations_outside_label_space"] == len(truth)
    assert table["counts"]["unknown_codes"] == 0
    listed = {o["code"]: o["n_annotations"] for o in table["outside_label_space"]}
    assert listed == pd.Series([c for c, _ in outside]).value_counts().to_dict()
    validation = table["conventions"]["validation"]
    assert validation["catalogue"] == "code system" and validation["n_label_space"] == len(label_space)
    assert validation["n_codes"] == len(pd.read_parquet(study.code_system)) > len(label_space)
    assert f"codes outside label space {len(outside)}" in printed
    assert f"not the label space ({len(label_space):,} codes); {len(listed)} distinct valid codes outside" in printed
    # The report says which catalogue validated, beside Table 1's conventions.
    assert _bench(study, "report") == 0
    html = (study.report_dir / "index.html").read_text(encoding="utf-8")
    assert (f"checked against the <strong>code system</strong> ({validation['n_codes']:,} valid ICD-9-CM codes" in html
            and f"({len(outside)} such codes in {len(truth)} annotations)" in html)
    titles = pd.read_parquet(study.code_system).set_index("code")["long_title"]
    plain = [c for c in listed if re.fullmatch(r"[\w ,]+", titles[c])]          # no escaping in the page's JSON
    assert plain and all(titles[c] in html for c in plain)                       # the drill-down titles them


def test_strings_that_are_no_code_are_still_refused(study: Study, tmp_path: Path, capsys):
    tasks, truth = _export(study)
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] += ["999.99", "40l.9"]   # no ICD-9-CM code
    export = tmp_path / "typo.json"
    export.write_text(json.dumps(tasks))
    err = _fails(study, capsys, "score", "--coders", str(export), *BOOTSTRAP)
    assert "codes not in the code system" in err and "task 1: 40L.9, 999.99;" in err, err
    for code in truth[0][2]:                                   # the valid (inside or outside) codes are not listed
        assert code not in err.split("task 1: ")[1], err
    assert _bench(study, "score", "--coders", str(export), "--allow-unknown", *BOOTSTRAP) == 0
    table = json.loads(study.scores.read_text())["table1"]
    assert table["counts"]["unknown_codes"] == 2
    assert table["counts"]["codes_outside_label_space"] == sum(
        c not in set(pd.read_parquet(study.codes)["code"]) for _, _, codes in truth for c in codes)


def test_psv_model_codes_are_checked_against_the_code_system(study: Study, tmp_path: Path, capsys):
    tasks, truth = _export(study)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    refs, outside = _references(study), _outside_label_space(study)
    hadms = sorted({h for _, h, _ in truth})
    v_code = next(c for c in outside if c.startswith("V"))
    model_sets = {h: refs[h][:2] + [v_code] for h in hadms}
    psv = tmp_path / "caml.psv"
    psv.write_text("".join(f"{h}|{'|'.join(map(_undot_v, codes))}\n" for h, codes in model_sets.items()))
    assert _bench(study, "score", "--coders", str(export), "--predictions", str(psv), *BOOTSTRAP) == 0
    model = next(r for r in json.loads(study.scores.read_text())["table1"]["rows"] if r["kind"] == "model")
    mlb = MultiLabelBinarizer()
    y = mlb.fit_transform([refs[h] for h in hadms] + [model_sets[h] for h in hadms])
    y_true, y_pred = y[: len(hadms)], y[len(hadms):]
    assert model["micro"]["precision"] == pytest.approx(precision_score(y_true, y_pred, average="micro"), abs=1e-12)
    assert model["micro"]["recall"] == pytest.approx(recall_score(y_true, y_pred, average="micro"), abs=1e-12)
    bad = tmp_path / "bad.psv"
    bad.write_text(psv.read_text() + f"{hadms[0]}|ZZZ\n")
    err = _fails(study, capsys, "score", "--coders", str(export), "--predictions", str(bad), *BOOTSTRAP)
    assert "bad.psv: codes not in the code system" in err and f"hadm_id {hadms[0]}: ZZZ" in err, err
    assert _bench(study, "score", "--coders", str(export), "--predictions", str(bad), "--allow-unknown", *BOOTSTRAP) == 0


def test_study_prepared_before_the_code_system_is_told_to_prepare_again(study: Study, tmp_path: Path, capsys):
    tasks, _ = _export(study)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    study.code_system.unlink()
    err = _fails(study, capsys, "score", "--coders", str(export), *BOOTSTRAP)
    assert "code_system.parquet does not exist" in err and "re-run `bench --study" in err, err
    documents = study.documents.read_bytes()
    command = shlex.split(re.search(r"re-run `bench (.+?)`", err).group(1))
    capsys.readouterr()
    assert main(command) == 0                                 # the command it names brings the study up to date
    printed = capsys.readouterr().out
    assert "code system (validates coder codes): 18,449 codes (14,567 dx, 3,882 px;" in printed, printed
    assert study.code_system.exists() and study.documents.read_bytes() == documents
    assert _bench(study, "score", "--coders", str(export), *BOOTSTRAP) == 0


def test_score_help_says_which_catalogue_validates(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "checked against the code system, not the label space" in text
    assert "A valid code that no reference has is a wrong answer" in text
