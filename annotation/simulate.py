"""Simulated coders for the demo: they code through the Label Studio API, as their own accounts.

A demo cannot ship real coder work, so ``bench simulate-coders`` stands in for the human arm. It signs in
as each coder account marked ``simulated`` in ``coders.json`` (a fresh random password is set through
``label-studio reset_password`` and kept in memory, then the coder's own token is read from
``/api/current-user/token``) and posts one annotation per assigned task with *that coder's* token, so the
export, ``bench pull`` and the scorer see exactly what they would see from people. It never acts as an
account not marked simulated, and it only runs against the study's own local server.

**Behaviour model** (each coder draws its own rates from the seed; every choice per note comes from an
RNG seeded by (seed, coder, hadm_id), so a re-run reproduces the same annotations). The coders read the
reference codes from the study files, never from Label Studio:

- *Under-coding*: each reference code is missed with probability ``miss_dx`` (about 0.25) for diagnoses
  or ``miss_px`` (about 0.40) for procedures, plus ``rare_penalty`` (0.20) when the code is rare in
  training (``train_count <= 5``). Coders code fewer codes than the reference, as in the paper.
- *Specificity errors*: a code that is not missed is replaced, with probability ``sibling_rate`` (about
  0.12), by a sibling from the shortlist in the same 3-character category ("428.0" -> "428.9").
- *Vocabulary*: a reference code outside the shortlist cannot be picked; with probability 0.4 the coder
  picks a shortlist sibling instead, else misses it (this is what vocabulary coverage caps).
- *Extra codes*: Poisson(``extra_rate`` about 0.4) codes per note that the reference lacks: half a
  sibling of a coded category, half a frequent shortlist code (weighted by training count).
- *Lead time*: lognormal, median ``240 s * speed * sqrt(n_reference / 10)``, sigma 0.45.
- *Flags*: about 1% of notes flagged "insufficient documentation", 0.5% skipped (``was_cancelled``).
- *Agreement*: notes the design gives to several coders (``overlap:K``) are coded independently by each,
  so their agreement reflects the model's error rates.
"""

from __future__ import annotations

import math
import secrets
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from annotation.accounts import Coder, coder_token, read_coders, set_passwords
from annotation.client import Connection
from annotation.projects import codes_result, load_state, read_shortlist
from benchmark.errors import UserError
from benchmark.study import Study

RARE_TRAIN_COUNT = 5


@dataclass(frozen=True)
class CoderModel:
    """One simulated coder's error rates (see the module docstring)."""

    miss_dx: float
    miss_px: float
    rare_penalty: float
    sibling_rate: float
    extra_rate: float
    speed: float
    flag_rate: float = 0.01
    skip_rate: float = 0.005

    @classmethod
    def draw(cls, rng: np.random.Generator) -> CoderModel:
        return cls(miss_dx=rng.uniform(0.18, 0.32), miss_px=rng.uniform(0.32, 0.48), rare_penalty=0.20,
                   sibling_rate=rng.uniform(0.08, 0.16), extra_rate=rng.uniform(0.25, 0.6),
                   speed=rng.uniform(0.8, 1.25))


@dataclass(frozen=True)
class Vocabulary:
    """What the simulated coders know about codes: the shortlist, categories, training counts."""

    shortlist: list[str]
    in_shortlist: frozenset[str]
    category: dict[str, str]
    system: dict[str, str]
    train_count: dict[str, int]
    siblings: dict[str, list[str]]       # category -> shortlist codes in it
    frequent: list[str]
    frequent_p: np.ndarray

    @classmethod
    def from_study(cls, study: Study) -> Vocabulary:
        shortlist = read_shortlist(study)
        cat = pd.read_parquet(study.codes, columns=["code", "system", "category", "train_count"])
        category = dict(zip(cat["code"], cat["category"].astype(str)))
        siblings: dict[str, list[str]] = defaultdict(list)
        for code in shortlist:
            siblings[category.get(code, code)].append(code)
        counts = dict(zip(cat["code"], cat["train_count"].fillna(0).astype(int)))
        weights = np.array([counts.get(c, 0) + 1.0 for c in shortlist])
        return cls(shortlist, frozenset(shortlist), category, dict(zip(cat["code"], cat["system"])), counts,
                   dict(siblings), shortlist, weights / weights.sum())


def simulate_note(model: CoderModel, vocab: Vocabulary, reference: list[str],
                  rng: np.random.Generator) -> tuple[list[str], float, bool, bool]:
    """(codes, lead time in s, insufficient-documentation flag, skipped) for one note.

    >>> vocab = Vocabulary(["428.0", "428.9", "401.9"], frozenset(["428.0", "428.9", "401.9"]),
    ...     {"428.0": "428", "428.9": "428", "401.9": "401"}, {}, {}, {"428": ["428.0", "428.9"],
    ...     "401": ["401.9"]}, ["401.9"], np.array([1.0]))
    >>> perfect = CoderModel(0, 0, 0, 0, 0, 1.0, 0, 0)
    >>> simulate_note(perfect, vocab, ["428.0", "401.9"], np.random.default_rng(0))[0]
    ['401.9', '428.0']
    """
    if rng.random() < model.skip_rate:
        return [], float(rng.lognormal(math.log(60), 0.5)), False, True
    picked: set[str] = set()
    for code in reference:
        miss = model.miss_px if vocab.system.get(code) == "px" else model.miss_dx
        if vocab.train_count.get(code, 0) <= RARE_TRAIN_COUNT:
            miss += model.rare_penalty
        siblings = [s for s in vocab.siblings.get(vocab.category.get(code, ""), []) if s != code]
        if code not in vocab.in_shortlist:
            if siblings and rng.random() < 0.4:
                picked.add(siblings[int(rng.integers(len(siblings)))])
            continue
        if rng.random() < miss:
            continue
        if siblings and rng.random() < model.sibling_rate:
            picked.add(siblings[int(rng.integers(len(siblings)))])
        else:
            picked.add(code)
    for _ in range(int(rng.poisson(model.extra_rate))):
        categories = sorted({vocab.category.get(c, "") for c in picked} & set(vocab.siblings))
        if categories and rng.random() < 0.5:
            pool = vocab.siblings[categories[int(rng.integers(len(categories)))]]
            picked.add(pool[int(rng.integers(len(pool)))])
        else:
            picked.add(vocab.frequent[int(rng.choice(len(vocab.frequent), p=vocab.frequent_p))])
    median = 240.0 * model.speed * math.sqrt(max(len(reference), 1) / 10.0)
    lead_time = float(rng.lognormal(math.log(median), 0.45))
    return sorted(picked), lead_time, bool(rng.random() < model.flag_rate), False


def _rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(p).encode()) for p in parts)])


@dataclass
class SimulationSummary:
    per_coder: dict[str, int]        # annotations posted now
    already: dict[str, int]          # tasks the coder had annotated before (skipped)
    models: dict[str, CoderModel]


def simulate_coders(study: Study, conn: Connection, seed: int = 0, workers: int = 4,
                    progress: bool = True) -> SimulationSummary:
    """Code every simulated coder's unassisted tasks through the API, as that coder."""
    from label_studio_sdk import LabelStudio
    from tqdm.auto import tqdm

    if conn.local_dir is None:
        raise UserError("simulated coders run only against the study's local server (`bench labelstudio start`), "
                        "never against a server with real coders")
    study.require("references", "codes", "shortlist")
    coders = [c for c in read_coders(study.labelstudio_dir) if c.simulated]
    if not coders:
        raise UserError("no simulated coders in coders.json: run `bench setup-labelstudio --simulated --coders ...`")
    state = load_state(study.labelstudio_dir)
    vocab = Vocabulary.from_study(study)
    catalogue = pd.read_parquet(study.codes, columns=["code", "category", "chapter"])
    refs = pd.read_parquet(study.references, columns=["hadm_id", "code"])
    reference = {int(h): sorted(g) for h, g in refs.groupby("hadm_id")["code"]}

    passwords = {c.email: secrets.token_urlsafe(16) for c in coders}
    set_passwords(conn.local_dir, passwords)
    models: dict[str, CoderModel] = {}
    jobs: list[tuple[Any, Coder, dict[str, Any], int, int]] = []
    already: dict[str, int] = {}
    for index, coder in enumerate(sorted(coders, key=lambda c: c.email)):
        token = coder_token(conn.url, coder.email, passwords[coder.email])
        client = LabelStudio(base_url=conn.url, api_key=token, timeout=60)
        models[coder.email] = CoderModel.draw(_rng(seed, "coder", index))
        already[coder.email] = 0
        for entry in state["projects"]:
            if entry["coder"] != coder.email or entry["arm"] != "unassisted":
                continue
            done = {int(t.id) for t in conn.client.tasks.list(project=entry["id"], page_size=500, fields="task_only")
                    if (getattr(t, "total_annotations", 0) or 0) + (getattr(t, "cancelled_annotations", 0) or 0)}
            for task_id in entry["task_ids"]:
                if task_id in done:
                    already[coder.email] += 1
                else:
                    jobs.append((client, coder, entry, task_id, state["tasks"][str(task_id)]))

    def post(job: tuple[Any, Coder, dict[str, Any], int, int]) -> str:
        client, coder, entry, task_id, hadm_id = job
        codes, lead_time, flag, skipped = simulate_note(models[coder.email], vocab, reference.get(hadm_id, []),
                                                        _rng(seed, coder.email, hadm_id))
        result = [] if skipped else codes_result(codes, entry["ui"], catalogue)
        if flag:
            result.append({"from_name": "insufficient_documentation", "to_name": "text", "type": "choices",
                           "value": {"choices": ["yes"]}})
        client.annotations.create(task_id, result=result, lead_time=round(lead_time, 1), was_cancelled=skipped)
        return coder.email

    posted: dict[str, int] = {c.email: 0 for c in coders}
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(jobs), desc="simulated coding", unit="note", disable=not progress) as bar:
        for email in pool.map(post, jobs):
            posted[email] += 1
            bar.update(1)
    return SimulationSummary(posted, already, models)
