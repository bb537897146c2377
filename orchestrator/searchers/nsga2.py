"""NSGA-II, asynchronous steady-state (Deb et al. 2002, "A fast and elitist multiobjective genetic
algorithm: NSGA-II"; steady-state selection after Durillo et al. 2009, "On the effect of the
steady-state selection scheme in multi-objective genetic algorithms"). ELM (Elastic
Architecture Search) runs this kind of evolutionary search under a parameter cap.

The first `population` proposals are random. Every later proposal is a child: two binary
tournaments by the crowded-comparison operator (lower non-dominated rank, then larger crowding
distance) pick the parents, uniform crossover with `crossover_probability`, then mutation of
each dimension with `mutation_probability`. Each result joins the population, which then drops
its worst member (last front, smallest crowding distance), so a generation forms as results
arrive and no worker waits for a whole generation. Children that break a constraint the space
evaluates analytically (e.g. `params <= N`) or repeat an earlier proposal are redrawn.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from orchestrator.pareto import rank_and_crowding, sort_order
from orchestrator.objectives import Constraint, Objectives
from orchestrator.searchers.base import FINISHED, Finished
from orchestrator.searchers.population import PopulationSearcher, check_int, check_probability
from search_spaces.base import Config, SearchSpace


class NSGA2Searcher(PopulationSearcher):
    """Options: `population` (members kept, >= 2), `generations` (stop after population x
    generations proposals, the random first generation included; null: never), and
    `crossover_probability` / `mutation_probability` (per-dimension rate; null: 1 / #dimensions;
    0: no mutation) in [0, 1]."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        *,
        population: int = 50,
        generations: int | None = None,
        crossover_probability: float = 0.9,
        mutation_probability: float | None = None,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        check_int("population", population, 2)
        check_int("generations", generations, 1, allow_none=True)
        check_probability("crossover_probability", crossover_probability)
        check_probability("mutation_probability", mutation_probability, allow_none=True)
        self.population = population
        self.generations = generations
        self.crossover_probability = float(crossover_probability)
        self.mutation_probability = mutation_probability
        #: trial ids of the current population, in the order they joined.
        self.members: list[str] = []

    @property
    def generation(self) -> int:
        """The generation the next proposal belongs to (1 is the random one)."""
        return self.num_proposed // self.population + 1

    def propose(self, trial_id: str) -> Config | None | Finished:
        if self.generations is not None and self.num_proposed >= self.population * self.generations:
            return FINISHED
        if self.num_proposed < self.population or not self.members:
            return self.random_fresh()
        ranks, crowding = rank_and_crowding(self.points(self.members))

        def tournament() -> Config:
            i, j = (int(k) for k in self.rng.integers(len(self.members), size=2))
            better_j = (ranks[j], -crowding[j]) < (ranks[i], -crowding[i])
            return self.evaluated[self.members[j if better_j else i]][0]

        return self.fresh(lambda: self.child(tournament(), tournament()))

    def child(self, a: Config, b: Config) -> Config:
        config = self.space.crossover(a, b, self.rng) if self.rng.random() < self.crossover_probability else dict(a)
        if self.mutation_probability == 0:
            return config
        return self.space.mutate(config, self.rng, rate=self.mutation_probability)

    def admit(self, trial_id: str, values: list[float] | None) -> None:
        if values is None:
            return
        self.members.append(trial_id)
        if len(self.members) > self.population:
            worst = int(sort_order(self.points(self.members))[-1])
            del self.members[worst]

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"members": list(self.members)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.members = list(state["members"])
