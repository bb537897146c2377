"""Non-dominated sorting, crowding distance and epsilon-net order against brute force and by hand."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from orchestrator.pareto import (
    crowding_distance,
    dominates_matrix,
    epsilon_net_order,
    non_dominated_ranks,
    rank_and_crowding,
    sort_order,
    within_front_order,
)


def brute_ranks(points: np.ndarray) -> list[int]:
    """Peel fronts one at a time with plain loops."""
    n = len(points)
    ranks = [-1] * n
    rank = 0
    while -1 in ranks:
        left = [i for i in range(n) if ranks[i] == -1]
        front = [
            i
            for i in left
            if not any(all(points[j] <= points[i]) and any(points[j] < points[i]) for j in left if j != i)
        ]
        for i in front:
            ranks[i] = rank
        rank += 1
    return ranks


def brute_crowding(points: np.ndarray) -> list[float]:
    n, m = points.shape
    if n <= 2:
        return [float("inf")] * n
    out = [0.0] * n
    for k in range(m):
        col = [float(v) for v in points[:, k]]
        lo, hi = min(col), max(col)
        if lo == hi:
            continue
        for i, v in enumerate(col):
            if v in (lo, hi):
                out[i] = float("inf")
            else:
                below = max(u for u in col if u < v)
                above = min(u for u in col if u > v)
                out[i] += (above - below) / (hi - lo)
    return out


def random_points(seed: int, n: int, m: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Few distinct values: many ties and exact duplicates.
    pts = rng.integers(0, 5, size=(n, m)).astype(float)
    return np.vstack([pts, pts[: n // 4]])


@pytest.mark.parametrize("seed,n,m", [(s, n, m) for s in range(6) for n, m in [(1, 2), (7, 2), (30, 2), (40, 3), (25, 4)]])
def test_ranks_match_brute_force(seed: int, n: int, m: int) -> None:
    pts = random_points(seed, n, m)
    assert non_dominated_ranks(pts).tolist() == brute_ranks(pts)


@pytest.mark.parametrize("seed,n,m", [(s, n, m) for s in range(6) for n, m in [(2, 2), (3, 2), (12, 2), (20, 3)]])
def test_crowding_matches_brute_force(seed: int, n: int, m: int) -> None:
    rng = np.random.default_rng(100 + seed)
    pts = np.round(rng.random((n, m)), 1)
    pts = np.vstack([pts, pts[:2]])
    np.testing.assert_allclose(crowding_distance(pts), brute_crowding(pts))


def test_duplicates_share_rank_and_crowding() -> None:
    pts = np.array([[0.0, 1.0], [0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [1.0, 1.0]])
    ranks, crowding = rank_and_crowding(pts)
    assert ranks.tolist() == [0, 0, 0, 0, 1]
    assert crowding[1] == crowding[2] == pytest.approx(2.0)
    assert np.isinf(crowding[[0, 3, 4]]).all()


def test_dominance_by_hand() -> None:
    pts = np.array([[1.0, 1.0], [2.0, 2.0], [1.0, 2.0], [1.0, 1.0]])
    dom = dominates_matrix(pts)
    assert dom.tolist() == [
        [False, True, True, False],
        [False, False, False, False],
        [False, True, False, False],
        [False, True, True, False],
    ]


def test_crowding_by_hand() -> None:
    # Sorted on f1: a(0) b(1) c(3) d(4); f2 mirrors it. b: (3-0)/4 + (4-1)/4 = 1.5; c: (4-1)/4 * 2 = 1.5.
    pts = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    np.testing.assert_allclose(crowding_distance(pts), [np.inf, 1.5, 1.5, np.inf])
    # A constant objective adds nothing; the other spreads [0, 1, 3] over a range of 3.
    flat = np.array([[0.0, 7.0], [1.0, 7.0], [3.0, 7.0]])
    np.testing.assert_allclose(crowding_distance(flat), [np.inf, 1.0, np.inf])


def test_epsilon_net_by_hand() -> None:
    # Already on [0, 1]^2. Start at the best f1 (index 2); farthest from it is index 0 (1.41);
    # then index 3 is 0.71 from both chosen points while index 1 is 0.14 from index 0.
    pts = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.5, 0.5]])
    assert epsilon_net_order(pts).tolist() == [2, 0, 3, 1]


def test_sort_order_puts_fronts_first_then_tie_break() -> None:
    pts = np.array([[0.0, 4.0], [2.0, 2.0], [4.0, 0.0], [1.9, 2.1], [5.0, 5.0], [3.0, 3.0]])
    # Front 0: indices 0, 1, 2, 3; crowding: 0 and 2 infinite, 3 (gap 2.0 / 4 on f1, 2.0 / 4 on f2) = 1.0,
    # 1 ((4 - 1.9) / 4 + (2.1 - 0) / 4) = 1.05. Front 1: index 5; front 2: index 4.
    assert sort_order(pts, "crowding").tolist() == [0, 2, 1, 3, 5, 4]
    assert sort_order(pts, "epsilon_net")[:2].tolist() == [0, 2]
    assert sort_order(np.zeros((0, 2))).tolist() == []


def test_orders_are_permutations() -> None:
    pts = random_points(3, 40, 3)
    for tie in ("crowding", "epsilon_net"):
        assert sorted(sort_order(pts, tie).tolist()) == list(range(len(pts)))
        assert sorted(within_front_order(pts, tie).tolist()) == list(range(len(pts)))


def test_bad_inputs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="tie_break must be one of crowding, epsilon_net"):
        within_front_order(np.zeros((2, 2)), "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        non_dominated_ranks(np.zeros(3))


def test_every_front_point_is_non_dominated_by_later_fronts() -> None:
    pts = random_points(5, 50, 2)
    ranks = non_dominated_ranks(pts)
    for i, j in itertools.product(range(len(pts)), repeat=2):
        if ranks[i] > ranks[j]:
            assert not (all(pts[i] <= pts[j]) and any(pts[i] < pts[j]))
