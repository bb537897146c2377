"""benchmarks/gpu_check.py --tiny on CPU: the four parts run through the project's entry points (with an
embedded loopback Ray of its own) and the JSON holds every figure of both columns and the environment."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.integration.conftest import ray_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def gpu_check(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**ray_env(), "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)  # its Ray is its own, as `lmnas run`'s
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_tiny_writes_every_figure_of_both_columns(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_check import FIGURES, PARTS, RATES

    out = tmp_path / "gpu_check.json"
    done = gpu_check("--tiny", "--out", str(out), timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["schema"], result["mode"], result["device"]) == (1, "tiny", "cpu")
    env = result["environment"]
    assert env["torch"] == torch.__version__ and env["cpu"] and env["commit"]
    assert {"cuda", "gpu", "gpu_count", "ray", "transformers"} <= set(env)
    assert set(result["parts"]) == set(PARTS)
    for part in PARTS:
        columns = result["parts"][part]
        # the check's column in bf16 (what a GPU runs), the CPU baseline in fp32
        assert (columns["device"]["precision"], columns["cpu"]["precision"]) == ("bf16", "fp32")
        for name in ("device", "cpu"):
            for figure in FIGURES[part]:
                value = columns[name][figure]
                assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (part, name, figure, value)
            assert columns[name]["peak_memory_kind"].startswith("rss")
        ratio = result["ratios"][part]
        assert ratio["peak_memory_vs_cpu"] > 0
        assert any(f"{k}_vs_cpu" in ratio for k in RATES)
    search = result["parts"]["weight_sharing_search"]
    assert (search["device"]["trials"], search["cpu"]["trials"]) == (result["columns"]["device"]["trials"],
                                                                      result["columns"]["cpu"]["trials"])
    assert search["device"]["resources"]["cpu"] == 0.5  # fractional resources per trial
    steps = result["parts"]["supernet_training"]["device"]["steps"]
    assert steps == result["columns"]["device"]["supernet_steps"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for machines without CUDA")
def test_without_a_gpu_the_paper_run_says_one_is_needed(tmp_path: Path) -> None:
    done = gpu_check("--out", str(tmp_path / "x.json"), timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["gpu_check: needs a CUDA GPU for the paper-scale run; use --tiny for a CPU smoke run, or --allow-cpu"]
    assert not (tmp_path / "x.json").exists()
