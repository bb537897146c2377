"""MO-ASHA decisions worked out by hand on small point sets."""
from __future__ import annotations

import pytest

from orchestrator.objectives import Objective, Objectives
from orchestrator.schedulers.base import Decision
from orchestrator.schedulers.moasha import MOASHAScheduler

MIN2 = Objectives((Objective("f1"), Objective("f2")))
C, S = Decision.CONTINUE, Decision.STOP


def result(step: float, f1: float, f2: float) -> dict[str, float]:
    return {"step": step, "f1": f1, "f2": f2}


def test_rung_levels() -> None:
    assert MOASHAScheduler(MIN2, min_fidelity=1, max_fidelity=27).levels == [1, 3, 9]
    assert MOASHAScheduler(MIN2, min_fidelity=1, max_fidelity=28).levels == [1, 3, 9, 27]
    assert MOASHAScheduler(MIN2, min_fidelity=2, max_fidelity=16, reduction_factor=2).levels == [2, 4, 8]
    assert MOASHAScheduler(MIN2, min_fidelity=0.1, max_fidelity=1).levels == [0.1, 0.3, 0.9]


def test_keeps_the_top_third_by_non_dominated_rank() -> None:
    s = MOASHAScheduler(MIN2, fidelity="step", min_fidelity=1, max_fidelity=9)
    # n=1, keep 1: the first trial at a rung continues.
    assert s.on_trial_result("a", result(1, 1, 5)) == C
    # n=2, keep 1: b is dominated by a.
    assert s.on_trial_result("b", result(1, 2, 6)) == S
    # n=3, keep 1: c dominates a and b.
    assert s.on_trial_result("c", result(1, 0.5, 4)) == C
    # n=4, keep 2: front {c, d}, both kept.
    assert s.on_trial_result("d", result(1, 3, 1)) == C
    # n=5, keep 2: front {c, d, e}; c and d are the extremes (infinite crowding), e is cut.
    assert s.on_trial_result("e", result(1, 2, 2)) == S
    # Between rungs nothing is judged, even for a trial told to stop before.
    assert s.on_trial_result("b", result(2, 9, 9)) == C
    # Rung 3 starts empty: the first to reach it continues; a dominated second stops.
    assert s.on_trial_result("a", result(3, 1, 5)) == C
    assert s.on_trial_result("c", result(3, 1, 6)) == S
    # At max fidelity the trial finishes by itself; past it, it is stopped.
    assert s.on_trial_result("a", result(9, 1, 5)) == C
    assert s.on_trial_result("a", result(10, 1, 5)) == S


@pytest.mark.parametrize("tie_break,last", [("crowding", S), ("epsilon_net", C)])
def test_tie_break_inside_the_cut_front(tie_break: str, last: Decision) -> None:
    """eta = 2, one front of five points; keep ceil(5 / 2) = 3 when the fifth arrives.

    Ranges: f1 0..8, f2 2..8. Crowding of the interior points: (2, 7): 3/8 + 2/6 = 0.71;
    (3, 6): 4/8 + 3/6 = 1.0; (6, 4): 5/8 + 4/6 = 1.29, so crowding keeps the two extremes and
    (6, 4) and stops (3, 6). Epsilon-net on the scaled points starts at (0, 8), then the farthest,
    (8, 2); then (3, 6) is 0.50 from its nearest chosen point, (6, 4) 0.42 and (2, 7) 0.30, so
    (3, 6) is kept.
    """
    s = MOASHAScheduler(MIN2, min_fidelity=1, max_fidelity=4, reduction_factor=2, tie_break=tie_break)  # type: ignore[arg-type]
    assert s.levels == [1, 2]
    assert s.on_trial_result("p0", result(1, 0, 8)) == C  # n=1, keep 1
    assert s.on_trial_result("p1", result(1, 2, 7)) == S  # n=2, keep 1: both extremes, p0 came first
    assert s.on_trial_result("p4", result(1, 8, 2)) == C  # n=3, keep 2: the extremes p0 and p4
    assert s.on_trial_result("p3", result(1, 6, 4)) == S  # n=4, keep 2: still p0 and p4
    assert s.on_trial_result("p2", result(1, 3, 6)) == last


def test_maximised_objectives_are_turned_around() -> None:
    objectives = Objectives((Objective("accuracy", "max"), Objective("params", "min")))
    s = MOASHAScheduler(objectives, fidelity="epoch", min_fidelity=1, max_fidelity=3)
    assert s.on_trial_result("a", {"epoch": 1, "accuracy": 0.9, "params": 5}) == C
    assert s.on_trial_result("b", {"epoch": 1, "accuracy": 0.8, "params": 6}) == S
    assert s.on_trial_result("c", {"epoch": 1, "accuracy": 0.95, "params": 5}) == C


def test_coarse_reports_and_final_results_are_recorded_at_the_rung_reached() -> None:
    s = MOASHAScheduler(MIN2, min_fidelity=1, max_fidelity=9)
    # First report at step 5: recorded at rung 3 only (rung 1 was skipped).
    assert s.on_trial_result("a", result(5, 1, 1)) == C
    assert [t for t, _ in s.rungs[0]] == [] and [t for t, _ in s.rungs[1]] == ["a"]
    # A trial that completes at step 3 without an intermediate report there still counts.
    s.on_trial_complete("b", result(3, 0, 0))
    assert [t for t, _ in s.rungs[1]] == ["a", "b"]
    # n=3, keep 1: b dominates everything.
    assert s.on_trial_result("c", result(3, 0.5, 0.5)) == S
    # Failed trials and results without the fidelity or an objective change nothing.
    s.on_trial_complete("c", None)
    assert s.on_trial_result("d", {"f1": 0.0, "f2": 0.0}) == C
    assert s.on_trial_result("d", {"step": 3, "f1": 0.0}) == C
    assert [t for t, _ in s.rungs[1]] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "options,message",
    [
        ({"reduction_factor": 1}, "option 'reduction_factor' must be > 1"),
        ({"min_fidelity": 0}, "option 'min_fidelity' must be a positive number"),
        ({"min_fidelity": 5, "max_fidelity": 5}, "option 'max_fidelity' must be > min_fidelity"),
        ({"tie_break": "hv"}, "option 'tie_break' must be one of crowding, epsilon_net"),
        ({"fidelity": ""}, "option 'fidelity' must be the name of a reported metric"),
    ],
)
def test_bad_options_fail_in_one_line(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MOASHAScheduler(MIN2, **options)
