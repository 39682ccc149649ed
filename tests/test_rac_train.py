"""RAC data pipeline, word2vec and the single-process trainer (tiny preset, CPU, seconds per run)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from benchmark.errors import UserError
from benchmark.study import Study
from rac import word2vec
from rac.config import resolve
from benchmark.text import token_spans
from rac.data import BucketSampler, collate, example_ids
from rac.model import RAC, RACConfig
from rac.run import build_model, load_data, load_weights
from rac.train import gathered_probs, scores, train, tune_threshold
from tests.rac_helpers import build_study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return build_study(tmp_path_factory.mktemp("rac-train") / "study", n=40)


@pytest.fixture(scope="module")
def finished(study: Study) -> tuple[Study, str]:
    """A complete tiny run: 3 epochs, SWA snapshots after epochs 1 and 3, every epoch checkpoint kept."""
    train(study, "base", resolve("tiny", ["swa_every=2", "patience=0"]))
    return study, "base"


def test_token_offsets_match_the_study_tokens(study: Study) -> None:
    docs = pd.read_parquet(study.documents)
    for text, tokens in zip(docs["text"], docs["tokens"]):
        words, starts, ends = token_spans(text)
        assert words == tokens.split()
        assert [text[s:e].lower() for s, e in zip(starts, ends)] == words


def test_augmentation_keeps_the_tokens_and_the_labels(study: Study) -> None:
    cfg = resolve("tiny", ["n_x=512"])
    data = load_data(study, _run_with_word2vec(study, cfg), cfg)
    notes = data.notes["train"]
    changed = 0
    for index in range(len(notes)):
        original = notes.ids[index]
        for copy in (1, 2):
            shuffled = example_ids(notes, index, copy, seed=7, epoch=0)
            assert Counter(shuffled.tolist()) == Counter(original.tolist())
            changed += not np.array_equal(shuffled, original)
            # fresh each epoch, reproducible within one
            assert np.array_equal(shuffled, example_ids(notes, index, copy, seed=7, epoch=0))
        assert not all(np.array_equal(example_ids(notes, index, 1, 7, 0), example_ids(notes, index, 1, 7, e))
                       for e in range(1, 4))
    assert changed > len(notes)  # most copies really are reordered
    # A copy is trained with its note's labels: the sampler's examples name (note, copy).
    sampler = BucketSampler(notes.lengths, 2, 8, 2, rank=0, world_size=1, seed=7, bucket_batches=4)
    examples = [e for step in sampler for micro in step for e in micro]
    assert Counter(note for note, _ in examples) == Counter({i: 3 for i in range(len(notes))}) + Counter(
        note for note, _ in examples[3 * len(notes):])  # the last batch is completed from the epoch start


def test_sampler_is_the_same_for_any_world_size_and_resumes(study: Study) -> None:
    lengths = np.arange(24) % 7 + 1
    one = BucketSampler(lengths, 2, 8, 2, rank=0, world_size=1, seed=3, bucket_batches=2)
    ranks = [BucketSampler(lengths, 2, 8, 2, rank=r, world_size=2, seed=3, bucket_batches=2) for r in (0, 1)]
    for step_one, step0, step1 in zip(one, *ranks):
        assert [e for mb in step_one for e in mb] == [e for mb in step0 + step1 for e in mb]
    first = BucketSampler(lengths, 2, 8, 2, 0, 1, seed=3, bucket_batches=2)
    steps = iter(first)
    next(steps), next(steps)
    resumed = BucketSampler(lengths, 2, 8, 2, 0, 1, seed=3, bucket_batches=2)
    resumed.load_state_dict(first.state_dict())
    assert list(resumed) == list(steps)


def test_word2vec_sees_the_train_split_only(finished: tuple[Study, str]) -> None:
    study, name = finished
    words, vectors = word2vec.load(study.runs_dir / name / word2vec.FILENAME)
    assert "trainteam" in words and "devteam" not in words and "testteam" not in words
    assert vectors.shape == (len(words), resolve("tiny").d)
    docs = pd.read_parquet(study.documents)
    train_vocab = {w for t in docs.loc[docs["split"] == "train", "tokens"] for w in t.split()}
    assert set(words) <= train_vocab


def test_run_directory_and_metrics(finished: tuple[Study, str]) -> None:
    study, name = finished
    run = study.runs_dir / name
    for path in ("config.json", "config.toml", "word2vec.txt", "metrics.jsonl", "best.pt", "swa.pt",
                 "summary.json", "checkpoints/last.pt"):
        assert (run / path).exists(), path
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["swa_snapshot"] for r in rows] == [True, False, True]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selected"] in ("best", "swa")
    for model in summary["models"].values():
        assert 0 < model["threshold"] < 1 and {"dev", "test"} <= model.keys()
    assert study.step(f"train-{name}")["selected"] == summary["selected"]
    # a finished run is not trained again; the same name with another recipe is refused
    assert train(study, name, resolve("tiny", ["swa_every=2", "patience=0"]))["selected"] == summary["selected"]
    (run / "summary.json").rename(run / "summary.json.bak")
    try:
        with pytest.raises(UserError, match="another config .*lr"):
            train(study, name, resolve("tiny", ["swa_every=2", "patience=0", "lr=0.1"]))
    finally:
        (run / "summary.json.bak").rename(run / "summary.json")


def test_swa_equals_the_hand_average_of_its_snapshots(finished: tuple[Study, str]) -> None:
    study, name = finished
    ckpts = study.runs_dir / name / "checkpoints"
    snapshots = [torch.load(ckpts / f"epoch-{e:03d}.pt", weights_only=False)["model"] for e in (1, 3)]
    swa = torch.load(study.runs_dir / name / "swa.pt")
    assert swa["n_averaged"] == 2
    for key, value in swa["model"].items():
        torch.testing.assert_close(value, (snapshots[0][key] + snapshots[1][key]) / 2, rtol=1e-6, atol=1e-7)


def test_threshold_tuning_maximises_micro_f1() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((30, 12)).astype(np.float32)
    labels = [np.flatnonzero(row > 0.6) for row in probs + rng.normal(0, 0.2, probs.shape)]
    threshold, f1 = tune_threshold(probs, labels)
    grid = [scores(probs, labels, t / 100)["micro_f1"] for t in range(1, 100)]
    assert f1 == pytest.approx(max(grid)) and scores(probs, labels, threshold)["micro_f1"] == pytest.approx(f1)


def test_overfits_twenty_notes(tmp_path: Path) -> None:
    """The paper's architecture (shared W3) memorises 20 notes: train P@8 reaches 1.0.

    A full-batch loop over the trainer's own pieces (data pipeline, model, loss); the trainer's per-epoch
    work (dev evaluation, checkpoints) would cost more than the 20-note steps themselves.
    """
    study = build_study(tmp_path / "study", n=34, codes_per_note=(8, 11), filler=2)
    cfg = resolve("tiny", ["d=64", "n_x=256", "dropout=0"])
    data = load_data(study, _run_with_word2vec(study, cfg), cfg)
    notes = data.notes["train"]
    assert len(notes) == 20 and min(len(x) for x in notes.labels) >= 8
    model = build_model(cfg, data, torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    tokens, mask, targets = collate(notes.ids, notes.labels, len(data.codes))
    p_at_8 = 0.0
    for step in range(1, 401):
        model.train()
        loss = F.binary_cross_entropy_with_logits(model(tokens, mask, titles=model.encode_titles(data.titles)),
                                                  targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            probs = gathered_probs(model, notes, data.titles, cfg, torch.device("cpu"), 0, 1)
            p_at_8 = scores(probs, notes.labels, 0.5)["p@8"]
            if p_at_8 == 1.0:
                break
    assert p_at_8 == 1.0, f"train P@8 {p_at_8} after {step} full-batch steps (loss {loss.item():.4f})"


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="global_batch=16 is not a multiple of batch_per_rank x world size"):
        resolve("paper", ["batch_per_rank=3"]).validate(world_size=2)
    assert resolve("paper").validate(world_size=2) == 2
    with pytest.raises(UserError, match="unknown key 'lrate'"):
        resolve("tiny", ["lrate=1"])
    with pytest.raises(UserError, match="expected true or false"):
        resolve("tiny", ["per_code_w3=maybe"])
    with pytest.raises(UserError, match="unknown preset"):
        resolve("huge")
    with pytest.raises(UserError, match="run `bench prepare`"):
        train(Study(tmp_path / "empty"), "x", resolve("tiny"))


def test_weights_of_another_layout_are_refused_in_one_line(tmp_path: Path) -> None:
    # checkpoints from before the title encoder became a module of its own (RAC.coder) had title_embed.* keys
    model = RAC(RACConfig(vocab_size=12, n_codes=3, d=4, n_t=2, n_layers=1, d_ff=4, kernel=2))
    before = {k.replace("coder.embed.", "title_embed."): v for k, v in model.state_dict().items()}
    with pytest.raises(UserError, match=r"best\.pt: these weights do not fit the run's model .*new --name"):
        load_weights(model, before, tmp_path / "best.pt")


def _run_with_word2vec(study: Study, cfg) -> Path:
    from rac.train import train_word2vec_for_run

    run_dir = study.runs_dir / "w2v-only"
    run_dir.mkdir(parents=True, exist_ok=True)
    train_word2vec_for_run(study, run_dir, cfg)
    return run_dir
