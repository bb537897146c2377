"""Dominance on minimise-form points, in one place: Pareto fronts, non-dominated sorting, the
tie-breaks used inside a front, and hypervolume.

Points are (n, m) arrays in which every objective is minimised (`Objectives.to_minimise`). Ranks and
crowding distance follow NSGA-II (Deb et al. 2002, "A fast and elitist multiobjective genetic
algorithm: NSGA-II", §III-A and §III-B); the epsilon-net order follows Salinas et al. (2021, "A
multi-objective perspective on jointly tuning hardware and hyperparameters"), as used by MO-ASHA
(Schmucker et al. 2021). The hypervolume is BoTorch's; it is imported where it is computed, so the
searchers and schedulers that sort points, and the trial workers that load the results store (it
keeps a `FrontCache`), never load torch (that import cost seconds and 300 MB per worker).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

TieBreak = Literal["crowding", "epsilon_net"]
TIE_BREAKS: tuple[str, ...] = ("crowding", "epsilon_net")


def _as_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-D (n, m) array, got shape {pts.shape}")
    return pts


def dominates_matrix(points: np.ndarray) -> np.ndarray:
    """(n, n) booleans: entry [i, j] is True when point i dominates point j.

    Equal points do not dominate each other, so duplicates share a rank.
    """
    pts = _as_points(points)
    n, m = pts.shape
    # No worse everywhere and strictly better somewhere; one (n, n) comparison per objective is
    # several times faster than reducing an (n, n, m) array over its short last axis.
    le = np.ones((n, n), dtype=bool)
    lt = np.zeros((n, n), dtype=bool)
    for k in range(m):
        col = pts[:, k]
        le &= col[:, None] <= col[None, :]
        lt |= col[:, None] < col[None, :]
    return le & lt


def non_dominated_ranks(points: np.ndarray) -> np.ndarray:
    """The front index of every point: 0 for the non-dominated points, 1 for those only they
    dominate, and so on (Deb et al. 2002, fast non-dominated sort)."""
    pts = _as_points(points)
    n = len(pts)
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    dom = dominates_matrix(pts)
    # How many not-yet-ranked points dominate each point; a front is where that count is zero.
    count = dom.sum(axis=0)
    rank = 0
    while True:
        front = (count == 0) & (ranks < 0)
        if not front.any():
            break
        ranks[front] = rank
        count = count - dom[front].sum(axis=0)
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """Crowding distance of the points of ONE front (Deb et al. 2002, §III-B).

    Per objective with a non-zero range, points attaining the minimum or the maximum get
    infinity and the others the gap between the nearest distinct values below and above them,
    divided by the range; the distances add over objectives. Equal values are treated as one
    point, so duplicates get equal distances whatever their order. Fronts of at most two points
    are all boundary: infinity.
    """
    pts = _as_points(points)
    n, m = pts.shape
    if n <= 2:
        return np.full(n, np.inf)
    dist = np.zeros(n)
    for k in range(m):
        values = pts[:, k]
        unique = np.unique(values)  # sorted distinct values
        if len(unique) == 1:
            continue  # no extent to preserve along this objective
        pos = np.searchsorted(unique, values)
        boundary = (pos == 0) | (pos == len(unique) - 1)
        inner = ~boundary
        gap = np.zeros(n)
        gap[inner] = unique[pos[inner] + 1] - unique[pos[inner] - 1]
        dist += np.where(boundary, np.inf, gap / (unique[-1] - unique[0]))
    return dist


def epsilon_net_order(points: np.ndarray) -> np.ndarray:
    """Indices of the points in a well-spread order: start from the best point on the first
    objective (ties: by the next objectives), then repeatedly take the point farthest from those chosen
    (Clarkson 2006, as used by Salinas et al. 2021). Objectives are scaled by their range so
    no unit dominates the distances; equal distances pick the lowest index."""
    pts = _as_points(points)
    n = len(pts)
    if n == 0:
        return np.zeros(0, dtype=int)
    span = pts.max(axis=0) - pts.min(axis=0)
    scaled = (pts - pts.min(axis=0)) / np.where(span > 0, span, 1.0)
    first = int(np.lexsort(scaled.T[::-1])[0])
    order = [first]
    chosen = np.zeros(n, dtype=bool)
    chosen[first] = True
    # Distance of every point to its nearest chosen point, updated as points are chosen.
    nearest = np.linalg.norm(scaled - scaled[first], axis=1)
    for _ in range(n - 1):
        candidate = np.where(chosen, -np.inf, nearest)
        nxt = int(np.argmax(candidate))
        order.append(nxt)
        chosen[nxt] = True
        nearest = np.minimum(nearest, np.linalg.norm(scaled - scaled[nxt], axis=1))
    return np.array(order, dtype=int)


def within_front_order(points: np.ndarray, tie_break: TieBreak = "crowding") -> np.ndarray:
    """Indices of the points of one front, best first, by the chosen tie-break (crowding:
    larger distance first, ties by lowest index)."""
    if tie_break == "crowding":
        return np.argsort(-crowding_distance(points), kind="stable")
    if tie_break == "epsilon_net":
        return epsilon_net_order(points)
    raise ValueError(f"tie_break must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")


def sort_order(points: np.ndarray, tie_break: TieBreak = "crowding") -> np.ndarray:
    """Indices of all points, best first: by non-dominated rank, then by the tie-break within
    each front."""
    pts = _as_points(points)
    ranks = non_dominated_ranks(pts)
    order = []
    for r in range(int(ranks.max()) + 1 if len(pts) else 0):
        members = np.flatnonzero(ranks == r)
        order.extend(members[within_front_order(pts[members], tie_break)].tolist())
    return np.array(order, dtype=int)


def rank_and_crowding(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-dominated rank of every point and its crowding distance within its own front
    (the two keys of NSGA-II's crowded-comparison operator)."""
    pts = _as_points(points)
    ranks = non_dominated_ranks(pts)
    crowding = np.zeros(len(pts))
    for r in np.unique(ranks):
        members = ranks == r
        crowding[members] = crowding_distance(pts[members])
    return ranks, crowding


def non_dominated_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point dominates. Duplicates of a non-dominated point are
    all kept."""
    pts = np.asarray(points, dtype=float)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    return ~dominates_matrix(pts).any(axis=0)


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """The volume dominated by `points` and bounded by `ref`.

    Points that do not strictly dominate the reference point contribute nothing.
    """
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    front = pts[non_dominated_mask(pts)]
    # BoTorch maximises: negate.
    hv = Hypervolume(ref_point=-torch.as_tensor(ref, dtype=torch.double))
    return float(hv.compute(-torch.as_tensor(front, dtype=torch.double)))


def hypervolume_trace(points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Hypervolume after each prefix of `points` (in the order they were observed)."""
    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    return FrontCache().hypervolume_trace(pts, np.asarray(ref, dtype=float))


class FrontCache:
    """The Pareto mask and hypervolume trace of the last points asked for, extended in place when the
    next points begin with them (trials finish one after another, in end order), recomputed otherwise
    (a new reference point, an earlier trial changed). Same values as `non_dominated_mask` and
    `hypervolume_trace`: the front of the old front and the new points is the front of all points,
    and only a point entering the front changes the hypervolume."""

    def __init__(self) -> None:
        self.points = np.empty((0, 0))
        self.front_index = np.zeros(0, dtype=int)
        self.ref: np.ndarray | None = None
        self.hv_front = np.empty((0, 0))
        self.value = 0.0
        self.trace: list[float] = []

    def _extends(self, points: np.ndarray) -> int:
        """How many leading points were seen last time (0 when the points do not begin with them)."""
        n = len(self.points)
        if self.points.shape[1:] == points.shape[1:] and len(points) >= n and np.array_equal(self.points, points[:n]):
            return n
        return 0

    def front_mask(self, points: np.ndarray) -> np.ndarray:
        n = self._extends(points)
        if n == 0:
            self.ref, self.trace = None, []
        kept = self.front_index if n else np.zeros(0, dtype=int)
        candidates = np.concatenate([kept, np.arange(n, len(points))])
        self.front_index = candidates[non_dominated_mask(points[candidates])]
        self.points = points.copy()
        mask = np.zeros(len(points), dtype=bool)
        mask[self.front_index] = True
        return mask

    def hypervolume_trace(self, points: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """The hypervolume after each prefix of `points`. On points that extend the last ones, call
        `front_mask(points)` first: it forgets the trace when they do not."""
        n = len(self.trace) if self.ref is not None and np.array_equal(self.ref, ref) else 0
        if n == 0:
            self.hv_front, self.value, self.trace = np.empty((0, len(ref))), 0.0, []
        for p in points[n:]:
            if np.all(p < ref) and not np.any(np.all(self.hv_front <= p, axis=1)):
                self.hv_front = np.vstack([self.hv_front[~np.all(p <= self.hv_front, axis=1)], p])
                self.value = hypervolume(self.hv_front, ref)
            self.trace.append(self.value)
        self.ref = ref.copy()
        return np.array(self.trace)
