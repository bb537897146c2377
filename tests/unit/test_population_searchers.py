"""Local search, MO-REA and NSGA-II: the behaviour each paper describes, on explicit results."""
from __future__ import annotations

from typing import Any, Mapping

import pytest

from orchestrator.errors import StudyError
from orchestrator.objectives import Constraint, Objective, Objectives
from orchestrator.searchers.base import FINISHED, Searcher
from orchestrator.searchers.local import LocalSearcher
from orchestrator.searchers.morea import MOREASearcher
from orchestrator.searchers.nsga2 import NSGA2Searcher
from search_spaces.synthetic import SyntheticSpace

OBJ = Objectives((Objective("f1"), Objective("f2")))


class SumSpace(SyntheticSpace):
    """A grid space with an analytic size: params = sum of the x."""

    name = "sum"

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        return {"params": float(sum(config.values()))}


def changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return [k for k in a if a[k] != b[k]]


def finish(searcher: Searcher, trial_id: str, f1: float, f2: float) -> None:
    searcher.on_trial_complete(trial_id, {"f1": f1, "f2": f2})


# ---- local search -------------------------------------------------------------------------------
def test_local_search_starts_at_start_and_moves_one_dimension_from_the_front() -> None:
    space = SyntheticSpace(num_dims=4, grid=10)
    start = {"x0": 5, "x1": 5, "x2": 5, "x3": 5}
    ls = LocalSearcher(space, OBJ, seed=0, start=start)
    assert ls.suggest("s") == start
    # While the start is running, other workers get other (random) starting points.
    other = ls.suggest("r")
    assert other != start
    finish(ls, "s", 1.0, 1.0)
    assert ls.front == ["s"]
    for i in range(5):
        assert len(changed(start, ls.suggest(f"m{i}"))) == 1


def test_local_search_front_keeps_only_non_dominated_points() -> None:
    space = SyntheticSpace(num_dims=3, grid=10)
    ls = LocalSearcher(space, OBJ, seed=0, patience=None)
    for t in "abcde":
        ls.suggest(t)
    finish(ls, "a", 2.0, 2.0)
    finish(ls, "b", 1.0, 3.0)  # trade-off: joins
    finish(ls, "c", 2.0, 2.0)  # equal to a: not added, no progress
    assert ls.front == ["a", "b"] and ls.stale == 1
    finish(ls, "d", 1.0, 1.0)  # dominates a and b
    assert ls.front == ["d"] and ls.stale == 0
    ls.on_trial_complete("e", None)  # a failure is no progress
    assert ls.front == ["d"] and ls.stale == 1


def test_local_search_restarts_after_patience_and_ignores_older_moves() -> None:
    space = SyntheticSpace(num_dims=3, grid=10)
    ls = LocalSearcher(space, OBJ, seed=0, patience=2)
    for t in ("a", "b", "c", "old"):
        ls.suggest(t)
    finish(ls, "a", 1.0, 1.0)
    finish(ls, "b", 2.0, 2.0)
    finish(ls, "c", 3.0, 3.0)  # second result in a row that does not enter the front
    assert ls.epoch == 1 and ls.front == []
    ls.suggest("new")
    finish(ls, "old", 0.0, 0.0)  # proposed before the restart: not merged
    assert ls.front == []
    finish(ls, "new", 5.0, 5.0)
    assert ls.front == ["new"]


def test_local_search_restarts_when_no_neighbour_is_left() -> None:
    # Four configurations in all: the neighbour moves run out quickly.
    space = SyntheticSpace(num_dims=2, grid=2)
    ls = LocalSearcher(space, OBJ, seed=0, move="neighbour", patience=None)
    for i in range(4):
        config = ls.suggest(f"t{i}")
        finish(ls, f"t{i}", float(config["x0"]), float(config["x1"]))
    # Whatever the order, the fifth proposal finds no unexplored neighbour of the front.
    ls.suggest("t4")
    assert ls.epoch >= 1


def test_local_search_mixed_move_takes_fresh_values_when_the_neighbours_are_explored() -> None:
    space = SyntheticSpace(num_dims=2, grid=10)
    start = {"x0": 5, "x1": 5}
    ls = LocalSearcher(space, OBJ, seed=0, start=start, patience=None)
    ls.suggest("s")
    finish(ls, "s", 1.0, 1.0)
    # The start has 4 neighbours and 14 other one-dimension moves: all 18 come from it, no restart.
    moves = [ls.suggest(f"m{i}") for i in range(18)]
    assert ls.epoch == 0
    assert all(len(changed(start, m)) == 1 for m in moves)
    assert sum(abs(m["x0"] - 5) + abs(m["x1"] - 5) == 1 for m in moves) == 4


@pytest.mark.parametrize("parent,crowded_children", [("uniform", True), ("tournament", False)])
def test_local_search_tournament_never_moves_from_the_most_crowded_member(parent: str, crowded_children: bool) -> None:
    space = SyntheticSpace(num_dims=4, grid=10)
    ls = LocalSearcher(space, OBJ, seed=0, parent=parent, patience=None)
    ls.on_trial_complete(str(ls.suggest("first")), None)
    # A front of four members, pairwise different in every dimension, so a one-dimension move names its
    # parent. Crowding distance: the ends infinite, (5, 5) 1.8, (1, 9) 1.0, the most crowded.
    members = {"a": (0, (0.0, 10.0)), "b": (3, (1.0, 9.0)), "c": (6, (5.0, 5.0)), "d": (9, (10.0, 0.0))}
    for trial_id, (x, (f1, f2)) in members.items():
        ls.add_pending(trial_id, {f"x{i}": x for i in range(4)})
        finish(ls, trial_id, f1, f2)
    assert sorted(ls.front) == ["a", "b", "c", "d"]
    crowded = {f"x{i}": 3 for i in range(4)}
    moves = [ls.suggest(f"m{i}") for i in range(40)]
    assert any(len(changed(crowded, m)) == 1 for m in moves) == crowded_children


@pytest.mark.parametrize(
    "options,message",
    [
        ({"move": "jump"}, "option 'move' must be one of resample, neighbour, mixed"),
        ({"parent": "best"}, "option 'parent' must be one of uniform, tournament"),
        ({"patience": 0}, "option 'patience' must be an integer >= 1 or null"),
        ({"start": {"x0": 1}}, "configuration keys must be"),
    ],
)
def test_local_search_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalSearcher(SyntheticSpace(num_dims=2, grid=5), OBJ, **options)


def test_local_search_refuses_an_infeasible_start() -> None:
    space = SumSpace(num_dims=2, grid=5)
    with pytest.raises(ValueError, match="option 'start' breaks a constraint: params <= 2"):
        LocalSearcher(space, OBJ, [Constraint.parse("params <= 2")], start={"x0": 4, "x1": 4})


# ---- MO-REA ---------------------------------------------------------------------------------------
def test_morea_mutates_the_best_of_the_sample_in_one_dimension() -> None:
    space = SyntheticSpace(num_dims=4, grid=10)
    # A sample as large as the population: the parent is always the population's best.
    rea = MOREASearcher(space, OBJ, seed=0, population_size=3, sample_size=3)
    configs = {t: rea.suggest(t) for t in "abc"}
    finish(rea, "a", 2.0, 2.0)
    finish(rea, "b", 1.0, 1.0)  # dominates a and c
    finish(rea, "c", 3.0, 3.0)
    for i in range(5):
        assert len(changed(configs["b"], rea.suggest(f"m{i}"))) == 1


def test_morea_removes_the_oldest_member() -> None:
    space = SyntheticSpace(num_dims=3, grid=10)
    rea = MOREASearcher(space, OBJ, seed=0, population_size=3, sample_size=2)
    for i in range(6):
        rea.suggest(f"t{i}")
    for i in range(6):
        if i == 4:
            rea.on_trial_complete(f"t{i}", None)  # failures never join
        else:
            finish(rea, f"t{i}", float(i), float(-i))
    assert rea.population == ["t2", "t3", "t5"]


def test_morea_bad_options() -> None:
    with pytest.raises(ValueError, match=r"option 'sample_size' must be <= population_size \(4\), got 5"):
        MOREASearcher(SyntheticSpace(num_dims=2), OBJ, population_size=4, sample_size=5)
    with pytest.raises(ValueError, match=r"option 'mutation_rate' must be a number in \[0, 1\] or null"):
        MOREASearcher(SyntheticSpace(num_dims=2), OBJ, mutation_rate=2)


# ---- NSGA-II -------------------------------------------------------------------------------------
def test_nsga2_finishes_after_its_generations() -> None:
    space = SyntheticSpace(num_dims=3, grid=10)
    ga = NSGA2Searcher(space, OBJ, seed=0, population=4, generations=3)
    for i in range(12):
        config = ga.suggest(f"t{i}")
        assert isinstance(config, dict)
        finish(ga, f"t{i}", float(config["x0"]), float(9 - config["x0"] + config["x1"]))
    assert ga.generation == 4
    assert ga.suggest("t12") is FINISHED


def test_nsga2_drops_the_worst_member() -> None:
    space = SyntheticSpace(num_dims=3, grid=10)
    ga = NSGA2Searcher(space, OBJ, seed=0, population=3)
    for t in "abcd":
        ga.suggest(t)
    finish(ga, "a", 0.0, 4.0)
    finish(ga, "b", 5.0, 5.0)  # dominated by c, the one to go
    finish(ga, "c", 2.0, 2.0)
    finish(ga, "d", 4.0, 0.0)
    assert ga.members == ["a", "c", "d"]


def test_nsga2_children_respect_a_tight_parameter_cap() -> None:
    space = SumSpace(num_dims=5, grid=8)
    cap = Constraint.parse("params <= 6")  # about 1.4 % of the 32,768 configurations
    ga = NSGA2Searcher(space, OBJ, [cap], seed=0, population=6, crossover_probability=1.0, mutation_probability=0.5)
    for i in range(40):
        config = ga.suggest(f"t{i}")
        assert space.metrics(config)["params"] <= 6
        finish(ga, f"t{i}", float(config["x0"]), float(sum(config.values()) - config["x0"]))
    assert len(ga.seen()) == 40


def test_nsga2_says_when_no_configuration_meets_the_cap() -> None:
    space = SumSpace(num_dims=2, grid=5)
    ga = NSGA2Searcher(space, OBJ, [Constraint.parse("params <= -1")], seed=0)
    with pytest.raises(StudyError, match="constraints: no configuration of 'sum' meets params <= -1"):
        ga.suggest("t0")


@pytest.mark.parametrize(
    "options,message",
    [
        ({"population": 1}, "option 'population' must be an integer >= 2, got 1"),
        ({"generations": 0}, "option 'generations' must be an integer >= 1 or null, got 0"),
        ({"crossover_probability": 1.5}, r"option 'crossover_probability' must be a number in \[0, 1\], got 1.5"),
        ({"mutation_probability": "high"}, r"option 'mutation_probability' must be a number in \[0, 1\] or null"),
    ],
)
def test_nsga2_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NSGA2Searcher(SyntheticSpace(num_dims=2), OBJ, **options)
