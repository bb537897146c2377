"""What the population-based searchers (local search, MO-REA, NSGA-II) share: the evaluated
trials by id, fresh feasible candidates, and option checks."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from orchestrator.objectives import Constraint, Objectives
from orchestrator.searchers.base import Searcher, config_key
from search_spaces.base import Config, SearchSpace

#: how many times a move is redrawn before falling back to a random sample.
REDRAWS = 100


class PopulationSearcher(Searcher):
    """A searcher whose members are evaluated trials, remembered by trial id.

    `evaluated` maps every trial that finished with objective values to (config, values);
    it is rebuilt from the history on `load_state_dict`, so subclasses only save ids.
    """

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        self.evaluated: dict[str, tuple[Config, list[float]]] = {}

    @property
    def num_proposed(self) -> int:
        """Every configuration handed out so far, finished or not."""
        return len(self.pending) + len(self.history)

    def observe(
        self, trial_id: str, config: Config, values: list[float] | None, metrics: Mapping[str, float] | None
    ) -> None:
        if values is not None:
            self.evaluated[trial_id] = (config, values)
        self.admit(trial_id, values)

    def admit(self, trial_id: str, values: list[float] | None) -> None:
        """Hook: a trial finished (values None when it failed or broke an outcome constraint)."""

    def points(self, trial_ids: Sequence[str]) -> np.ndarray:
        """Minimise-form objective values of `trial_ids`, shape (len(trial_ids), #objectives)."""
        return np.array([self.evaluated[t][1] for t in trial_ids], dtype=float).reshape(len(trial_ids), len(self.objectives))

    def fresh(self, move: Callable[[], Config]) -> Config:
        """A configuration from `move` that meets the analytic constraints and was never proposed;
        after `REDRAWS` failed draws, a random one with the same properties (repair by resampling)."""
        config = self.try_fresh(move)
        return config if config is not None else self.random_fresh()

    def try_fresh(
        self, move: Callable[[], Config], seen: set[str] | None = None, tries: int = REDRAWS
    ) -> Config | None:
        """Like `fresh`, but None when `tries` draws found nothing new, valid and feasible. Validity is
        checked too, so a move may draw without repairing and leave the invalid draws to be thrown away."""
        seen = self.seen() if seen is None else seen
        for _ in range(tries):
            config = move()
            if config_key(config) not in seen and self.space.is_valid(config) and self.analytically_feasible(config):
                return config
        return None

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.evaluated = {t: (c, v) for t, c, v in self.history if v is not None}


def check_int(name: str, value: Any, low: int, allow_none: bool = False) -> None:
    """One-line ValueError unless `value` is an integer >= low (or None when allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        also = " or null" if allow_none else ""
        raise ValueError(f"option '{name}' must be an integer >= {low}{also}, got {value!r}")


def check_probability(name: str, value: Any, allow_none: bool = False) -> None:
    """One-line ValueError unless `value` is a number in [0, 1] (or None when allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        also = " or null" if allow_none else ""
        raise ValueError(f"option '{name}' must be a number in [0, 1]{also}, got {value!r}")
