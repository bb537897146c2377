"""Every registered searcher honours the searcher contract (after Optuna's
`testing/pytest_samplers.py`): the suggest / complete / fail lifecycle with several trials in
flight, a JSON state round trip, suggestions inside the space and the analytic constraints, and
a search that beats doing nothing; and a small study on the in-process backend. The hand-driven
loop (`drive`) stays where the contract needs several trials in flight at once, which the
in-process backend never has. Plug-ins are read from the registry when the tests run."""
from __future__ import annotations

import json
import math
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pytest

from orchestrator import registry
from tests.contracts.local_study import local_study
from orchestrator.objectives import Constraint, Objective, Objectives
from orchestrator.pareto import hypervolume
from orchestrator.run import run_study
from orchestrator.study import parse_study
from orchestrator.searchers.base import FINISHED, Searcher
from search_spaces.synthetic import SyntheticSpace
from tests.contracts.plugin_options import SEARCHER_OPTIONS
from trainers.synthetic import objectives

NAMES = registry.searchers.names()
ROOT = Path(__file__).resolve().parents[2]
#: 1,008 sub-networks of MiniLM-L6 scored on shared weights; 571 of them have at most 15e6 parameters.
SUBNET_TABLE = ROOT / "benchmarks" / "data" / "subnet_table_minilm_movie_reviews.csv"
OBJECTIVES = Objectives((Objective("f1"), Objective("f2")))
SPACES = {"grid": lambda: SyntheticSpace(num_dims=3, grid=6), "continuous": lambda: SyntheticSpace(num_dims=4)}


class CappedSpace(SyntheticSpace):
    """A grid space that knows its parameter count without training: params = sum of the x."""

    name = "capped"

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        return {"params": float(sum(config[d.name] for d in self.dims))}


@contextmanager
def searcher_for(
    name: str, space: SyntheticSpace, constraints: Sequence[Constraint] = (), seed: int = 0
) -> Iterator[Searcher]:
    cls = registry.searchers.load(name)
    searcher = cls(space, OBJECTIVES, constraints, seed, **SEARCHER_OPTIONS.get(name, {}))
    try:
        yield searcher
    finally:
        close = getattr(searcher, "close", None)
        if callable(close):
            close()


def ask(searcher: Searcher, trial_id: str, timeout: float = 60.0) -> Any:
    """The next suggestion, waiting while the searcher answers None (not ready yet)."""
    deadline = time.monotonic() + timeout
    while True:
        out = searcher.suggest(trial_id)
        if out is not None or time.monotonic() > deadline:
            return out
        time.sleep(0.01)


def zdt1(space: SyntheticSpace, config: Mapping[str, Any]) -> dict[str, float]:
    f = objectives("zdt1", np.array(space.point(dict(config))))
    return {"f1": float(f[0]), "f2": float(f[1])} | space.metrics(config)


def drive(
    searcher: Searcher,
    space: SyntheticSpace,
    n: int,
    workers: int = 3,
    fails: Callable[[int], bool] = lambda i: False,
    start: int = 0,
) -> list[tuple[str, dict, dict[str, float] | None]]:
    """Run trials start..start+n-1 with `workers` in flight, finishing the oldest first.
    Every suggestion is checked against the space. Returns (trial id, config, metrics)."""
    done: list[tuple[str, dict, dict[str, float] | None]] = []
    running: deque[tuple[int, str, dict]] = deque()
    i, end = start, start + n
    while True:
        while i < end and len(running) < workers:
            trial_id = f"t{i}"
            config = ask(searcher, trial_id)
            if config is FINISHED:
                end = i
                break
            assert isinstance(config, dict), f"suggest gave {config!r}"
            space.check(config)
            running.append((i, trial_id, config))
            i += 1
        if not running:
            return done
        j, trial_id, config = running.popleft()
        metrics = None if fails(j) else zdt1(space, config)
        if metrics is not None:
            searcher.on_trial_result(trial_id, metrics)
        searcher.on_trial_complete(trial_id, metrics)
        done.append((trial_id, config, metrics))


@pytest.mark.parametrize("space_kind", sorted(SPACES))
@pytest.mark.parametrize("name", NAMES)
def test_lifecycle_with_failures(name: str, space_kind: str) -> None:
    space = SPACES[space_kind]()
    with searcher_for(name, space) as searcher:
        # The first trials all fail, later every fifth: the searcher must keep proposing.
        done = drive(searcher, space, 24, fails=lambda i: i < 5 or i % 5 == 0)
        assert len(done) >= 10
        assert searcher.pending == {}
        assert [t for t, _, _ in searcher.history] == [t for t, _, _ in done]
        assert [v is None for _, _, v in searcher.history] == [m is None for _, _, m in done]
        # Incomplete or non-finite metrics count as failures; unknown trials are ignored.
        config = ask(searcher, "nan")
        searcher.on_trial_complete("nan", {"f1": math.nan, "f2": 1.0})
        searcher.on_trial_complete("never-suggested", {"f1": 0.0, "f2": 0.0})
        assert searcher.history[-1] == ("nan", config, None)
        assert len(searcher.history) == len(done) + 1
        space.check(ask(searcher, "after"))


@pytest.mark.parametrize("name", NAMES)
def test_a_study_on_the_local_backend(name: str, tmp_path: Path) -> None:
    """A study of 12 trials in this process (x0 below 0.15 fails): the searcher learned every trial in
    the order they ended, failures as None, and its saved state has nothing pending."""
    trials, directory = local_study(tmp_path, {"fail_below_x0": 0.15}, 12, searcher=name)
    assert len(trials) == 12 and trials["status"].isin(["completed", "failed"]).all()
    state = json.loads((directory / "searcher_state.json").read_text())
    ended = trials.sort_values("ended_at")
    assert [h[0] for h in state["history"]] == ended["trial_id"].tolist()
    assert [h[2] is None for h in state["history"]] == (ended["status"] == "failed").tolist()
    assert state["pending"] == {}


@pytest.mark.parametrize("space_kind", sorted(SPACES))
@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_continues_identically(name: str, space_kind: str) -> None:
    space = SPACES[space_kind]()
    with searcher_for(name, space) as original:
        drive(original, space, 14, fails=lambda i: i == 3)
        in_flight = {t: ask(original, t) for t in ("p0", "p1")}
        state = json.loads(json.dumps(original.state_dict()))
        with searcher_for(name, space) as resumed:
            resumed.load_state_dict(state)
            assert resumed.pending == in_flight
            for searcher in (original, resumed):
                searcher.on_trial_complete("p0", zdt1(space, in_flight["p0"]))
            a = drive(original, space, 6, start=100)
            b = drive(resumed, space, 6, start=100)
    assert [c for _, c, _ in a] == [c for _, c, _ in b]


@pytest.mark.parametrize("name", NAMES)
def test_suggestions_respect_analytic_constraints(name: str) -> None:
    space = CappedSpace(num_dims=4, grid=5)
    cap = Constraint.parse("params <= 4")  # 70 of the 625 configurations
    with searcher_for(name, space, [cap]) as searcher:
        done = drive(searcher, space, 30)
    assert len(done) >= 10
    too_big = [c for _, c, _ in done if space.metrics(c)["params"] > 4]
    assert too_big == []


@pytest.mark.parametrize("name", NAMES)
def test_search_beats_doing_nothing(name: str) -> None:
    """60 trials on 6-dimensional ZDT1, reference point (1, 10): the best possible hypervolume is
    about 9.33, one configuration at the centre of the box gives 3.1 and ten random configurations
    6.1 (median of 50 seeds). A searcher that repeats itself or walks away stays well below 5.5."""
    space = SyntheticSpace(num_dims=6)
    with searcher_for(name, space, seed=1) as searcher:
        done = drive(searcher, space, 60)
    points = np.array([[m["f1"], m["f2"]] for _, _, m in done if m is not None])
    assert hypervolume(points, np.array([1.0, 10.0])) > 5.5


@pytest.mark.parametrize("name", NAMES)
def test_a_constraint_on_an_objective_holds_for_every_trial(name: str, tmp_path: Path) -> None:
    """The README's study form (accuracy with a reference, parameters without, and `params <= 15e6` on
    the parameters objective), replayed from the table of real sub-network scores on the in-process
    backend: every trial builds a network within the bound, and the front keeps only those."""
    space_options = json.loads(SUBNET_TABLE.with_suffix(".json").read_text())["space"]["options"]
    study = parse_study({
        "name": f"bound-{name}", "storage": str(tmp_path), "seed": 0,
        "search_space": {"name": "small", "options": space_options},
        "trainer": {"kind": "tabular", "options": {"table": str(SUBNET_TABLE)}},
        "objectives": [{"metric": "accuracy", "mode": "max", "ref": 0.5}, {"metric": "params", "mode": "min"}],
        "constraints": ["params <= 15e6"],
        "searcher": {"name": name, "options": SEARCHER_OPTIONS.get(name, {})},
        "budget": {"num_trials": 8},
    })
    run_study(study, progress=False, backend="local")
    trials = pd.read_parquet(study.directory / "trials.parquet")
    completed = trials[trials["status"] == "completed"]
    assert len(completed) == 8
    assert (completed["params"] <= 15e6).all(), completed[["params"]].to_string()
    front = pd.read_csv(study.directory / "front.csv")
    assert len(front) > 0 and (front["params"] <= 15e6).all()
