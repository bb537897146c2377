"""benchmarks/flash_fidelity.py's summary: taus per seed on the objective and the other held-out scores."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.module_file import load_module

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark() -> Any:
    return load_module(ROOT / "benchmarks" / "flash_fidelity.py")


def row(seed: int, size: int, accuracy: float, loss: float) -> dict[str, Any]:
    config = {"hidden_size": size, "bottleneck_size": 64, "num_heads": 4, "intermediate_size": 128, "num_ffn": 1}
    flash = {"mlm_accuracy": accuracy, "mlm_heldout_loss": loss, "agreement": size / 1000}
    long = {"mlm_accuracy": size / 1000, "mlm_heldout_loss": -size / 100, "agreement": size / 1000}
    return {"seed": seed, "config": config, "flash": flash, "long": long, "flash_s": 1.0, "long_s": 10.0,
            "latency_ms": size / 10, "latency_cv": 0.01, "flops": size * 1000, "params": size}


def test_tied_accuracy_and_a_loss_that_orders_are_both_reported() -> None:
    fidelity = load_benchmark()
    # Flash accuracy is tied (uninformative); the held-out loss orders the students as the long run does.
    rows = [row(seed, size, 0.05, -size / 100) for seed in (0, 1) for size in (128, 256, 384, 512)]
    text = "\n".join(fidelity.summary(rows, "mlm_accuracy", 10.0))
    assert "on mlm_accuracy: nan" in text  # a constant ranking has no tau
    assert "on mlm_heldout_loss: 1.000" in text and "on agreement: 1.000" in text
    assert "cost ratio long / flash 10.0x" in text
    assert "latency vs FLOPs over 4 students: Spearman rho 1.000" in text


def test_flops_baseline_is_ranked_against_the_long_run() -> None:
    fidelity = load_benchmark()
    # FLOPs grow with size, and so does the long run's accuracy: the zero-cost ranking is perfect here.
    rows = [row(0, size, 0.05 + (size % 3) / 100, -size / 100) for size in (128, 256, 384, 512)]
    text = "\n".join(fidelity.summary(rows, "mlm_accuracy", 10.0))
    assert "ranking by forward FLOPs (no training) against the long run: 1.000" in text


def test_flash_overrides_parse_yaml_values_and_reject_unknown_options() -> None:
    fidelity = load_benchmark()
    assert fidelity.parse_overrides(["alpha=0.9", "hidden_input=masked", "eval_blocks=512"]) == {
        "alpha": 0.9, "hidden_input": "masked", "eval_blocks": 512}
    for bad, message in (("alpha", "KEY=VALUE"), ("no_such_option=1", "not a flash_distill option")):
        with pytest.raises(SystemExit, match=message):
            fidelity.parse_overrides([bad])
