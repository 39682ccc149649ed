"""perf/gpu.py runs start to finish on a CPU at toy size and ends with its one-line summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_tiny_on_cpu() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "perf" / "gpu.py"), "--tiny", "--device", "cpu"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    fields = dict(item.split("=", 1) for item in summary.split()[1:])
    assert summary.startswith("gpu_check size=tiny device=cpu")
    assert float(fields["train_notes_per_s"]) > 0 and fields["best_batch"] in {"1", "2", "4"}
    assert fields["peak_mem_gib"] == "1:n/a,2:n/a,4:n/a"
    assert fields["sdpa_backend_d16"] in fields["sdpa_runs_alone"].split("+")
    assert set(dict(x.split(":") for x in fields["attn_ms"].split(","))) == {"sdpa_d16", "sdpa_d64", "matmuls"}
    assert float(fields["mfu"]) > 0 and float(fields["matmul_peak_tflops"]) > 0
    assert float(fields["full_recipe_min"]) > 0 and fields["within_goal"] in {"yes", "no"}
    # the padded and explicit variants compute the same attention
    assert "max |diff| vs matmuls" in result.stdout
    for line in result.stdout.splitlines():
        if line.startswith("attention sdpa"):
            assert float(line.rsplit(" ", 1)[-1]) < 1e-4, line
