"""Training configuration: one dataclass, three presets, and typed ``--set key=value`` overrides.

``paper`` is the seed's recipe at full size (section 4: d 300, n_x 4,096, 4 layers, Adam 8e-5, global batch
16, early stopping on dev P@8 with patience 3, sentence permutation x3, SWA). ``small`` is sized for the demo:
train + predict on the default synthetic corpus (~3,100 training notes, ~4,200 codes) in minutes on 2 CPU
cores, so it is smaller in every dimension, reads only the first 256 tokens, and runs 4 epochs without the
sentence-shuffled copies. Three departures make so small a model learn in so few steps (each measured on the demo
corpus; perf/RESULTS.md): a per-code W3 (with its per-code bias; with the paper's shared W3 a few hundred steps
learn only the global base rate), identity-initialised convolutions (with PyTorch's random ones the model stays
at the code-frequency prior, dev P@8 0.29, for epochs) and a larger learning rate (8e-5 learns almost nothing in a
few hundred steps). With them, dev P@8 rises 0.33, 0.38, 0.46, 0.51 over the 4 epochs, above a TF-IDF + logistic
regression baseline that reads the same 256 tokens (perf/rac_baseline.py).
Its cost is dominated by the code attention (n_codes x n_x scores per note, memory-bound at small d). ``tiny`` is for tests (seconds per run).

The resolved config is written to the run directory (``config.json`` and ``config.toml``); a re-run of the same
name must resolve to the same config, or it would silently mix two recipes in one run.

SWA schedule. The paper says the weights were "averaged every 5 epochs from the first epoch". We read it as: a
snapshot of the weights after epoch ``swa_start`` (1 = the first) and then after every ``swa_every``-th epoch
(1, 6, 11, ...), averaged with equal weight by ``torch.optim.swa_utils.AveragedModel``. The other reading (a
snapshot every epoch, with an average published every 5) gives the same model at epochs 5, 10, ... only if
snapshots are taken every epoch: set ``swa_every=1`` for that.

Ablations (``--ablate``, the paper's Table 2 rows "RAC - SWA", "RAC - SWA - SentPerm" and "RAC - SWA - SentPerm
- CodeTitles"): ``swa`` takes no SWA snapshots, so the best-on-dev checkpoint is the model; ``sentperm`` trains
without the sentence-shuffled copies (``augment_copies=0``); ``titles`` replaces the title encoder by one query
per code learned from a random start (``rac.model.CodeQueries``, the way CAML's label attention is). The resolved
config records them in ``ablate``, and ``system_name`` names the run after its Table 2 row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from benchmark.errors import UserError

if TYPE_CHECKING:  # rac.model imports torch; this module stays light so `bench --help` stays fast
    from rac.model import RACConfig


@dataclass
class TrainConfig:
    """Everything that decides what a run computes (model sizes, word2vec, optimisation, schedule)."""

    # --- model (RACConfig; vocab_size and n_codes come from the data) ---
    d: int = 300
    n_x: int = 4096
    n_t: int = 36
    n_layers: int = 4
    d_ff: int = 1024
    kernel: int = 10
    dropout: float = 0.1
    per_code_w3: bool = False
    identity_convs: bool = False  # convolutions start as the identity (RAC.identity_init); paper: PyTorch default
    # --- word2vec (skip-gram, gensim 4), trained on the train split only ---
    w2v_window: int = 5
    w2v_min_count: int = 10
    w2v_epochs: int = 5
    w2v_workers: int = 2
    # --- optimisation ---
    lr: float = 8e-5
    adam_eps: float = 1e-8      # Adam's epsilon (PyTorch's default; see the DDP test for why it is a knob)
    prior_bias: bool = True     # output bias starts at the log-odds of each code's train frequency
    global_batch: int = 16      # = batch_per_rank x world size x gradient accumulation
    batch_per_rank: int = 4     # notes per micro-batch on one rank
    epochs: int = 10
    patience: int = 3           # early stopping on dev P@8
    augment_copies: int = 2     # sentence-shuffled copies per note and epoch (x3 = original + 2)
    swa_start: int = 1          # first epoch (1-based) whose weights enter the SWA average
    swa_every: int = 5          # then every swa_every-th epoch
    seed: int = 1234
    # --- mechanics (do not change what is computed, except max_steps) ---
    bucket_batches: int = 50    # length bucketing: sort pools of this many global batches by length
    ckpt_every: int = 200       # optimizer steps between mid-epoch checkpoints (0 = epoch ends only)
    keep_epoch_checkpoints: int = 2  # epoch checkpoints kept on disk (0 = all)
    eval_batch: int = 8
    max_steps: int = 0          # stop after this many optimizer steps (0 = no limit; smoke and perf runs)
    # --- ablations of the paper's Table 2 (--ablate; comma-separated, in ABLATIONS order) ---
    ablate: str = ""

    @property
    def ablations(self) -> list[str]:
        return [name for name in self.ablate.split(",") if name]

    @property
    def swa(self) -> bool:
        """Whether epochs end with SWA snapshots (``--ablate swa`` turns them off)."""
        return "swa" not in self.ablations

    @property
    def code_titles(self) -> bool:
        """Whether the code queries come from the titles (RACConfig.code_titles; ``--ablate titles``)."""
        return "titles" not in self.ablations

    @property
    def system_name(self) -> str:
        """The run's name as a row of the paper's Table 2.

        >>> resolve("tiny", ablate="titles,swa").system_name
        'RAC - SWA - CodeTitles'
        """
        return " - ".join(["RAC", *(ABLATIONS[name] for name in self.ablations)])

    def model_config(self, vocab_size: int, n_codes: int) -> RACConfig:
        """The model's own config, with the sizes that come from the data."""
        from rac.model import RACConfig

        names = {f.name for f in fields(RACConfig)} - {"vocab_size", "n_codes"}
        return RACConfig(vocab_size=vocab_size, n_codes=n_codes, **{n: getattr(self, n) for n in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self, world_size: int) -> int:
        """Check the config against the world size; return the gradient-accumulation steps."""
        positive = ["d", "n_x", "n_t", "n_layers", "d_ff", "kernel", "global_batch", "batch_per_rank", "epochs",
                    "eval_batch", "w2v_window", "w2v_min_count", "w2v_epochs", "w2v_workers", "swa_start",
                    "swa_every", "bucket_batches"]
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"config: {name}={getattr(self, name)} must be at least 1")
        for name in ("patience", "augment_copies", "ckpt_every", "keep_epoch_checkpoints", "max_steps"):
            if getattr(self, name) < 0:
                raise UserError(f"config: {name}={getattr(self, name)} must not be negative")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"config: dropout={self.dropout} must be in [0, 1)")
        if self.adam_eps <= 0:
            raise UserError(f"config: adam_eps={self.adam_eps} must be positive")
        if self.lr <= 0:
            raise UserError(f"config: lr={self.lr} must be positive")
        parse_ablations(self.ablate)
        if "sentperm" in self.ablations and self.augment_copies:
            raise UserError(f"config: ablate={self.ablate} trains without sentence permutation, but "
                            f"augment_copies={self.augment_copies}; drop --set augment_copies=...")
        per_step = self.batch_per_rank * world_size
        if self.global_batch % per_step:
            raise UserError(
                f"config: global_batch={self.global_batch} is not a multiple of batch_per_rank x world size "
                f"= {self.batch_per_rank} x {world_size} = {per_step}; change --set global_batch=... or "
                f"--set batch_per_rank=..., or the number of processes"
            )
        return self.global_batch // per_step


# --ablate name -> the label of the paper's Table 2 row without it (in the order the rows remove them)
ABLATIONS = {"swa": "SWA", "sentperm": "SentPerm", "titles": "CodeTitles"}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": dict(d=32, n_x=256, n_t=24, n_layers=1, d_ff=64, kernel=5, per_code_w3=True, identity_convs=True,
                  lr=3e-3, epochs=4, patience=2,
                  global_batch=16, batch_per_rank=16, augment_copies=0, swa_start=1, swa_every=1,
                  w2v_min_count=5, w2v_epochs=1, ckpt_every=50, keep_epoch_checkpoints=1, eval_batch=32),
    "tiny": dict(d=16, n_x=64, n_t=8, n_layers=1, d_ff=32, kernel=3, lr=3e-3, epochs=3, patience=3,
                 global_batch=8, batch_per_rank=2, w2v_min_count=1, w2v_epochs=1, w2v_workers=1, swa_start=1,
                 swa_every=1, ckpt_every=0, keep_epoch_checkpoints=0, eval_batch=16, bucket_batches=4),
}


def resolve(preset: str = "paper", overrides: list[str] | None = None, epochs: int | None = None,
            ablate: str = "") -> TrainConfig:
    """A preset, then ``key=value`` overrides (typed by the field), then ``--epochs`` and ``--ablate``.

    ``--ablate sentperm`` sets ``augment_copies=0`` (an explicit ``--set augment_copies=N`` contradicts it and is
    refused by ``TrainConfig.validate``).

    >>> resolve("tiny", ["d=8", "per_code_w3=true"]).d
    8
    >>> resolve("tiny", ["lr=fast"])
    Traceback (most recent call last):
    ...
    benchmark.errors.UserError: --set lr=fast: expected a float
    """
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    types = {f.name: f.type for f in fields(TrainConfig)}
    overridden: set[str] = set()
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise UserError(f"--set {item!r}: expected key=value")
        if key not in types:
            raise UserError(f"--set {item}: unknown key {key!r}; known keys: {', '.join(types)}")
        values[key] = _parse(item, types[key], raw.strip())
        overridden.add(key)
    if epochs is not None:
        values["epochs"] = epochs
    if ablate:
        values["ablate"] = ablate
    values["ablate"] = parse_ablations(values.get("ablate", ""))
    if "sentperm" in values["ablate"].split(",") and "augment_copies" not in overridden:
        values["augment_copies"] = 0
    return TrainConfig(**values)


def parse_ablations(text: str) -> str:
    """``--ablate`` as the config stores it: known names, each once, in ABLATIONS order.

    >>> parse_ablations("titles, swa,swa")
    'swa,titles'
    >>> parse_ablations("swa,dropout")
    Traceback (most recent call last):
    ...
    benchmark.errors.UserError: --ablate swa,dropout: unknown ablation 'dropout'; choose from swa, sentperm, titles
    """
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(names - ABLATIONS.keys())
    if unknown:
        raise UserError(f"--ablate {text}: unknown ablation {unknown[0]!r}; choose from {', '.join(ABLATIONS)}")
    return ",".join(name for name in ABLATIONS if name in names)


def _parse(item: str, kind: str, raw: str) -> int | float | bool | str:
    # dataclass field types are strings under `from __future__ import annotations`
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise UserError(f"--set {item}: expected {'an integer' if kind == 'int' else 'a float'}") from None
    if kind == "str":
        return raw
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise UserError(f"--set {item}: expected true or false")
    raise TypeError(f"unsupported config field type {kind}")


def from_dict(data: dict[str, Any]) -> TrainConfig:
    """The config stored in a run directory (unknown keys are an error: a newer tool wrote it)."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(data) - known
    if unknown:
        raise UserError(f"run config has unknown keys {sorted(unknown)}; it was written by another version")
    return TrainConfig(**data)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run options shared by ``python -m rac.train`` and ``bench train``."""
    parser.add_argument("--name", required=True, help="run name: the run directory is study/runs/NAME")
    parser.add_argument("--preset", default="paper", choices=list(PRESETS),
                        help="paper: the seed's recipe at full size; small: minutes on a CPU (demo); tiny: tests")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value (repeatable), e.g. --set lr=1e-4 --set n_layers=2")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (overrides the preset)")
    parser.add_argument("--ablate", default="", metavar="NAMES",
                        help="train an ablation of the paper's Table 2, comma-separated: swa (no SWA average), "
                             "sentperm (no sentence-permuted copies), titles (per-code queries from a random "
                             "start instead of code-title embeddings), e.g. --ablate swa,sentperm,titles")


def dumps(config: TrainConfig) -> str:
    return json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n"
