"""Helpers for the RAC tests: a small learnable study in the documents/references/codes contract, and runners.

``build_study`` writes a study whose notes mention their codes' title words among filler sentences, so a tiny
RAC can learn it in seconds. It follows the study data contract of the team brief exactly (the
``small_study`` fixture of tests/fixtures_study.py needs the synthetic corpus generator; this keeps the RAC
tests independent of it and fast).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.study import Study
from benchmark.text import sentence_spans, tokenize

ROOT = Path(__file__).resolve().parents[1]

CODES = [  # code, system, short title, long title
    ("428.0", "dx", "CHF NOS", "Congestive heart failure, unspecified"),
    ("401.9", "dx", "Hypertension NOS", "Unspecified essential hypertension"),
    ("250.00", "dx", "DMII wo cmp nt st uncntr", "Diabetes mellitus without mention of complication"),
    ("584.9", "dx", "Acute kidney failure NOS", "Acute kidney failure, unspecified"),
    ("486", "dx", "Pneumonia, organism NOS", "Pneumonia, organism unspecified"),
    ("427.31", "dx", "Atrial fibrillation", "Atrial fibrillation"),
    ("518.81", "dx", "Acute respiratry failure", "Acute respiratory failure"),
    ("038.9", "dx", "Septicemia NOS", "Unspecified septicemia"),
    ("276.1", "dx", "Hyposmolality", "Hyposmolality and/or hyponatremia"),
    ("285.9", "dx", "Anemia NOS", "Anemia, unspecified"),
    ("272.4", "dx", "Hyperlipidemia NEC/NOS", "Other and unspecified hyperlipidemia"),
    ("599.0", "dx", "Urin tract infection NOS", "Urinary tract infection, site not specified"),
    ("V45.81", "dx", "Aortocoronary bypass", "Aortocoronary bypass status"),
    ("E878.8", "dx", "Abn react-surg proc NEC", "Other specified surgical operations and procedures"),
    ("36.15", "px", "1 int mam-cor art bypass", "Single internal mammary-coronary artery bypass"),
    ("96.71", "px", "Cont inv mec ven <96 hrs", "Continuous invasive mechanical ventilation"),
    ("38.93", "px", "Venous cath NEC", "Venous catheterization, not elsewhere classified"),
    ("99.04", "px", "Packed cell transfusion", "Transfusion of packed cells"),
    ("45.13", "px", "Sm bowel endoscopy NEC", "Other endoscopy of small intestine"),
    ("88.72", "px", "Dx ultrasound-heart", "Diagnostic ultrasound of heart"),
]
FILLER = [
    "The patient was seen by the team and the plan was discussed with the family",
    "Vital signs were stable overnight and the patient tolerated a regular diet",
    "Medications were reviewed and reconciled at discharge",
    "Follow up with the primary care physician in two weeks",
    "Physical therapy evaluated the patient and recommended home services",
    "No acute events were noted during the stay",
]


def build_study(root: Path, n: int = 60, seed: int = 0, filler: int = 6, codes_per_note: tuple[int, int] = (2, 5),
                ) -> Study:
    """A study with ``n`` admissions (60% train, 20% dev, 20% test) over the 20 codes above."""
    rng = np.random.default_rng(seed)
    docs, refs = [], []
    splits = ["train"] * int(n * 0.6) + ["dev"] * int(n * 0.2)
    splits += ["test"] * (n - len(splits))
    for i in range(n):
        hadm = 100000 + i
        chosen = sorted(rng.choice(len(CODES), size=int(rng.integers(*codes_per_note)), replace=False))
        sentences = [f"Patient has {CODES[c][3].lower()} noted on admission" for c in chosen]
        sentences += [FILLER[j] for j in rng.integers(0, len(FILLER), size=filler)]
        rng.shuffle(sentences)
        body = " ".join(s + "." for s in sentences)
        # "<split>team" occurs in one split only: word2vec must not learn the dev/test ones
        text = ("Discharge Diagnosis:\n" + "\n".join(textwrap.wrap(body, 78))
                + f"\n\nSeen on day {i % 7 + 1} by the {splits[i]}team.\n")
        spans = sentence_spans(text)
        tokens = tokenize(text)
        docs.append({"hadm_id": hadm, "subject_id": 500000 + i, "split": splits[i], "text": text,
                     "sent_starts": [s for s, _ in spans], "sent_ends": [e for _, e in spans],
                     "tokens": " ".join(tokens), "n_tokens": len(tokens)})
        refs += [{"hadm_id": hadm, "code": CODES[c][0], "system": CODES[c][1]} for c in chosen]
    study = Study(root)
    root.mkdir(parents=True, exist_ok=True)
    documents = pd.DataFrame(docs)
    documents["sent_starts"] = documents["sent_starts"].map(lambda x: np.asarray(x, np.int32))
    documents["sent_ends"] = documents["sent_ends"].map(lambda x: np.asarray(x, np.int32))
    documents = documents.astype({"hadm_id": "int64", "subject_id": "int64", "n_tokens": "int32"})
    documents.to_parquet(study.documents, index=False)
    references = pd.DataFrame(refs).sort_values(["hadm_id", "code"]).reset_index(drop=True)
    references.to_parquet(study.references, index=False)
    train_ids = set(documents.loc[documents["split"] == "train", "hadm_id"])
    test_ids = set(documents.loc[documents["split"] == "test", "hadm_id"])
    catalogue = pd.DataFrame([{
        "code": code, "system": system, "short_title": short, "long_title": long_,
        "chapter": "synthetic", "category": code.split(".")[0],
        "train_count": int(((references["code"] == code) & references["hadm_id"].isin(train_ids)).sum()),
        "in_test": bool(((references["code"] == code) & references["hadm_id"].isin(test_ids)).any()),
        "title_source": "mimic"} for code, system, short, long_ in CODES]).sort_values("code")
    catalogue.to_parquet(study.codes, index=False)
    study.sample.write_text("".join(f"{h}\n" for h in sorted(test_ids)[:5]))
    return study


def run_module(args: list[str], env: dict[str, str] | None = None, timeout: int = 240,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root with one torch thread per process."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                             f"stderr:\n{proc.stderr[-5000:]}")
    return proc


def load_last(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
