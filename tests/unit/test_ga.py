"""The genetic search of ELM (orchestrator/searchers/ga.py): the paper's defaults, progress on the first
objective, a cap met by exclusion, generations and the budget, and a resume mid-generation."""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping

import numpy as np
import pytest

from orchestrator.objectives import Constraint, Objective, Objectives
from orchestrator.searchers.base import FINISHED
from orchestrator.searchers.ga import GASearcher
from search_spaces.base import Config
from search_spaces.elm import ElmSpace
from search_spaces.synthetic import SyntheticSpace
from tests.contracts.plugin_options import SEARCH_SPACE_OPTIONS

OBJ = Objectives((Objective("f1"), Objective("f2")))
Score = Callable[[Mapping[str, Any]], float]


class SumSpace(SyntheticSpace):
    """A grid space with an analytic size, params = sum of the x, whose own sampler and mutation meet
    a cap by shrinking: they always return the largest configuration under it, as a repairing space
    would pile its draws up at the cap."""

    name = "sum"

    def __init__(self, cap: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cap = cap

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        return {"params": float(sum(config.values()))}

    def repaired(self) -> Config:
        left, out = self.cap, {}
        for d in self.dims:
            out[d.name] = min(left, d.high)
            left -= out[d.name]
        return out

    def sample(self, rng: np.random.Generator) -> Config:
        return self.repaired()

    def mutate(self, config: Mapping[str, Any], rng: np.random.Generator, rate: float | None = None) -> Config:
        return self.repaired()


def sphere(config: Mapping[str, Any]) -> float:
    """Squared distance from the point (3, 3, ...) of a 0..9 grid: 0 at the optimum."""
    return float(sum((v - 3) ** 2 for v in config.values()))


def run(ga: GASearcher, score: Score, n: int, start: int = 0) -> list[tuple[Config, float]]:
    """n trials one at a time; f2 = -f1 so only a searcher that follows the first objective improves it."""
    out = []
    for i in range(start, start + n):
        config = ga.suggest(f"t{i}")
        if config is FINISHED:
            break
        assert isinstance(config, dict)
        f = score(config)
        ga.on_trial_complete(f"t{i}", {"f1": f, "f2": -f})
        out.append((config, f))
    return out


def test_defaults_are_the_papers_and_options_are_checked() -> None:
    ga = GASearcher(SyntheticSpace(num_dims=3, grid=5), OBJ)
    assert (ga.population, ga.generations, ga.crossover_probability, ga.mutation_probability) == (50, 40, 1.0, 0.1)
    with pytest.raises(ValueError, match="tournament_size"):
        GASearcher(SyntheticSpace(), OBJ, population=4, tournament_size=5)
    with pytest.raises(ValueError, match="mutation_probability"):
        GASearcher(SyntheticSpace(), OBJ, mutation_probability=1.5)
    with pytest.raises(ValueError, match="population"):
        GASearcher(SyntheticSpace(), OBJ, population=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_improves_the_first_objective_over_generations(seed: int) -> None:
    space = SyntheticSpace(num_dims=6, grid=10)
    ga = GASearcher(space, OBJ, seed=seed, population=10, generations=6)
    done = run(ga, sphere, 100)
    assert len(done) == 60
    first, last = [f for _, f in done[:10]], [f for _, f in done[-10:]]
    # A random configuration scores about 6 x 11.5 = 69; a search that ignored f1 (or chased f2)
    # would not halve it in five generations.
    assert np.mean(last) < 0.5 * np.mean(first)
    assert min(last) < min(first)


def test_cap_is_met_by_exclusion_not_by_the_spaces_repair() -> None:
    space = SumSpace(cap=12, num_dims=4, grid=10)
    ga = GASearcher(space, OBJ, [Constraint.parse("params <= 12")], seed=0, population=8, generations=5)
    done = run(ga, sphere, 40)
    sizes = [space.metrics(c)["params"] for c, _ in done]
    assert len(done) == 40 and max(sizes) <= 12
    # Drawn, not repaired: no pile-up at the space's repaired configuration, and sizes spread below the cap.
    assert sum(c == space.repaired() for c, _ in done) <= 1
    assert len(set(sizes)) >= 5 and min(sizes) < 8
    # Children are bred, not replaced by the repaired draw (which, as a repeat, would leave only random
    # draws): the last generation beats the first (0.55 of its mean here; random draws stay near 1).
    scores = [f for _, f in done]
    assert np.mean(scores[-8:]) < 0.7 * np.mean(scores[:8])


def test_elm_candidates_are_valid_and_under_the_cap() -> None:
    space = ElmSpace(**SEARCH_SPACE_OPTIONS["elm"])
    ga = GASearcher(space, OBJ, seed=0, population=6, generations=3)
    done = run(ga, lambda c: float(-space.metrics(c)["params"]), 18)
    assert len(done) == 18
    for config, _ in done:
        space.check(config)  # the space's cap is part of its validity
        assert space.capped_size(config) <= space.max_params


def test_generations_end_the_search_and_a_short_budget_is_all_random() -> None:
    space = SyntheticSpace(num_dims=3, grid=10)
    ga = GASearcher(space, OBJ, seed=0, population=4, generations=3)
    assert len(run(ga, sphere, 20)) == 12
    assert ga.suggest("more") is FINISHED
    # A budget below one population: every proposal is a distinct random draw, nothing breaks.
    big = GASearcher(space, OBJ, seed=0, population=50)
    configs = [c for c, _ in run(big, sphere, 7)]
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == 7 and big.parents == []


def test_failed_first_generation_keeps_drawing_then_breeds() -> None:
    space = SyntheticSpace(num_dims=3, grid=10)
    ga = GASearcher(space, OBJ, seed=0, population=3)
    for i in range(4):  # generation 1 and the first proposal of generation 2 all fail
        ga.suggest(f"f{i}")
        ga.on_trial_complete(f"f{i}", None)
    assert ga.parents == []
    assert len(run(ga, sphere, 6)) == 6
    assert ga.parents != []


def test_resume_mid_generation_continues_identically() -> None:
    space = SyntheticSpace(num_dims=4, grid=10)
    original = GASearcher(space, OBJ, seed=3, population=5)
    run(original, sphere, 5)
    # Generation 2 chooses its parents at its first proposal; two of its trials finish after that,
    # so a resumed search that chose the parents again would breed from a different pool.
    in_flight = {t: original.suggest(t) for t in ("a", "b", "c")}
    for t in ("a", "b"):
        original.on_trial_complete(t, {"f1": 0.0, "f2": 0.0})
    state = json.loads(json.dumps(original.state_dict()))
    resumed = GASearcher(space, OBJ, seed=99, population=5)
    resumed.load_state_dict(state)
    assert resumed.pending == {"c": in_flight["c"]}
    a, b = run(original, sphere, 12, start=10), run(resumed, sphere, 12, start=10)
    assert [c for c, _ in a] == [c for c, _ in b]
