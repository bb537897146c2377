"""Objectives and constraints, declared once.

`Objectives` is the one place that turns reported metrics into "minimise everything" form (a trial's
metrics with `to_minimise`, a table's columns with `columns_to_minimise`, the reference values with
`ref_point` / `ref_bounds`); searchers, schedulers, Pareto and export code only ever see that form.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np

Mode = Literal["min", "max"]


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: Mode = "min"
    #: reference point in the metric's own units: the worst value still worth counting.
    ref: float | None = None

    @property
    def sign(self) -> float:
        return 1.0 if self.mode == "min" else -1.0


@dataclass(frozen=True)
class Objectives:
    items: tuple[Objective, ...]

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(o.metric for o in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def has_values(self, metrics: Mapping[str, float]) -> bool:
        """Whether every objective is present and finite in `metrics`."""
        return all(
            isinstance(metrics.get(o.metric), (int, float)) and math.isfinite(metrics[o.metric]) for o in self.items
        )

    def to_minimise(self, metrics: Mapping[str, float]) -> np.ndarray:
        """The metrics as a vector in which every objective is minimised."""
        return np.array([o.sign * float(metrics[o.metric]) for o in self.items], dtype=float)

    def columns_to_minimise(self, columns: Sequence[Sequence[float] | np.ndarray]) -> np.ndarray:
        """Minimise-form matrix (n, m) from one column of values per objective, in objective order."""
        if len(columns) != len(self.items):
            raise ValueError(f"expected one column per objective ({len(self.items)}), got {len(columns)}")
        return np.column_stack([o.sign * np.asarray(c, dtype=float) for o, c in zip(self.items, columns)])

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Minimise-form matrix (n, m) of the rows that carry every objective."""
        kept = [self.to_minimise(r) for r in rows if self.has_values(r)]
        return np.array(kept, dtype=float).reshape(len(kept), len(self.items))

    def ref_bounds(self) -> np.ndarray:
        """The reference values in minimise form, +inf for an objective without one (any value counts)."""
        return np.array([o.sign * o.ref if o.ref is not None else math.inf for o in self.items])

    def ref_point(self, points: np.ndarray | None = None) -> np.ndarray | None:
        """The reference point in minimise form. Missing entries are taken from `points`
        (the worst observed value plus 10 % of the observed range) when given, else None."""
        ref = [o.sign * o.ref if o.ref is not None else math.nan for o in self.items]
        if not any(math.isnan(r) for r in ref):
            return np.array(ref)
        if points is None or len(points) == 0:
            return None
        worst, best = points.max(axis=0), points.min(axis=0)
        fill = worst + 0.1 * np.maximum(worst - best, 1e-12)
        return np.array([fill[i] if math.isnan(r) else r for i, r in enumerate(ref)])


_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(<=|>=)\s*([-+0-9.eE_]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """An outcome constraint such as `params <= 5e6`."""

    metric: str
    op: Literal["<=", ">="]
    bound: float

    @classmethod
    def parse(cls, text: str) -> "Constraint":
        m = _CONSTRAINT.match(text)
        if not m:
            raise ValueError(f"cannot read constraint {text!r}; write it as 'METRIC <= NUMBER' or 'METRIC >= NUMBER'")
        try:
            bound = float(m.group(3).replace("_", ""))
        except ValueError:
            raise ValueError(f"constraint {text!r}: {m.group(3)!r} is not a number") from None
        if not math.isfinite(bound):
            raise ValueError(f"constraint {text!r}: the bound must be finite")
        return cls(m.group(1), m.group(2), bound)  # type: ignore[arg-type]

    def satisfied(self, metrics: Mapping[str, float]) -> bool | None:
        """True / False when the metric is known, None when it is not."""
        value = metrics.get(self.metric)
        if value is None:
            return None
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def feasible(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> bool:
    """False only when some constraint is known to be violated."""
    return all(c.satisfied(metrics) is not False for c in constraints)
