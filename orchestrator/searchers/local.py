"""Multi-objective local search (pruning paper, Appendix D, Algorithm 5).

Keep a Pareto front P, started from one configuration; repeatedly take a member of P, change one
dimension (a fresh value for one random dimension as in the paper, or one step to a neighbouring
value), evaluate it and set P to the Pareto front of P and the new point. It runs asynchronously:
every free worker gets a move from the current front. The front restarts from a random
configuration when `patience` finished trials in a row did not enter it, or when no member has an
unexplored move left; results of moves made before a restart are not merged into the new front.

Two departures from Algorithm 5 are the defaults, both measured by `benchmarks/search_vs_peers.py`
(the README's "Which searcher"): the move is a fresh value or a neighbouring one with equal chance
(either kind alone fell behind Optuna's TPE at 100 trials on one of the tables), and the
member moved from wins a binary tournament on crowding distance (NSGA-II's, Deb et al. 2002), so
the sparse parts and the ends of the front get explored. `move: resample, parent: uniform` is the
paper's algorithm.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import numpy as np

from orchestrator.objectives import Constraint, Objectives
from orchestrator.pareto import crowding_distance
from orchestrator.searchers.base import Finished, config_key
from orchestrator.searchers.population import PopulationSearcher, check_int
from search_spaces.base import Config, SearchSpace

MOVES = ("resample", "neighbour", "mixed")
PARENTS = ("uniform", "tournament")


class LocalSearcher(PopulationSearcher):
    """Options: `start` (a configuration; default a random one), `move` ("resample", the paper's
    move: a new value for one random dimension; "neighbour": one step in one dimension,
    `space.neighbours`; "mixed", the default: either, with equal chance), `parent` ("uniform", the
    paper's: a random front member; "tournament", the default: the less crowded of two random
    members) and `patience` (finished trials in a row without entering the front before a restart;
    null never restarts for that reason)."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        *,
        start: Mapping[str, Any] | None = None,
        move: Literal["resample", "neighbour", "mixed"] = "mixed",
        parent: Literal["uniform", "tournament"] = "tournament",
        patience: int | None = 30,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        if move not in MOVES:
            raise ValueError(f"option 'move' must be one of {', '.join(MOVES)}, got {move!r}")
        if parent not in PARENTS:
            raise ValueError(f"option 'parent' must be one of {', '.join(PARENTS)}, got {parent!r}")
        check_int("patience", patience, 1, allow_none=True)
        if start is not None:
            if not isinstance(start, Mapping):
                raise ValueError(f"option 'start' must be a configuration (a mapping), got {start!r}")
            space.check(start)
            if not self.analytically_feasible(start):
                raise ValueError(f"option 'start' breaks a constraint: {', '.join(map(str, self.constraints))}")
        self.start = dict(start) if start is not None else None
        self.move = move
        self.parent = parent
        self.patience = patience
        self.started = False
        #: trial ids of the current front, in the order they entered it.
        self.front: list[str] = []
        #: restarts so far; `origin` says from which one each pending trial was proposed.
        self.epoch = 0
        self.origin: dict[str, int] = {}
        self.stale = 0

    def propose(self, trial_id: str) -> Config | None | Finished:
        self.origin[trial_id] = self.epoch
        if not self.started:
            self.started = True
            return dict(self.start) if self.start is not None else self.random_fresh()
        if not self.front:
            # No front yet (the start is running or failed, or the search just restarted).
            return self.random_fresh()
        config = self.step()
        if config is None:
            self.restart()
            self.origin[trial_id] = self.epoch
            return self.random_fresh()
        return config

    def step(self) -> Config | None:
        """An unexplored feasible move from a front member, or None when none is left."""
        seen = self.seen()
        for i in self.parent_order():
            parent = self.evaluated[self.front[int(i)]][0]
            for move in self.move_kinds():
                config = self.move_from(parent, move, seen)
                if config is not None:
                    return config
        return None

    def move_kinds(self) -> list[str]:
        """The kinds of move to try from a member, in order: "mixed" draws which comes first and falls
        back on the other, so a member whose neighbours are all explored still gets fresh values."""
        if self.move != "mixed":
            return [self.move]
        return ["resample", "neighbour"] if self.rng.random() < 0.5 else ["neighbour", "resample"]

    def move_from(self, parent: Config, move: str, seen: set[str]) -> Config | None:
        if move == "resample":
            # rate 0: exactly one random dimension gets a new value (Algorithm 5).
            return self.try_fresh(lambda: self.space.mutate(parent, self.rng, rate=0.0), seen)
        moves = [c for c in self.space.neighbours(parent) if config_key(c) not in seen and self.analytically_feasible(c)]
        return moves[int(self.rng.integers(len(moves)))] if moves else None

    def parent_order(self) -> np.ndarray:
        """Front indices in the order their moves are tried: random, or the tournament's winner first."""
        order = self.rng.permutation(len(self.front))
        if self.parent == "uniform" or len(self.front) < 2:
            return order
        crowding = crowding_distance(self.points(self.front))
        a, b = order[:2]
        winner = a if crowding[a] >= crowding[b] else b
        return np.concatenate([[winner], order[order != winner]])

    def admit(self, trial_id: str, values: list[float] | None) -> None:
        if self.origin.pop(trial_id, self.epoch) != self.epoch:
            return  # proposed from a front that has since been abandoned
        if values is None:
            self.no_progress()
            return
        new = np.asarray(values)
        front = self.points(self.front)
        if np.any(np.all(front <= new, axis=1)):
            self.no_progress()  # an equal or dominating member is already in the front
            return
        dominated = np.all(new <= front, axis=1)  # strictly: equality was excluded above
        self.front = [t for t, d in zip(self.front, dominated) if not d] + [trial_id]
        self.stale = 0

    def no_progress(self) -> None:
        self.stale += 1
        if self.patience is not None and self.stale >= self.patience:
            self.restart()

    def restart(self) -> None:
        self.epoch += 1
        self.front = []
        self.stale = 0

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "started": self.started,
            "front": list(self.front),
            "epoch": self.epoch,
            "origin": dict(self.origin),
            "stale": self.stale,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.started = bool(state["started"])
        self.front = list(state["front"])
        self.epoch = int(state["epoch"])
        self.origin = {k: int(v) for k, v in state["origin"].items()}
        self.stale = int(state["stale"])
