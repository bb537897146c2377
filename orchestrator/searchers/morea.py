"""Multi-objective regularised evolution, MO-REA (pruning paper, Appendix D; after Real et al.
2019, "Regularized evolution for image classifier architecture search", Algorithm 1).

A population of the `population_size` most recent evaluated trials. The first
`population_size` proposals are random; after that each proposal draws `sample_size` members
at random, takes the best of them by non-dominated rank (crowding distance breaking ties within
a front) and mutates it. A new result enters the population and the oldest member leaves
(age-based removal: the "regularisation").
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from orchestrator.pareto import sort_order
from orchestrator.objectives import Constraint, Objectives
from orchestrator.searchers.base import Finished
from orchestrator.searchers.population import PopulationSearcher, check_int, check_probability
from search_spaces.base import Config, SearchSpace


class MOREASearcher(PopulationSearcher):
    """Options: `population_size` (members kept, >= 2), `sample_size` (tournament size,
    1..population_size) and `mutation_rate` (null: one random dimension gets a new value, as in
    the paper; a number in [0, 1]: each dimension is resampled with that probability, at least one)."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        *,
        population_size: int = 50,
        sample_size: int = 10,
        mutation_rate: float | None = None,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        check_int("population_size", population_size, 2)
        check_int("sample_size", sample_size, 1)
        if sample_size > population_size:
            raise ValueError(f"option 'sample_size' must be <= population_size ({population_size}), got {sample_size}")
        check_probability("mutation_rate", mutation_rate, allow_none=True)
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_rate = mutation_rate
        #: trial ids of the population, oldest first.
        self.population: list[str] = []

    def propose(self, trial_id: str) -> Config | None | Finished:
        if self.num_proposed < self.population_size or not self.population:
            return self.random_fresh()
        k = min(self.sample_size, len(self.population))
        picked = [self.population[int(i)] for i in self.rng.choice(len(self.population), size=k, replace=False)]
        parent = self.evaluated[picked[int(sort_order(self.points(picked))[0])]][0]
        rate = 0.0 if self.mutation_rate is None else float(self.mutation_rate)
        return self.fresh(lambda: self.space.mutate(parent, self.rng, rate=rate))

    def admit(self, trial_id: str, values: list[float] | None) -> None:
        if values is None:
            return
        self.population.append(trial_id)
        del self.population[: -self.population_size]

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"population": list(self.population)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = list(state["population"])
