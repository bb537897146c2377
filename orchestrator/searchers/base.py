"""The searcher interface (after Ray Tune's `Searcher` and syne-tune's `TrialScheduler`).

A searcher proposes configurations of one search space and learns from finished trials.
Everything it sees is in minimise form (`Objectives.to_minimise`). Its state is a JSON-able
dict, saved with the study so a resumed study continues the same search.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np

from orchestrator.errors import StudyError
from orchestrator.objectives import Constraint, Objectives, feasible
from search_spaces.base import Config, SearchSpace


OptionsT = TypeVar("OptionsT")


def plugin_options(name: str, options_class: type[OptionsT], options: Mapping[str, Any]) -> OptionsT:
    """A searcher's typed options from the study's mapping; an unknown name is one line listing the allowed."""
    allowed = sorted(options_class.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {name} options {unknown}; allowed: {allowed}")
    return options_class(**options)


class Finished:
    """Returned by `suggest` when the searcher has nothing more to propose, ever."""

    def __repr__(self) -> str:
        return "FINISHED"


FINISHED = Finished()


class Searcher(ABC):
    """Propose configurations; learn from results.

    Subclasses implement `propose`; the base keeps the book-keeping every searcher needs:
    pending trials, the observed history (config, minimise-form objectives or None when the
    trial failed), analytic-constraint filtering and the random generator.
    """

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
    ) -> None:
        self.space = space
        self.objectives = objectives
        self.constraints = tuple(constraints)
        self.rng = np.random.default_rng(seed)
        #: the most trials in flight at once (the study's budget.max_concurrent), set by the runner;
        #: None when unknown. A searcher may use it to plan for the workers that are free.
        self.workers: int | None = None
        self.pending: dict[str, Config] = {}
        #: (trial_id, config, minimise-form objectives or None for a failed / infeasible trial)
        self.history: list[tuple[str, Config, list[float] | None]] = []

    # ---- the interface the runner calls ----------------------------------------------------------
    def suggest(self, trial_id: str) -> Config | None | Finished:
        """A configuration for a new trial, None when none is ready yet, or FINISHED."""
        config = self.propose(trial_id)
        if isinstance(config, dict):
            config = self.space.normalise(config)
            self.pending[trial_id] = config
        return config

    def add_pending(self, trial_id: str, config: Config) -> None:
        """Count a trial this searcher did not propose now (one an interrupted run left, rerun under its
        id, or a stored one) as pending, so its completion is learned; one already pending is kept.

        One already learned stays learned: the driver can die after the searcher state recorded a
        trial's end and before the results did; the trial then reruns, and its second end must not
        count as a second observation."""
        if not self.learned(trial_id):
            self.pending.setdefault(trial_id, config)

    def learned(self, trial_id: str) -> bool:
        """Whether this trial's end is already in the history."""
        return any(tid == trial_id for tid, _, _ in self.history)

    def on_trial_result(self, trial_id: str, metrics: Mapping[str, float]) -> None:
        """An intermediate result; most searchers ignore it."""

    def on_trial_complete(self, trial_id: str, metrics: Mapping[str, float] | None) -> None:
        """A finished trial; `metrics` is None when it failed."""
        config = self.pending.pop(trial_id, None)
        if config is None:
            return
        ok = metrics is not None and self.objectives.has_values(metrics) and feasible(self.constraints, metrics)
        values = self.objectives.to_minimise(metrics).tolist() if ok and metrics is not None else None
        self.history.append((trial_id, config, values))
        self.observe(trial_id, config, values, metrics)

    # ---- what subclasses implement -------------------------------------------------------------------
    @abstractmethod
    def propose(self, trial_id: str) -> Config | None | Finished:
        """A new configuration (unnormalised is fine), None or FINISHED."""

    def observe(
        self, trial_id: str, config: Config, values: list[float] | None, metrics: Mapping[str, float] | None
    ) -> None:
        """Hook called after the base has recorded a finished trial."""

    # ---- helpers -------------------------------------------------------------------------------------
    def analytically_feasible(self, config: Mapping[str, Any]) -> bool:
        """Whether the constraints the space can evaluate without training hold."""
        if not self.constraints:  # the space's metrics (a parameter count) cost about a millisecond
            return True
        return feasible(self.constraints, self.space.metrics(config))

    def sample_feasible(self, tries: int = 1000) -> Config:
        """A random configuration that meets the analytic constraints (or the last sample tried)."""
        config = self.space.sample(self.rng)
        for _ in range(tries - 1):
            if self.analytically_feasible(config):
                break
            config = self.space.sample(self.rng)
        return config

    def random_fresh(self, seen: set[str] | None = None, redraws: int = 100) -> Config:
        """A random feasible configuration, unseen when one can be found (a space too small to
        have any unseen configuration left gets a repeat)."""
        seen = self.seen() if seen is None else seen
        config = self.sample_feasible()
        for _ in range(redraws):
            if config_key(config) not in seen:
                break
            config = self.sample_feasible()
        if not self.analytically_feasible(config):
            # Random samples keep missing a tight cap; the smallest configuration is the last hope.
            config = self.space.smallest()
            if not self.analytically_feasible(config):
                bounds = ", ".join(map(str, self.constraints))
                raise StudyError("constraints", f"no configuration of {self.space.name!r} meets {bounds}; loosen the bound")
        return config

    def seen(self) -> set[str]:
        """Keys of every configuration proposed so far (pending or finished)."""
        return {config_key(c) for c in self.pending.values()} | {config_key(c) for _, c, _ in self.history}

    # ---- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state; subclasses extend it with `super().state_dict() | {...}`."""
        return {
            "rng": self.rng.bit_generator.state,
            "pending": self.pending,
            "history": [list(h) for h in self.history],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.pending = {k: dict(v) for k, v in state["pending"].items()}
        self.history = [(t, dict(c), v) for t, c, v in state["history"]]


def config_key(config: Mapping[str, Any]) -> str:
    """A hashable identity for a configuration."""
    return repr(sorted(config.items()))
