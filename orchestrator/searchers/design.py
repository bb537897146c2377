"""Space-filling initial designs: a Latin hypercube over each dimension's legal values.

A model-based searcher learns most from first trials that cover every dimension's range. Independent
random draws leave gaps: with 7 layer counts and 8 draws, a given count is missed a third of the time
((6/7)^8), and where one value behaves unlike its neighbours (only the full depth works on a
super-network trained on it) the model cannot learn what it never saw. A Latin hypercube (McKay,
Beckman and Conover 1979) stratifies every dimension: with n points and k <= n legal values each value
appears floor(n / k) or ceil(n / k) times, and the pairing across dimensions is random.
"""
from __future__ import annotations

import math

import numpy as np

from search_spaces.base import Config, SearchSpace, to_python
from search_spaces.dims import ChoiceDim, Dim, FloatDim, IntDim


def levels(d: Dim) -> list[object] | None:
    """The legal values of a discrete dimension, in order; None for a continuous one."""
    if isinstance(d, FloatDim):
        return None
    return list(d.choices) if isinstance(d, ChoiceDim) else list(d.values)


def varies(d: Dim) -> bool:
    """Whether a dimension has more than one legal value (one that has not carries no information)."""
    values = levels(d)
    return values is None or len(values) > 1


def latin_hypercube(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Config]:
    """`n` configurations whose values of every dimension are as evenly spread as `n` allows; they
    may be invalid for the space (a cross-dimension rule), which the caller checks."""
    columns = {d.name: _stratified(d, n, rng) for d in space.dims}
    return [{name: to_python(values[i]) for name, values in columns.items()} for i in range(n)]


def _stratified(d: Dim, n: int, rng: np.random.Generator) -> list[object]:
    """`n` values of one dimension, one per stratum, in random order."""
    u = (rng.permutation(n) + rng.random(n)) / n  # one uniform draw in each of n equal slices, shuffled
    if isinstance(d, FloatDim):
        if d.log:
            return [math.exp(math.log(d.low) + x * (math.log(d.high) - math.log(d.low))) for x in u]
        return [d.low + x * (d.high - d.low) for x in u]
    if isinstance(d, IntDim) and d.log:  # stratified on the log scale, as it is sampled
        return [d.snap(math.exp(math.log(d.low) + x * (math.log(d.high + 1) - math.log(d.low)))) for x in u]
    values = levels(d)
    assert values is not None  # FloatDim is handled above
    k = len(values)
    if k > n:  # a slice holds at least one level: the level under each draw
        return [values[min(int(x * k), k - 1)] for x in u]
    # Every level floor(n / k) times, the remainder on distinct levels drawn without replacement.
    picks = np.concatenate([np.tile(np.arange(k), n // k), rng.choice(k, size=n % k, replace=False)])
    return [values[int(i)] for i in rng.permutation(picks)]
