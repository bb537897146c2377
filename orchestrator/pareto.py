"""Pareto fronts and hypervolume on minimise-form points, through BoTorch's utilities."""
from __future__ import annotations

import numpy as np
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.pareto import is_non_dominated


def non_dominated_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point dominates (all objectives minimised).

    Duplicates of a non-dominated point are all kept.
    """
    pts = np.asarray(points, dtype=float)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    # BoTorch maximises: negate.
    return is_non_dominated(-torch.as_tensor(pts, dtype=torch.double), deduplicate=False).numpy()


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """The volume dominated by `points` and bounded by `ref` (all objectives minimised).

    Points that do not strictly dominate the reference point contribute nothing.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    front = pts[non_dominated_mask(pts)]
    hv = Hypervolume(ref_point=-torch.as_tensor(ref, dtype=torch.double))
    return float(hv.compute(-torch.as_tensor(front, dtype=torch.double)))


def hypervolume_trace(points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Hypervolume after each prefix of `points` (in the order they were observed)."""
    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    trace = np.zeros(len(pts))
    front = np.empty((0, len(ref)))
    value = 0.0
    for i, p in enumerate(pts):
        # Only a point that enters the front can change the hypervolume.
        if np.all(p < ref) and not np.any(np.all(front <= p, axis=1)):
            front = np.vstack([front[~np.all(p <= front, axis=1)], p])
            value = hypervolume(front, ref)
        trace[i] = value
    return trace
