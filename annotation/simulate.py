"""Simulated coders for the demo: they code through the Label Studio API, as their own accounts.

A demo cannot ship real coder work, so ``bench simulate-coders`` stands in for the human arm. It signs in
as each coder account marked ``simulated`` in ``coders.json`` (a fresh random password is set through
``label-studio reset_password`` and kept in memory, then the coder's own token is read from
``/api/current-user/token``) and posts one annotation per assigned task with *that coder's* token, so the
export, ``bench pull`` and the scorer see exactly what they would see from people. It never acts as an
account not marked simulated, and it only runs against the study's own local server.

Each coder draws its own rates from the seed; every choice per note comes from an RNG seeded by (seed,
coder, hadm_id), so a re-run reproduces the same annotations. The coders read the reference codes from the
study files, never from Label Studio, and pick only shortlist codes (the picker offers nothing else).
Two behaviours (``BEHAVIOURS``, ``bench simulate-coders --behaviour``):

**paper** (``PaperCoder``, the demo's default): coders who code like the RAC paper's certified coders.
Calibrated from Kim & Ganapathi (2021), Table 1, "Human coders" row, micro: precision P = 47.7 %, recall
R = 12.1 % (the row's micro Jaccard 10.7 % agrees: 1/J = 1/P + 1/R - 1 gives 10.68 %). Derivation:

- micro P = TP / picked and micro R = TP / reference codes, so the coders picked R / P = 0.121 / 0.477 =
  0.254 codes per reference code (``PAPER_PICKS_PER_REFERENCE``). With about 16 reference codes per note
  (the demo's 508 notes: 8,092 codes, 15.9 per note) that is about 4 codes per note, of which 47.7 % (1.9)
  are right and 2.1 wrong.
- Per note with n reference codes: K = 1 + Poisson(max(rho * n - 1, 0)) picks (at least one: a coder
  always codes something), rho = 0.254 times the coder's own thoroughness, drawn from U(0.85, 1.15); of
  them Binomial(K, P) are right. So E[K] = rho * n (for n >= 4) and E[TP] = P * rho * n = R * n: micro P
  tends to 47.7 % and micro R to 12.1 % on any corpus, whatever its codes per note. Precision is not
  varied per coder, so the pooled precision keeps to the paper's. Measured on the demo's 508 notes (two
  coders, overlap:40, seeds 0 to 9, `bench score --profile paper`): pooled micro P 46.5 to 50.0 (mean 47.6),
  R 11.0 to 13.4 (mean 12.5), 3.8 to 4.5 codes per note; seed 0 gives P 46.6, R 12.4.
- Right picks: reference codes in the shortlist, without replacement, weighted by sqrt(1 + training count):
  coders code the common conditions and miss the rare ones. (The study keeps no SEQ_NUM, so the principal
  diagnosis cannot be favoured.) Without a reference code left to pick, a right pick becomes a wrong one.
- Wrong picks are near misses: a share ``sibling_share`` (U(0.4, 0.6) per coder) are specificity errors, a
  shortlist code in the 3-character category of a reference code the coder did not pick ("428.0" ->
  "428.9"); the rest are frequent shortlist codes the reference lacks (weighted by training count), such as
  a chronic condition the note mentions but the reference does not code.
- Macro values are not calibrated: they depend on the label set and on the corpus's rare codes.

**careful** (``CarefulCoder``, the behaviour before the paper profile, kept exactly): coders who find most
reference codes (micro P about 88 %, R about 61 % on the demo):

- *Under-coding*: each reference code is missed with probability ``miss_dx`` (about 0.25) for diagnoses
  or ``miss_px`` (about 0.40) for procedures, plus ``rare_penalty`` (0.20) when the code is rare in
  training (``train_count <= 5``).
- *Specificity errors*: a code that is not missed is replaced, with probability ``sibling_rate`` (about
  0.12), by a sibling from the shortlist in the same 3-character category ("428.0" -> "428.9").
- *Vocabulary*: a reference code outside the shortlist cannot be picked; with probability 0.4 the coder
  picks a shortlist sibling instead, else misses it (this is what vocabulary coverage caps).
- *Extra codes*: Poisson(``extra_rate`` about 0.4) codes per note that the reference lacks: half a
  sibling of a coded category, half a frequent shortlist code (weighted by training count).

Both behaviours share:

- *Lead time*: lognormal, median ``240 s * speed * sqrt(n_reference / 10)``, sigma 0.45.
- *Flags*: about 1% of notes flagged "insufficient documentation", 0.5% skipped (``was_cancelled``).
- *Agreement*: notes the design gives to several coders (``overlap:K``) are coded independently by each,
  so their agreement reflects the model's error rates.
- *Evidence* (projects set up with ``--evidence``): for each picked code, the coder highlights the first
  place in the note where one of the synthetic corpus's evidence phrases for that code occurs
  (``benchmark.synthetic_mdace.code_spans``, the phrases the MDACE companion marks everywhere); a code
  without such a phrase gets no highlight. Not calibrated to any coder study: it exercises the path.
"""

from __future__ import annotations

import math
import secrets
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from collections.abc import Sequence
from typing import Any

import numpy as np

from annotation.accounts import coder_token, set_passwords
from annotation.client import Connection
from annotation.projects import codes_result, evidence_result, task_data
from benchmark import codesystems, study_files
from benchmark.errors import UserError
from benchmark.labelstudio_files import Coder, load_state, read_coders
from benchmark.reported import table1_rows
from benchmark.references import read_references
from benchmark.sampling import read_shortlist
from benchmark.study import Study, fingerprint
from benchmark.synthetic_mdace import code_spans

RARE_TRAIN_COUNT = 5
# Kim & Ganapathi (2021), Table 1, "Human coders" row (benchmark.reported holds the paper's tables).
_PAPER_HUMANS = next(row for row in table1_rows() if row["system"] == "Human coders")["micro"]
PAPER_PRECISION = _PAPER_HUMANS["precision"]
PAPER_RECALL = _PAPER_HUMANS["recall"]
PAPER_PICKS_PER_REFERENCE = PAPER_RECALL / PAPER_PRECISION


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
        cat = study_files.read_catalogue(study, ["code", "system", "category", "train_count"])
        category = dict(zip(cat["code"], cat["category"].astype(str)))
        siblings: dict[str, list[str]] = defaultdict(list)
        for code in shortlist:
            siblings[category.get(code, code)].append(code)
        counts = dict(zip(cat["code"], cat["train_count"].fillna(0).astype(int)))
        weights = np.array([counts.get(c, 0) + 1.0 for c in shortlist])
        return cls(shortlist, frozenset(shortlist), category, dict(zip(cat["code"], cat["system"])), counts,
                   dict(siblings), shortlist, weights / weights.sum())


@dataclass(frozen=True)
class CarefulCoder:
    """A coder who finds most reference codes (the module docstring's *careful* behaviour)."""

    miss_dx: float
    miss_px: float
    rare_penalty: float
    sibling_rate: float
    extra_rate: float
    speed: float
    flag_rate: float = 0.01
    skip_rate: float = 0.005

    @classmethod
    def draw(cls, rng: np.random.Generator) -> CarefulCoder:
        return cls(miss_dx=rng.uniform(0.18, 0.32), miss_px=rng.uniform(0.32, 0.48), rare_penalty=0.20,
                   sibling_rate=rng.uniform(0.08, 0.16), extra_rate=rng.uniform(0.25, 0.6),
                   speed=rng.uniform(0.8, 1.25))

    def pick(self, vocab: Vocabulary, reference: list[str], rng: np.random.Generator) -> set[str]:
        picked: set[str] = set()
        for code in reference:
            miss = self.miss_px if vocab.system.get(code) == "px" else self.miss_dx
            if vocab.train_count.get(code, 0) <= RARE_TRAIN_COUNT:
                miss += self.rare_penalty
            siblings = [s for s in vocab.siblings.get(vocab.category.get(code, ""), []) if s != code]
            if code not in vocab.in_shortlist:
                if siblings and rng.random() < 0.4:
                    picked.add(siblings[int(rng.integers(len(siblings)))])
                continue
            if rng.random() < miss:
                continue
            if siblings and rng.random() < self.sibling_rate:
                picked.add(siblings[int(rng.integers(len(siblings)))])
            else:
                picked.add(code)
        for _ in range(int(rng.poisson(self.extra_rate))):
            categories = sorted({vocab.category.get(c, "") for c in picked} & set(vocab.siblings))
            if categories and rng.random() < 0.5:
                pool = vocab.siblings[categories[int(rng.integers(len(categories)))]]
                picked.add(pool[int(rng.integers(len(pool)))])
            else:
                picked.add(vocab.frequent[int(rng.choice(len(vocab.frequent), p=vocab.frequent_p))])
        return picked


@dataclass(frozen=True)
class PaperCoder:
    """A coder calibrated to the paper's certified coders (the module docstring's *paper* behaviour)."""

    precision: float                 # share of picks that are reference codes
    picks_per_reference: float       # codes picked per reference code (recall / precision)
    sibling_share: float             # share of wrong picks that are siblings of a missed reference code
    speed: float
    flag_rate: float = 0.01
    skip_rate: float = 0.005

    @classmethod
    def draw(cls, rng: np.random.Generator) -> PaperCoder:
        return cls(precision=PAPER_PRECISION, picks_per_reference=PAPER_PICKS_PER_REFERENCE * rng.uniform(0.85, 1.15),
                   sibling_share=rng.uniform(0.4, 0.6), speed=rng.uniform(0.8, 1.25))

    def pick(self, vocab: Vocabulary, reference: list[str], rng: np.random.Generator) -> set[str]:
        """Right picks from the reference (frequent codes first), the rest near misses.

        >>> vocab = Vocabulary(["428.0", "428.9", "401.9"], frozenset(["428.0", "428.9", "401.9"]),
        ...     {"428.0": "428", "428.9": "428", "401.9": "401"}, {}, {}, {"428": ["428.0", "428.9"],
        ...     "401": ["401.9"]}, ["428.0", "428.9", "401.9"], np.full(3, 1 / 3))
        >>> one_right_pick = PaperCoder(precision=1.0, picks_per_reference=0.5, sibling_share=0.5, speed=1.0)
        >>> picks = one_right_pick.pick(vocab, ["428.0", "401.9"], np.random.default_rng(0))
        >>> len(picks) == 1 and picks <= {"428.0", "401.9"}
        True
        >>> never_right = PaperCoder(precision=0.0, picks_per_reference=1.0, sibling_share=1.0, speed=1.0)
        >>> sorted(never_right.pick(vocab, ["428.0", "401.9"], np.random.default_rng(0)))
        ['428.9']
        """
        n_picks = 1 + int(rng.poisson(max(self.picks_per_reference * len(reference) - 1.0, 0.0)))
        pickable = [c for c in reference if c in vocab.in_shortlist]   # the picker offers nothing else
        n_right = min(int(rng.binomial(n_picks, self.precision)), len(pickable))
        right: set[str] = set()
        if n_right:
            weights = np.sqrt(np.array([vocab.train_count.get(c, 0) + 1.0 for c in pickable]))
            chosen = rng.choice(len(pickable), size=n_right, replace=False, p=weights / weights.sum())
            right = {pickable[i] for i in chosen}
        return right | self._near_misses(vocab, reference, right, n_picks - n_right, rng)

    def _near_misses(self, vocab: Vocabulary, reference: list[str], right: set[str], n: int,
                     rng: np.random.Generator) -> set[str]:
        """``n`` distinct shortlist codes the reference lacks: siblings of missed codes, else frequent codes."""
        exclude = set(reference)
        missed_categories = {vocab.category.get(c, "") for c in reference if c not in right}
        siblings = sorted({s for cat in missed_categories for s in vocab.siblings.get(cat, [])} - exclude)
        n_siblings = min(int(rng.binomial(n, self.sibling_share)), len(siblings))
        wrong: set[str] = set()
        if n_siblings:
            wrong = {siblings[i] for i in rng.choice(len(siblings), size=n_siblings, replace=False)}
        p = vocab.frequent_p * np.array([c not in exclude and c not in wrong for c in vocab.frequent])
        n_frequent = min(n - n_siblings, int(np.count_nonzero(p)))
        if n_frequent:
            wrong |= {vocab.frequent[i] for i in rng.choice(len(p), size=n_frequent, replace=False, p=p / p.sum())}
        return wrong


CoderModel = CarefulCoder | PaperCoder
BEHAVIOURS: dict[str, type[CarefulCoder] | type[PaperCoder]] = {"paper": PaperCoder, "careful": CarefulCoder}
DEFAULT_BEHAVIOUR = "paper"


def simulate_note(model: CoderModel, vocab: Vocabulary, reference: list[str],
                  rng: np.random.Generator) -> tuple[list[str], float, bool, bool]:
    """(codes, lead time in s, insufficient-documentation flag, skipped) for one note.

    >>> vocab = Vocabulary(["428.0", "428.9", "401.9"], frozenset(["428.0", "428.9", "401.9"]),
    ...     {"428.0": "428", "428.9": "428", "401.9": "401"}, {}, {}, {"428": ["428.0", "428.9"],
    ...     "401": ["401.9"]}, ["401.9"], np.array([1.0]))
    >>> perfect = CarefulCoder(0, 0, 0, 0, 0, 1.0, 0, 0)
    >>> simulate_note(perfect, vocab, ["428.0", "401.9"], np.random.default_rng(0))[0]
    ['401.9', '428.0']
    """
    if rng.random() < model.skip_rate:
        return [], float(rng.lognormal(math.log(60), 0.5)), False, True
    picked = model.pick(vocab, reference, rng)
    median = 240.0 * model.speed * math.sqrt(max(len(reference), 1) / 10.0)
    lead_time = float(rng.lognormal(math.log(median), 0.45))
    return sorted(picked), lead_time, bool(rng.random() < model.flag_rate), False


def _rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(p).encode()) for p in parts)])


def draw_coders(emails: Sequence[str], behaviour: str = DEFAULT_BEHAVIOUR, seed: int = 0) -> dict[str, CoderModel]:
    """Each coder's rates under ``behaviour``, drawn in e-mail order (the position seeds the draw)."""
    if behaviour not in BEHAVIOURS:
        raise UserError(f"--behaviour {behaviour!r}: expected one of {', '.join(BEHAVIOURS)}")
    kind = BEHAVIOURS[behaviour]
    return {email: kind.draw(_rng(seed, "coder", index)) for index, email in enumerate(sorted(emails))}


def simulate_assignment(models: dict[str, CoderModel], vocab: Vocabulary, reference: dict[int, list[str]],
                        assignment: dict[str, Sequence[int]], seed: int = 0
                        ) -> dict[tuple[str, int], tuple[list[str], float, bool, bool]]:
    """``simulate_note`` for every (coder, admission) of ``assignment``, each note with its own seeded RNG."""
    return {(email, hadm_id): simulate_note(models[email], vocab, reference.get(hadm_id, []),
                                            _rng(seed, email, hadm_id))
            for email, hadm_ids in assignment.items() for hadm_id in hadm_ids}


@dataclass
class SimulationSummary:
    per_coder: dict[str, int]        # annotations posted now
    already: dict[str, int]          # tasks the coder had annotated before (skipped)
    models: dict[str, CoderModel]


def simulate_coders(study: Study, conn: Connection, seed: int = 0, workers: int = 4, progress: bool = True,
                    behaviour: str = DEFAULT_BEHAVIOUR) -> SimulationSummary:
    """Code every simulated coder's unassisted tasks through the API, as that coder, under ``behaviour``."""
    from label_studio_sdk import LabelStudio
    from tqdm.auto import tqdm

    if conn.local_dir is None:
        raise UserError("simulated coders run only against the study's local server (`bench labelstudio start`), "
                        "never against a server with real coders")
    study.require("references", "codes", "shortlist")
    coders = [c for c in read_coders(study.labelstudio_dir) if c.simulated]
    if not coders:
        raise UserError("no simulated coders in coders.json: run `bench setup-labelstudio --simulated --coders ...`")
    models = draw_coders([c.email for c in coders], behaviour, seed)
    state = load_state(study.labelstudio_dir)
    vocab = Vocabulary.from_study(study)
    catalogue = study_files.read_catalogue(study, ["code", "category", "chapter"])
    version = codesystems.study_version(study)  # the picker's tree levels, for the taxonomy results

    passwords = {c.email: secrets.token_urlsafe(16) for c in coders}
    set_passwords(conn.local_dir, passwords)
    jobs: list[tuple[Any, Coder, dict[str, Any], int, int]] = []
    already: dict[str, int] = {}
    for coder in sorted(coders, key=lambda c: c.email):
        token = coder_token(conn.url, coder.email, passwords[coder.email])
        client = LabelStudio(base_url=conn.url, api_key=token, timeout=60)
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
    _refuse_mixed_behaviours(study, behaviour, seed, sum(already.values()))
    assignment: dict[str, list[int]] = defaultdict(list)
    for _, coder, _, _, hadm_id in jobs:
        assignment[coder.email].append(hadm_id)
    answers = simulate_assignment(models, vocab, read_references(study, sorted(set().union(*assignment.values()))),
                                  assignment, seed)
    evidence = bool((study.step("setup-labelstudio") or {}).get("evidence"))
    texts = ({t["hadm_id"]: t["text"] for t in task_data(study, sorted({h for *_, h in jobs}))} if evidence and jobs
             else {})

    def post(job: tuple[Any, Coder, dict[str, Any], int, int]) -> str:
        client, coder, entry, task_id, hadm_id = job
        codes, lead_time, flag, skipped = answers[(coder.email, hadm_id)]
        result = [] if skipped else codes_result(codes, entry["ui"], catalogue, version)
        if evidence and not skipped:
            first = {code: code_spans(texts[hadm_id], code)[:1] for code in codes}
            result += evidence_result({code: spans for code, spans in first.items() if spans}, texts[hadm_id],
                                      catalogue, version)
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
    study.record_step("simulate-coders", {
        "fingerprint": _fingerprint(behaviour, seed), "behaviour": behaviour, "seed": seed,
        "coders": {email: asdict(model) for email, model in models.items()},
    })
    return SimulationSummary(posted, already, models)


def _fingerprint(behaviour: str, seed: int) -> str:
    return fingerprint({"behaviour": behaviour, "seed": seed})


def _refuse_mixed_behaviours(study: Study, behaviour: str, seed: int, n_done: int) -> None:
    """One study's simulated annotations come from one behaviour and seed, so its Table 1 means one thing."""
    earlier = study.step("simulate-coders")
    if n_done and earlier and earlier.get("fingerprint") != _fingerprint(behaviour, seed):
        raise UserError(
            f"{study.provenance_path}: the simulated coders already coded {n_done} task(s) with --behaviour "
            f"{earlier.get('behaviour')} --seed {earlier.get('seed')}; re-run with those to finish the open tasks, "
            f"or code with --behaviour {behaviour} --seed {seed} in a new study (--study)")
