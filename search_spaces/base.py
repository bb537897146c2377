"""The search-space interface every space implements.

A configuration is a flat, JSON-serialisable dict keyed by the space's dimension names.
Searchers only ever see configurations and dimensions; what the keys mean (layers, heads,
FFN units, ...) is the space's business and the trainer's.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

import numpy as np

from search_spaces.dims import ChoiceDim, Dim, FloatDim, IntDim

Config = dict[str, Any]


class InvalidArchitectureError(ValueError):
    """A configuration that is outside its space or cannot be built."""


class SearchSpace(ABC):
    """What can be sampled, encoded, mutated and counted.

    Subclasses define `dims` and may refine sampling (e.g. uniform over parameter count),
    validity (`check`) and the analytic metrics (`metrics`).
    """

    #: registry name, e.g. "small"; set by each subclass.
    name: str = ""

    @property
    @abstractmethod
    def dims(self) -> tuple[Dim, ...]:
        """The flat encoding of the space, in a fixed order."""

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """Keyword options that rebuild this space: `type(space)(**space.options())`."""

    # ---- validity -------------------------------------------------------------------------
    def check(self, config: Mapping[str, Any]) -> None:
        """Raise InvalidArchitectureError for a configuration that cannot be built.

        The default checks keys and per-dimension ranges; spaces add cross-dimension rules.
        """
        names = [d.name for d in self.dims]
        missing = [n for n in names if n not in config]
        extra = sorted(set(config) - set(names))
        if missing or extra:
            raise InvalidArchitectureError(
                f"{self.name}: configuration keys must be {names}; missing {missing}, unknown {extra}"
            )
        for d in self.dims:
            if not d.contains(config[d.name]):
                raise InvalidArchitectureError(f"{self.name}: {d.name}={config[d.name]!r} is outside {describe(d)}")

    def is_valid(self, config: Mapping[str, Any]) -> bool:
        try:
            self.check(config)
        except InvalidArchitectureError:
            return False
        return True

    def normalise(self, config: Mapping[str, Any]) -> Config:
        """Plain Python values (no numpy scalars), in dimension order, after checking."""
        self.check(config)
        return {d.name: to_python(config[d.name]) for d in self.dims}

    def architecture(self, config: Mapping[str, Any]) -> Any:
        """What a trainer builds from `config` (a pruning space's `SubNetwork`, the ELM space's
        `ElmArch`, ...), after checking it; a space whose configuration is the whole description of
        its network (the synthetic one) returns it normalised."""
        return self.normalise(config)

    def network_key(self, config: Mapping[str, Any]) -> str:
        """The identity of the network a configuration builds: configurations with equal keys are
        the same network, so one evaluation serves them all. Spaces whose different configurations
        can build one network (e.g. 0 layers with any heads) override this."""
        return repr(sorted(self.normalise(config).items()))

    # ---- sampling and moves -----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Config:
        """A random valid configuration (independent per dimension, rejection for validity)."""
        for _ in range(1000):
            config = {d.name: to_python(d.sample(rng)) for d in self.dims}
            if self.is_valid(config):
                return config
        raise InvalidArchitectureError(f"{self.name}: no valid configuration found in 1000 samples")

    def neighbours(self, config: Mapping[str, Any]) -> Sequence[Config]:
        """Valid configurations that differ from `config` in one dimension by one step.

        Large spaces may return a lazy sequence: callers use only len, indexing and iteration.
        """
        out = []
        for d in self.dims:
            for v in d.neighbours(config[d.name]):
                cand = {**config, d.name: to_python(v)}
                if self.is_valid(cand):
                    out.append(cand)
        return out

    def mutate(self, config: Mapping[str, Any], rng: np.random.Generator, rate: float | None = None) -> Config:
        """Resample each dimension with probability `rate` (default 1/#dims), at least one changed."""
        p = rate if rate is not None else 1.0 / len(self.dims)
        for _ in range(100):
            cand = dict(config)
            chosen = [d for d in self.dims if rng.random() < p] or [self.dims[int(rng.integers(len(self.dims)))]]
            for d in chosen:
                cand[d.name] = to_python(d.sample(rng))
            if cand != dict(config) and self.is_valid(cand):
                return cand
        return self.sample(rng)

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: np.random.Generator) -> Config:
        """Uniform crossover; falls back to a parent when the child is invalid."""
        for _ in range(100):
            child = {d.name: (a if rng.random() < 0.5 else b)[d.name] for d in self.dims}
            if self.is_valid(child):
                return child
        return dict(a)

    # ---- sandwich rule --------------------------------------------------------------------------
    def smallest(self) -> Config:
        return self._extreme(lambda d: d.low if not isinstance(d, ChoiceDim) else d.choices[0])

    def largest(self) -> Config:
        return self._extreme(lambda d: d.high if not isinstance(d, ChoiceDim) else d.choices[-1])

    def _extreme(self, pick: Any) -> Config:
        config = {d.name: to_python(pick(d)) for d in self.dims}
        self.check(config)
        return config

    # ---- analytic metrics ---------------------------------------------------------------------
    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        """Metrics known without training (e.g. {"params": ...}); searchers use them for constraints."""
        return {}

    def to_unit(self, config: Mapping[str, Any]) -> np.ndarray:
        """The configuration as a point in [0, 1]^d (for distances and plots)."""
        return np.array([d.to_unit(config[d.name]) for d in self.dims], dtype=float)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.options() == other.options()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.options().items()))))


def describe(d: Dim) -> str:
    """A short human description of a dimension's legal values."""
    if isinstance(d, IntDim):
        return f"integers {d.low}..{d.high}" + (f" in steps of {d.step}" if d.step != 1 else "")
    if isinstance(d, FloatDim):
        return f"[{d.low}, {d.high}]"
    return f"one of {list(d.choices)}"


def to_python(value: Any) -> Any:
    """numpy scalars to plain Python, so configurations serialise as JSON."""
    return value.item() if isinstance(value, np.generic) else value
