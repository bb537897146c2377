"""Typed dimensions of a search space: the flat, JSON-serialisable encoding searchers see."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

import numpy as np


@dataclass(frozen=True)
class IntDim:
    """An integer in [low, high] on a grid of `step` (inclusive bounds)."""

    name: str
    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"{self.name}: high ({self.high}) must be >= low ({self.low})")
        if self.step < 1:
            raise ValueError(f"{self.name}: step must be >= 1, got {self.step}")
        if self.log and self.low < 1:
            raise ValueError(f"{self.name}: a log-scaled dimension needs low >= 1")

    @property
    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return self.snap(x)
        return int(rng.choice(self.values))

    def snap(self, x: float) -> int:
        """The nearest legal value to `x`."""
        k = round((x - self.low) / self.step)
        return int(min(max(self.low + k * self.step, self.low), self.low + (len(self.values) - 1) * self.step))

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, (int, np.integer))
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def neighbours(self, value: int) -> list[int]:
        return [v for v in (value - self.step, value + self.step) if self.low <= v <= self.high]

    def to_unit(self, value: Any) -> float:
        span = self.high - self.low
        return 0.0 if span == 0 else (float(value) - self.low) / span


@dataclass(frozen=True)
class FloatDim:
    """A real number in [low, high]."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"{self.name}: high ({self.high}) must be > low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log-scaled dimension needs low > 0")

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and self.low <= value <= self.high

    def neighbours(self, value: float) -> list[float]:
        delta = 0.1 * (self.high - self.low)
        return [min(max(v, self.low), self.high) for v in (value - delta, value + delta) if v != value]

    def to_unit(self, value: Any) -> float:
        return (float(value) - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class ChoiceDim:
    """One of a fixed list of values (ordered when `ordered`)."""

    name: str
    choices: tuple[Any, ...]
    ordered: bool = False

    def __post_init__(self) -> None:
        if len(self.choices) == 0:
            raise ValueError(f"{self.name}: needs at least one choice")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"{self.name}: choices must be distinct, got {list(self.choices)}")

    def sample(self, rng: np.random.Generator) -> Any:
        return self.choices[int(rng.integers(len(self.choices)))]

    def contains(self, value: Any) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices) or (
            isinstance(value, (int, np.integer)) and value in self.choices
        )

    def neighbours(self, value: Any) -> list[Any]:
        i = self.choices.index(value)
        if self.ordered:
            return [self.choices[j] for j in (i - 1, i + 1) if 0 <= j < len(self.choices)]
        return [c for c in self.choices if c != value]

    def to_unit(self, value: Any) -> float:
        n = len(self.choices)
        return 0.0 if n == 1 else self.choices.index(value) / (n - 1)


Dim = Union[IntDim, FloatDim, ChoiceDim]
