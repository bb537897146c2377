"""A search space with one dimension of every kind, for the searchers' encoding tests."""
from __future__ import annotations

from typing import Any, Mapping

from search_spaces.base import SearchSpace
from search_spaces.dims import ChoiceDim, Dim, FloatDim, IntDim


class MixedSpace(SearchSpace):
    """One dimension of every kind, with a parameter count known without training."""

    name = "mixed"

    def __init__(self) -> None:
        self._dims: tuple[Dim, ...] = (
            IntDim("layers", 1, 6),
            IntDim("ffn", 64, 512, step=64),
            IntDim("tokens", 1, 1000, log=True),
            FloatDim("dropout", 0.0, 0.3),
            FloatDim("lr", 1e-5, 1e-2, log=True),
            ChoiceDim("act", ("gelu", "relu", 3, None)),
            ChoiceDim("heads", (1, 2, 4, 8), ordered=True),
            ChoiceDim("norm", ("pre",)),
            IntDim("fixed", 7, 7),
        )

    @property
    def dims(self) -> tuple[Dim, ...]:
        return self._dims

    def options(self) -> dict[str, Any]:
        return {}

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        return {"params": float(config["layers"] * config["ffn"])}
