"""Real multi-process training (torchrun, gloo on CPU): 1 rank == 2 ranks == killed-and-resumed == 2 nodes.

Every run uses the same global batch (8 = 2 notes per micro-batch x ranks x accumulation), so the optimizer
steps see the same notes; only the all-reduce order differs, hence float tolerances. Dropout is set to 0:
with dropout each rank draws its own masks, so a 1-rank and a 2-rank run are different samples of the same
recipe (the resume test would be exact with dropout too, since RNG states are checkpointed per rank, but one
config keeps the comparisons to a single reference run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from annotation.server import free_port
from benchmark.study import Study
from rac.config import resolve
from rac.train import train
from tests.rac_helpers import ROOT, build_study, load_last, run_module

pytestmark = pytest.mark.ddp

SETTINGS = ["dropout=0", "epochs=2", "global_batch=8", "batch_per_rank=2", "ckpt_every=2", "w2v_workers=1",
            "adam_eps=1e-6"]
ENV = {"GLOO_SOCKET_IFNAME": "lo", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}  # see rac/train.py


def _train_args(study: Path, name: str, extra: list[str] = ()) -> list[str]:
    args = ["-m", "rac.train", "--study", str(study), "--name", name, "--preset", "tiny"]
    for item in [*SETTINGS, *extra]:
        args += ["--set", item]
    return args


def _torchrun(nproc: int, study: Path, name: str, extra: list[str] = (), launcher: list[str] = (),
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_module(["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *launcher,
                       *_train_args(study, name, extra)], env={**ENV, **(env or {})})


def _assert_same(a: dict, b: dict, what: str, rtol: float = 1e-5, atol: float = 5e-6) -> None:
    """Element-wise closeness. Why atol 5e-6 (0.2% of one lr step) and adam_eps 1e-6: the title embedding's
    gradients are ~1e-7, so Adam's update lr*m/(sqrt(v)+eps) divides float-rounding differences of the
    summation order by a tiny sqrt(v); with eps 1e-8 two correct runs differ by ~1% of a step there."""
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, msg=lambda m: f"{what} {key}: {m}")


def _moments(ckpt: dict, which: str) -> dict:
    names = list(ckpt["model"])  # Adam's state is indexed by parameter order
    return {names[i]: s[which] for i, s in ckpt["optimizer"]["state"].items()}


def _assert_same_gradients(one_step1: dict, two_step1: dict) -> None:
    """After one Adam step the first moment is (1 - beta1) x gradient: every parameter's gradient, the coder's
    included (all-reduced by hand outside DDP), equals the single-process one (relative error of the whole
    tensor; Adam hides scale errors in the weights, so this is the check for them)."""
    one, two = _moments(one_step1, "exp_avg"), _moments(two_step1, "exp_avg")
    assert one.keys() == two.keys() and any(n.startswith("coder.") for n in one)
    for name in one:
        error = (one[name] - two[name]).norm() / one[name].norm().clamp_min(1e-30)
        assert error < 1e-5, f"step-1 gradient of {name}: relative error {error:.2e}"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_study(tmp_path_factory.mktemp("rac-ddp") / "study", n=40).root


@pytest.fixture(scope="module")
def reference(study: Path) -> dict:
    """A 1-process run (in this process, no torch.distributed) and a 2-rank torchrun run, each stopped after
    one optimizer step (its gradients) and then resumed to the end."""
    out = {}
    one = resolve("tiny", SETTINGS + ["max_steps=1"])
    train(Study(study), "one", one)
    out["one-step1"] = load_last(study / "runs" / "one")
    train(Study(study), "one", resolve("tiny", SETTINGS))
    out["one"] = load_last(study / "runs" / "one")
    _torchrun(2, study, "two", ["max_steps=1"])
    out["two-step1"] = load_last(study / "runs" / "two")
    proc = _torchrun(2, study, "two")
    assert "resumed run two at epoch 1, step 1" in proc.stdout
    out["two"] = load_last(study / "runs" / "two")
    return out


def test_two_ranks_equal_one_rank(reference: dict) -> None:
    _assert_same_gradients(reference["one-step1"], reference["two-step1"])
    _assert_same(reference["one"]["model"], reference["two"]["model"], "final weights")
    _assert_same(reference["one"]["swa"], reference["two"]["swa"], "SWA weights")
    assert reference["two"]["state"]["global_step"] == reference["one"]["state"]["global_step"] > 2


def test_two_ranks_equal_one_rank_without_code_titles(study: Path) -> None:
    """The "- CodeTitles" ablation's per-code queries take the title encoder's by-hand gradient path."""
    settings = ["ablate=titles", "max_steps=1"]
    train(Study(study), "one-queries", resolve("tiny", SETTINGS + settings))
    _torchrun(2, study, "two-queries", settings)
    one, two = (load_last(study / "runs" / name) for name in ("one-queries", "two-queries"))
    assert "coder.queries" in one["model"] and one["config"]["ablate"] == two["config"]["ablate"] == "titles"
    _assert_same_gradients(one, two)


def test_killed_rank_resumes_to_same_weights(study: Path, reference: dict) -> None:
    proc = _torchrun(2, study, "killed", launcher=["--max-restarts=1"], env={"RAC_FAULT_AFTER_STEP": "1:3"})
    assert (study / "runs" / "killed" / ".fault-injected").exists()
    assert "resumed run killed at epoch 1, step 2" in proc.stdout  # the step-2 checkpoint, not a fresh start
    final = load_last(study / "runs" / "killed")
    # same ranks, same threads, same batches, restored RNG and Adam state: bit for bit the uninterrupted run
    for key, value in reference["two"]["model"].items():
        assert torch.equal(value, final["model"][key]), key
    for key, value in reference["two"]["swa"].items():
        assert torch.equal(value, final["swa"][key]), key


def test_two_nodes_on_loopback(study: Path, reference: dict) -> None:
    port = free_port()
    procs = []
    for node in range(2):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}",
                   "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
                   "--rdzv-id=rac-test", "--local-addr=127.0.0.1", *_train_args(study, "nodes")]
        procs.append(subprocess.Popen(command, cwd=ROOT, env={**os.environ, **ENV,
                                                               "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    # both nodes see the same run directory here; on real clusters it lives on a shared filesystem
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
    _assert_same(reference["two"]["model"], load_last(study / "runs" / "nodes")["model"], "2-node weights")


# One rank's native threads before the group, with a trained DDP step, and after process_group() returns.
TEARDOWN = """
import os, torch, torch._dynamo  # what process_group imports, so only gloo's threads can differ
from torch.nn.parallel import DistributedDataParallel as DDP
from rac.train import process_group
def threads(): return len(os.listdir("/proc/self/task"))
before = threads()
with process_group(torch.device("cpu")):
    model = DDP(torch.nn.Linear(4, 4))
    model(torch.ones(2, 4)).sum().backward()
    during = threads()
    del model
print(before, during, threads())
"""


def test_process_group_teardown_joins_gloo_threads() -> None:
    """Leaving ``process_group`` frees the gloo backend there and then: its threads are gone before the
    interpreter exits (left to exit, one can outlive the interpreter and abort the rank after its work)."""
    env = {**os.environ, **ENV, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, "-c", TEARDOWN], cwd=ROOT, env={**env, "RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    for rank, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        before, during, after = map(int, out.split())
        assert during > before, f"rank {rank}: gloo started no threads ({before} -> {during})"
        assert after == before, f"rank {rank}: {after - before} gloo threads outlived the process group"
