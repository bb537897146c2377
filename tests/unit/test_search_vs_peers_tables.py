"""benchmarks/search_vs_peers.py: its tables load with the objectives they claim, and one replays."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.module_file import load_module

ROOT = Path(__file__).resolve().parents[2]


def test_the_autodistill_table_is_the_64_student_pool_with_the_study_objectives() -> None:
    bench = load_module(ROOT / "benchmarks" / "search_vs_peers.py")
    problem = bench.problems()["autodistill64"]
    frame = pd.read_csv(problem.table)
    assert len(frame) == 64 and problem.max_budget == 30
    assert problem.objectives.metrics == ("mlm_accuracy", "latency_ms")
    ref = problem.objectives.ref_point()
    # References that count every member: the worst accuracy, 1.1 x the slowest latency (minimise form).
    assert np.allclose(ref, [-frame["mlm_accuracy"].min(), 1.1 * frame["latency_ms"].max()])


def test_a_replay_on_the_pool_reports_a_falling_regret_that_ends_at_or_above_zero() -> None:
    bench = load_module(ROOT / "benchmarks" / "search_vs_peers.py")
    record = bench.run_one(bench.problems()["autodistill64"], "random", seed=0, budget=12, workers=4)
    regret = np.array(record["regret"])
    assert len(regret) == 12 and np.all(np.diff(regret) <= 1e-12) and regret[-1] >= -1e-12 and regret[0] > 0
