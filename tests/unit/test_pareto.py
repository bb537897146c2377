"""Pareto front and hypervolume against brute force on random points."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from orchestrator.objectives import Objective, Objectives
from orchestrator.pareto import hypervolume, hypervolume_trace, non_dominated_mask


def brute_force_mask(points: np.ndarray) -> np.ndarray:
    n = len(points)
    return np.array([
        not any(np.all(points[j] <= points[i]) and np.any(points[j] < points[i]) for j in range(n) if j != i)
        for i in range(n)
    ])


def brute_force_hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact volume on the grid spanned by the points' coordinates (inclusion by cell centres)."""
    pts = points[np.all(points < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    axes = [np.unique(np.append(pts[:, k], ref[k])) for k in range(points.shape[1])]
    volume = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        lo = np.array([axes[k][i] for k, i in enumerate(cell)])
        hi = np.array([axes[k][i + 1] for k, i in enumerate(cell)])
        centre = (lo + hi) / 2
        if np.any(np.all(pts <= centre, axis=1)):
            volume += float(np.prod(hi - lo))
    return volume


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_front_and_hypervolume_match_brute_force(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(25, m)).astype(float)  # a coarse grid: many ties and duplicates
    points = np.vstack([points, rng.random((10, m)) * 5])
    np.testing.assert_array_equal(non_dominated_mask(points), brute_force_mask(points))
    ref = np.full(m, 5.5)
    assert hypervolume(points, ref) == pytest.approx(brute_force_hypervolume(points, ref), rel=1e-9)


def test_hypervolume_trace_is_the_hypervolume_of_each_prefix() -> None:
    rng = np.random.default_rng(7)
    points = rng.random((40, 2))
    ref = np.array([0.9, 0.9])  # some points lie beyond the reference point
    trace = hypervolume_trace(points, ref)
    expected = [hypervolume(points[: i + 1], ref) for i in range(len(points))]
    np.testing.assert_allclose(trace, expected, rtol=1e-12)
    assert np.all(np.diff(trace) >= 0)


def test_objectives_turn_maximised_metrics_into_minimised_ones() -> None:
    objs = Objectives((Objective("accuracy", "max", ref=0.5), Objective("latency_ms", "min", ref=100.0)))
    np.testing.assert_array_equal(objs.to_minimise({"accuracy": 0.9, "latency_ms": 20.0}), [-0.9, 20.0])
    np.testing.assert_array_equal(objs.ref_point(), [-0.5, 100.0])
    assert not objs.has_values({"accuracy": float("nan"), "latency_ms": 1.0})


def test_missing_reference_entries_come_from_the_observed_range() -> None:
    objs = Objectives((Objective("a"), Objective("b", ref=3.0)))
    points = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(objs.ref_point(points), [1.1, 3.0])
    assert objs.ref_point() is None
