"""The genetic search of ELM (elm-elastic-architecture-search.txt, §III-A "Flexible Search Space with
High Efficiency" and Appendix A "Searching"): after SPOS training, a genetic algorithm refines a
population by selection, crossover and mutation towards the most accurate architecture, under a
strict parameter ceiling that *excludes* every architecture above it. Appendix A's settings are the
defaults: population 50, 40 generations, crossover probability 1, mutation probability 0.1.

ELM does not say how parents are selected; it takes its search from SPOS (Guo et al. 2020, "Single
Path One-Shot Neural Architecture Search with Uniform Sampling", Algorithm 1), whose parents are the
best candidates seen so far. Here each generation's parents are drawn by tournament (`tournament_size`
members, the best wins) from the `population` best trials evaluated before the generation began:
elitist as SPOS's Top-k, with a selection pressure that does not depend on the population size.

- Single objective: the study's first objective (the ELM study's `accuracy`). A study with several
  objectives is accepted and the others are only recorded (for the front and the report), so one
  study can switch between `ga` and `nsga2` by the searcher line alone.
- Generation 1 is `population` random draws; each later proposal is a child: two tournaments, uniform
  crossover (the space's, e.g. whole ELM layers) with `crossover_probability`, then every dimension
  drawn anew from its own range with `mutation_probability`.
- Exclusion, never repair: a draw or child that is invalid in the space, breaks an analytic
  constraint or repeats an earlier proposal is thrown away and drawn again. The space's own sampler
  and mutation are not used, because a space may meet its cap by shrinking a draw (ELM does), which
  would bias the search towards the cap.
- Asynchronous: no worker waits for a generation to finish. A generation is `population` proposals;
  results that arrive after their generation's parents were chosen count from the next one.
- The budget may end mid-generation; the best trial so far is the answer. Size `population` to the
  budget: with `num_trials` below `population` every trial is a random draw (on CPU, e.g. 8 x 5 for
  40 trials); `generations` stops the search after `population x generations` proposals.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from orchestrator.errors import StudyError
from orchestrator.objectives import Constraint, Objectives
from orchestrator.searchers.base import FINISHED, Finished
from orchestrator.searchers.population import PopulationSearcher, check_int, check_probability
from search_spaces.base import Config, SearchSpace, to_python

#: draws tried for one random member: some spaces accept only a few per cent of independent draws
#: (ELM with elastic FFN widths and heads: about 3-5 % under its cap, 0.4 ms each; its default
#: block-only space accepts nearly all).
RANDOM_DRAWS = 10_000


class GASearcher(PopulationSearcher):
    """Options: `population` (proposals per generation and parents kept, >= 2), `generations` (stop
    after population x generations proposals, the random first generation included; null: never),
    `crossover_probability` and `mutation_probability` (per dimension) in [0, 1], `tournament_size`
    (1..population; 1 picks parents uniformly)."""

    def __init__(self, space: SearchSpace, objectives: Objectives, constraints: Sequence[Constraint] = (),
                 seed: int = 0, *, population: int = 50, generations: int | None = 40,
                 crossover_probability: float = 1.0, mutation_probability: float = 0.1,
                 tournament_size: int = 2) -> None:
        super().__init__(space, objectives, constraints, seed)
        check_int("population", population, 2)
        check_int("generations", generations, 1, allow_none=True)
        check_probability("crossover_probability", crossover_probability)
        check_probability("mutation_probability", mutation_probability)
        check_int("tournament_size", tournament_size, 1)
        if tournament_size > population:
            raise ValueError(f"option 'tournament_size' must be <= population ({population}), got {tournament_size}")
        self.population = population
        self.generations = generations
        self.crossover_probability = float(crossover_probability)
        self.mutation_probability = float(mutation_probability)
        self.tournament_size = tournament_size
        #: trial ids the current generation breeds from, best first, and that generation's number.
        self.parents: list[str] = []
        self.parents_of = 0

    @property
    def generation(self) -> int:
        """The generation the next proposal belongs to (1 is the random one)."""
        return self.num_proposed // self.population + 1

    def propose(self, trial_id: str) -> Config | None | Finished:
        if self.generations is not None and self.generation > self.generations:
            return FINISHED
        if self.generation > 1 and (self.parents_of != self.generation or not self.parents):
            # Chosen once per generation (SPOS updates its Top-k between generations); retried while
            # every trial so far has failed.
            self.parents = sorted(self.evaluated, key=lambda t: self.evaluated[t][1][0])[: self.population]
            self.parents_of = self.generation
        if not self.parents:
            return self.random_member()
        child = self.try_fresh(lambda: self.child(self.tournament(), self.tournament()))
        return child if child is not None else self.random_member()

    def tournament(self) -> Config:
        """The best of `tournament_size` distinct parents drawn uniformly (first objective)."""
        k = min(self.tournament_size, len(self.parents))
        drawn = [int(i) for i in self.rng.choice(len(self.parents), size=k, replace=False)]
        return self.evaluated[self.parents[min(drawn)]][0]  # parents are sorted: the lowest index wins

    def child(self, a: Config, b: Config) -> Config:
        config = self.space.crossover(a, b, self.rng) if self.rng.random() < self.crossover_probability else dict(a)
        return self.redraw(config, self.mutation_probability)

    def redraw(self, config: Mapping[str, Any], rate: float) -> Config:
        """`config` with each dimension drawn anew from its own range with probability `rate` (1: a
        random draw, `config` unused). Nothing is repaired; `try_fresh` throws an invalid result away."""
        return {d.name: to_python(d.sample(self.rng)) if rate >= 1.0 or self.rng.random() < rate else config[d.name]
                for d in self.space.dims}

    def random_member(self) -> Config:
        """A random valid, feasible, new configuration; a repeat when no new one can be found."""
        draw = lambda: self.redraw({}, 1.0)  # noqa: E731
        config = self.try_fresh(draw, tries=RANDOM_DRAWS) or self.try_fresh(draw, seen=set(), tries=RANDOM_DRAWS)
        if config is None:
            bounds = ", ".join(map(str, self.constraints)) or "the space's own rules"
            raise StudyError("constraints", f"no configuration of {self.space.name!r} drawn at random meets "
                                            f"{bounds} in {RANDOM_DRAWS} draws; loosen the bound")
        return config

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"parents": list(self.parents), "parents_of": self.parents_of}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.parents = list(state["parents"])
        self.parents_of = int(state["parents_of"])
