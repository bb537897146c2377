"""A continuous (optionally gridded) box for synthetic multi-objective test problems."""
from __future__ import annotations

from typing import Any

from search_spaces.base import SearchSpace
from search_spaces.dims import Dim, FloatDim, IntDim


class SyntheticSpace(SearchSpace):
    """`num_dims` variables x0..x{n-1} in [0, 1]; with `grid`, each is an integer 0..grid-1
    that trainers read as x / (grid - 1), so discrete searchers have a finite space too."""

    name = "synthetic"

    def __init__(self, num_dims: int = 6, grid: int | None = None) -> None:
        if not isinstance(num_dims, int) or isinstance(num_dims, bool) or not 2 <= num_dims <= 64:
            raise ValueError(f"num_dims must be an integer in 2..64, got {num_dims!r}")
        if grid is not None and (not isinstance(grid, int) or isinstance(grid, bool) or not 2 <= grid <= 10_000):
            raise ValueError(f"grid must be an integer in 2..10000 or null, got {grid!r}")
        self.num_dims = num_dims
        self.grid = grid
        self._dims: tuple[Dim, ...] = tuple(
            IntDim(f"x{i}", 0, grid - 1) if grid else FloatDim(f"x{i}", 0.0, 1.0) for i in range(num_dims)
        )

    @property
    def dims(self) -> tuple[Dim, ...]:
        return self._dims

    def options(self) -> dict[str, Any]:
        return {"num_dims": self.num_dims, "grid": self.grid}

    def point(self, config: dict[str, Any]) -> list[float]:
        """The configuration as a point in [0, 1]^n."""
        scale = (self.grid - 1) if self.grid else 1.0
        return [float(config[d.name]) / scale for d in self.dims]
