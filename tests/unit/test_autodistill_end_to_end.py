"""benchmarks/autodistill_end_to_end.py: the hand-designed students, the pairing, the found students,
and the summary's arithmetic (nothing is trained here)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from search_spaces.autodistill import PRESETS, AutoDistillSpace
from tests.module_file import load_module

ROOT = Path(__file__).resolve().parents[2]


def bench() -> Any:
    return load_module(ROOT / "benchmarks" / "autodistill_end_to_end.py")


def test_hand_designed_students_keep_mobilebert_proportions_inside_the_preset() -> None:
    students = bench().hand_designed("cpu")
    assert [s["bottleneck_size"] for s in students] == [32, 48, 64]  # 96 would need hidden 384
    space = AutoDistillSpace(preset="cpu")
    for s in students:
        assert s["hidden_size"] == 4 * s["bottleneck_size"] and s["num_heads"] == 4
        assert s["intermediate_size"] == min(4 * s["bottleneck_size"], max(PRESETS["cpu"]["intermediate_size"]))
        assert s["num_ffn"] == 3
        space.architecture(space.normalise(s))  # a legal student of the space


def test_each_found_student_meets_the_hand_designed_one_of_closest_latency() -> None:
    b = bench()
    found = [{"hidden_size": 96, "bottleneck_size": 32, "num_heads": 1, "intermediate_size": 64, "num_ffn": 3}]
    hand = b.hand_designed("cpu")
    latency = {b.name(found[0]): 5.0, b.name(hand[0]): 2.4, b.name(hand[1]): 6.0, b.name(hand[2]): 11.0}
    # 6.0 is 1.2x away, 2.4 about 2.1x: the ratio decides, not the difference.
    assert b.pair_by_latency(found, hand, latency) == [(found[0], hand[1])]


def test_found_students_are_the_pool_front_most_accurate_first() -> None:
    b = bench()
    keys = dict(bottleneck_size=32, num_heads=1, intermediate_size=64, num_ffn=1)
    frame = pd.DataFrame([{"hidden_size": h, **keys, "mlm_accuracy": a, "latency_ms": t}
                          for h, a, t in ((96, 0.05, 2.0), (128, 0.06, 3.0), (192, 0.04, 4.0), (256, 0.07, 5.0))])
    objectives = [{"metric": "mlm_accuracy", "mode": "max"}, {"metric": "latency_ms", "mode": "min"}]
    assert [s["hidden_size"] for s in b.found_students(frame, objectives)] == [256, 128, 96]  # 192 is dominated


def test_summary_compares_found_and_hand_per_task_over_seeds() -> None:
    b = bench()
    rows = []
    for student, role, accs in (("f", "found", (0.70, 0.72)), ("h", "hand", (0.75, 0.77))):
        for seed, acc in enumerate(accs):
            rows.append({"pair_found": "f", "pair_hand": "h", "student": student, "role": role, "seed": seed,
                         "task": "movie-reviews", "accuracy": acc, "mlm_accuracy": 0.1, "latency_ms": 3.0,
                         "latency_cv": 0.02, "params": 3e6, "flash_mlm_accuracy": 0.05, "flash_mlm_heldout_loss": 9.0})
    text = b.summarise(rows)
    line = next(x for x in text.splitlines() if x.strip().startswith("movie-reviews"))
    assert "0.710 ± 0.014" in line and "0.760 ± 0.014" in line and "-0.050" in line
    assert float(line.split()[-5]) == pytest.approx(0.0716, abs=0.001)  # Welch: t = 3.54 on 2 degrees of freedom
