"""benchmarks/autodistill_search.py: the baseline it picks, the trials to each winner, the summary."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.module_file import load_module

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark() -> Any:
    return load_module(ROOT / "benchmarks" / "autodistill_search.py")


OBJECTIVES = [{"metric": "mlm_accuracy", "mode": "max"}, {"metric": "latency_ms", "mode": "min"}]


def pool(points: list[tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"mlm_accuracy": a, "latency_ms": t} for a, t in points])


def test_the_baseline_is_beaten_by_the_fewest_others_but_by_at_least_k() -> None:
    bench = load_benchmark()
    # Beaten on both objectives: member 3 by none, 0 by one (3), 4 by two (0, 3), 1 by three, 2 by four.
    frame = pool([(0.50, 5.0), (0.40, 6.0), (0.10, 9.0), (0.60, 4.0), (0.45, 5.5)])
    objectives = bench.pool_objectives(frame, OBJECTIVES)
    assert objectives.ref_point().tolist() == [-0.10, 9.9]  # the worst accuracy (maximised: negated), 1.1 x latency
    assert bench.pick_baseline(frame, objectives, 1) == 0
    assert bench.pick_baseline(frame, objectives, 2) == 4
    assert bench.pick_baseline(frame, objectives, 3) == 1
    assert bench.pick_baseline(frame, objectives, 4) == 2


def test_trials_to_the_kth_winner_count_a_repeated_winner_once() -> None:
    bench = load_benchmark()
    baseline = np.array([-0.5, 5.0])  # minimised form: accuracy 0.5, latency 5 ms
    points = [[-0.4, 4.0], [-0.6, 4.0], [-0.6, 4.0], [-0.7, 6.0], [-0.8, 3.0], [-0.9, 2.0], [-0.55, 4.5], [-0.65, 1.0]]
    assert bench.trials_to_winners(points, baseline) == {1: 2, 3: 6, 5: 8}
    assert bench.trials_to_winners(points[:5], baseline) == {1: 2, 3: None, 5: None}


def test_the_summary_compares_every_searcher_with_random_search() -> None:
    bench = load_benchmark()
    baseline = np.array([-0.5, 5.0])
    winner, loser = [-0.9, 1.0], [-0.1, 9.0]

    def record(label: str, seed: int, first_winner_at: int) -> dict[str, Any]:
        points = [loser] * (first_winner_at - 1) + [winner] * (30 - first_winner_at + 1)
        regret = [1.0] * (first_winner_at - 1) + [0.0] * (30 - first_winner_at + 1)
        return {"label": label, "seed": seed, "budget": 30, "points": points, "regret": regret}

    records = [record("random", s, 20 + s) for s in range(6)] + [record("ax_mobo", s, 2 + s) for s in range(6)]
    text = bench.summarise(records, baseline, 30)
    random_line, ax_line = (next(line for line in text.splitlines() if line.startswith(lab)) for lab in ("random", "ax_mobo"))
    assert "22.5 [21-24]  6/6" in random_line and " p" not in random_line
    assert "4.5 [3-6]  6/6 p0.00" in ax_line  # found sooner than random in every seed: significant
    assert " 0/6" in ax_line  # a single distinct winner: the 3rd is never found
