"""The Ax multi-objective BO searcher: encoding, constraints, failures, state, background mode,
and a search that beats random search. Inner BO loops are shrunk (few restarts / raw samples)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest
import torch

from orchestrator.objectives import Constraint, Objective, Objectives
from orchestrator.pareto import hypervolume
from orchestrator.searchers.ax_mobo import AxCodec, AxMoboSearcher, ax_metric_names
from orchestrator.searchers.random import RandomSearcher
from search_spaces.synthetic import SyntheticSpace
from tests.unit.mixed_space import MixedSpace
from trainers.synthetic import objectives

ROOT = Path(__file__).resolve().parents[2]
OBJECTIVES = Objectives((Objective("f1", ref=1.1), Objective("f2", ref=11.0)))
SMALL = {"num_restarts": 2, "raw_samples": 32, "background": False}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def zdt1(space: SyntheticSpace, config: Mapping[str, Any]) -> dict[str, float]:
    f = objectives("zdt1", np.array(space.point(dict(config))))
    return {"f1": float(f[0]), "f2": float(f[1])}


def run(searcher: Any, space: SyntheticSpace, n: int, start: int = 0) -> list[dict[str, Any]]:
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        searcher.on_trial_complete(f"t{i}", zdt1(space, config))
        configs.append(config)
    return configs


def test_encoding_round_trips_every_dimension_kind() -> None:
    space = MixedSpace()
    codec = AxCodec(space)
    kinds = {p.name: p for p in codec.parameters}
    assert set(kinds) == {"layers", "ffn", "tokens", "dropout", "lr", "act", "heads"}  # single values stay out
    assert kinds["ffn"].bounds == (0, 7) and kinds["ffn"].parameter_type == "int"  # the index on the grid
    assert kinds["tokens"].scaling == "log" and kinds["lr"].scaling == "log"
    assert kinds["heads"].is_ordered and not kinds["act"].is_ordered
    rng = np.random.default_rng(0)
    for _ in range(50):
        config = space.sample(rng)
        params = codec.encode(config)
        assert all(isinstance(v, (int, float)) for v in params.values())
        assert codec.decode(params) == config
    # Values the model proposes between grid points land on the grid.
    decoded = codec.decode({**codec.encode(space.largest()), "ffn": 2.4, "layers": 3.6})
    assert decoded["ffn"] == 64 + 2 * 64 and decoded["layers"] == 4
    space.check(decoded)


def test_metric_names_are_safe_for_axs_parser() -> None:
    names = ax_metric_names(["E", "val/acc", "val.acc", "gamma"])
    assert names == {"E": "m_E", "val/acc": "m_val_acc", "val.acc": "m_val_acc_2", "gamma": "m_gamma"}


def test_only_this_module_imports_ax() -> None:
    importer = re.compile(r"^\s*(import ax\b|from ax[. ])", re.MULTILINE)
    found = sorted(
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.py")
        if ".venv" not in p.parts and importer.search(p.read_text(errors="replace"))
    )
    assert found == ["orchestrator/searchers/ax_mobo.py"]


def test_options_are_validated() -> None:
    space = SyntheticSpace(num_dims=2)
    with pytest.raises(ValueError, match="'num_restarts'"):
        AxMoboSearcher(space, OBJECTIVES, num_restarts=0)
    with pytest.raises(ValueError, match="'raw_samples'"):
        AxMoboSearcher(space, OBJECTIVES, num_restarts=8, raw_samples=4)
    with pytest.raises(ValueError, match="'background'"):
        AxMoboSearcher(space, OBJECTIVES, background="yes")
    with pytest.raises(ValueError, match="unknown ax_mobo options"):
        AxMoboSearcher(space, OBJECTIVES, restarts=2)


def test_proposals_respect_the_space_and_analytic_constraints() -> None:
    space = MixedSpace()
    cap = Constraint.parse("params <= 1000")  # layers * ffn: 11 of the 48 (layers, ffn) pairs
    objs = Objectives((Objective("loss"), Objective("latency")))
    searcher = AxMoboSearcher(space, objs, [cap], seed=3, num_initial=4, **SMALL)
    rng = np.random.default_rng(0)
    for i in range(7):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        space.check(config)
        assert space.metrics(config)["params"] <= 1000
        searcher.on_trial_complete(f"t{i}", {"loss": float(rng.random()), "latency": float(config["layers"])})
    summary = searcher.summary()
    # Rejected candidates are in Ax with their analytic parameter count, never handed out.
    stopped = summary[summary["trial_status"] == "EARLY_STOPPED"]
    assert len(stopped) > 0
    assert (stopped["m_params"] > 1000).all()
    assert (summary[summary["trial_status"] == "COMPLETED"]["m_params"] <= 1000).all()


def bounds_in(searcher: AxMoboSearcher) -> tuple[dict[str, tuple[str, float]], dict[str, tuple[str, float]]]:
    """(objective thresholds, outcome constraints) by Ax metric name, as the saved Ax experiment holds them."""
    config = searcher.state_dict()["ax"]["experiment"]["optimization_config"]

    def read(items: list[dict[str, Any]]) -> dict[str, tuple[str, float]]:
        return {c["metric"]["name"]: (c["op"]["name"], c["bound"]) for c in items}

    return read(config["objective_thresholds"]), read(config["outcome_constraints"])


@pytest.mark.parametrize("params_ref", [None, 2000.0])
def test_a_constraint_on_an_objective_is_an_outcome_constraint(params_ref: float | None) -> None:
    """`params <= 1000` beside a params objective: Ax models it as an outcome constraint on a copy
    of the metric, and the reference point is the study's (with a params ref Ax refused the study
    with "More than one objective threshold"; without one the bound became the reference point)."""
    space = MixedSpace()
    objs = Objectives((Objective("loss", ref=1.0), Objective("params", ref=params_ref)))
    searcher = AxMoboSearcher(space, objs, [Constraint.parse("params <= 1000")], seed=3, num_initial=2, **SMALL)
    thresholds, outcome = bounds_in(searcher)
    assert thresholds == {"m_loss": ("LEQ", 1.0)} | ({} if params_ref is None else {"m_params": ("LEQ", 2000.0)})
    assert outcome == {"m_bound_params": ("LEQ", 1000.0)}
    rng = np.random.default_rng(0)
    for i in range(4):  # two Sobol trials, then the model's
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        params = space.metrics(config)["params"]
        assert params <= 1000
        searcher.on_trial_complete(f"t{i}", {"loss": float(rng.random()), "params": params})
    summary = searcher.summary()
    done = summary[summary["trial_status"] == "COMPLETED"]
    assert len(done) == 4 and (done["m_bound_params"] == done["m_params"]).all()
    assert "MBM" in set(done["generation_node"])


def test_failed_trials_are_marked_failed_and_search_goes_on() -> None:
    space = SyntheticSpace(num_dims=2)
    searcher = AxMoboSearcher(space, OBJECTIVES, num_initial=3, attach_intermediate=True, **SMALL)
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        if i in (0, 4):
            searcher.on_trial_complete(f"t{i}", None)
        elif i == 2:
            searcher.on_trial_complete(f"t{i}", {"f1": 0.5})  # an objective is missing
        else:
            searcher.on_trial_result(f"t{i}", zdt1(space, config) | {"step": 1.0})
            searcher.on_trial_complete(f"t{i}", zdt1(space, config) | {"step": 2.0})
    assert searcher.suggest("next") is not None
    status = dict(zip(searcher.summary()["trial_index"], searcher.summary()["trial_status"]))
    assert [status[i] for i in range(6)] == ["FAILED", "COMPLETED", "FAILED", "COMPLETED", "FAILED", "COMPLETED"]
    assert [v is None for _, _, v in searcher.history] == [True, False, True, False, True, False]


def test_state_round_trip_keeps_history_and_continues() -> None:
    space = SyntheticSpace(num_dims=3)
    original = AxMoboSearcher(space, OBJECTIVES, seed=5, num_initial=4, **SMALL)
    run(original, space, 6)
    original.suggest("p0")
    original.on_trial_complete("p0", None)
    in_flight = original.suggest("p1")
    state = json.loads(json.dumps(original.state_dict()))
    resumed = AxMoboSearcher(space, OBJECTIVES, seed=5, num_initial=4, **SMALL)
    resumed.load_state_dict(state)
    assert resumed.history == original.history and resumed.pending == {"p1": in_flight}
    assert len(resumed.summary()) == len(original.summary()) == 8
    for searcher in (original, resumed):
        searcher.on_trial_complete("p1", zdt1(space, in_flight))
    assert run(original, space, 2, start=10) == run(resumed, space, 2, start=10)
    assert len(resumed.history) == 10


def test_background_mode_answers_at_once_and_delivers_later() -> None:
    space = SyntheticSpace(num_dims=3)
    searcher = AxMoboSearcher(space, OBJECTIVES, num_initial=3, num_restarts=2, raw_samples=32, queue_size=1)
    try:
        for i in range(3):  # Sobol suggestions are ready almost at once
            config = None
            while config is None:
                config = searcher.suggest(f"s{i}")
                time.sleep(0.01)
            searcher.on_trial_complete(f"s{i}", zdt1(space, config))
        # The model now has to be fitted: three workers ask, none waits.
        answers, waits = {}, []
        for key in ("a", "b", "c"):
            t = time.perf_counter()
            answers[key] = searcher.suggest(key)
            waits.append(time.perf_counter() - t)
        assert max(waits) < 0.1
        assert None in answers.values()
        deadline = time.monotonic() + 60
        while None in answers.values() and time.monotonic() < deadline:
            time.sleep(0.02)
            answers = {k: v if v is not None else searcher.suggest(k) for k, v in answers.items()}
        configs = list(answers.values())
        assert all(isinstance(c, dict) for c in configs)
        assert len({json.dumps(c, sort_keys=True) for c in configs}) == 3  # pending-aware: distinct
    finally:
        searcher.close()


def test_bo_beats_random_search_on_zdt1() -> None:
    space = SyntheticSpace(num_dims=3)
    ref = np.array([1.1, 1.1])
    budget = 16

    def final_hv(searcher: Any) -> float:
        run(searcher, space, budget)
        points = np.array([v for _, _, v in searcher.history if v is not None])
        return hypervolume(points, ref)

    bo = [final_hv(AxMoboSearcher(space, OBJECTIVES, seed=s, num_initial=5, **SMALL)) for s in (0, 1)]
    rs = [final_hv(RandomSearcher(space, OBJECTIVES, seed=s)) for s in (0, 1)]
    # Random search hardly reaches the front of ZDT1 in 16 trials; BO gets close to it.
    assert min(bo) > max(rs)
    assert np.mean(bo) > 0.5


def ask_all(searcher: AxMoboSearcher, ids: list[str]) -> list[dict[str, Any]]:
    """Every worker in `ids` asks once, none finishing: all are in flight at the end."""
    configs = [searcher.suggest(tid) for tid in ids]
    assert all(isinstance(c, dict) for c in configs)
    return configs  # type: ignore[return-value]


def test_free_workers_beyond_one_batch_get_space_filling_configurations() -> None:
    space = MixedSpace()
    cap = Constraint.parse("params <= 1000")  # 11 of the 48 (layers, ffn) pairs
    objs = Objectives((Objective("loss"), Objective("latency")))

    def searcher() -> AxMoboSearcher:
        s = AxMoboSearcher(space, objs, [cap], seed=3, num_initial=3, batch_size=2, **SMALL)
        s.workers = 8
        return s

    first = searcher()
    configs = ask_all(first, [f"w{i}" for i in range(8)])
    # 8 free workers, a batch serves 2: the first 6 asks are filled at once, the last 2 go to the model.
    state = json.loads(json.dumps(first.state_dict()))
    assert state["suggested_by"] == {"model": 2, "random": 0, "fill": 6}
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == 8
    for config in configs:
        space.check(config)
        assert space.metrics(config)["params"] <= 1000
    # Ax holds every one as a running trial (the model's batch was made with the 6 fills pending);
    # candidates refused by the cap are there too, early-stopped.
    summary = first.summary()
    assert (summary["trial_status"] == "RUNNING").sum() == 8
    assert ask_all(searcher(), [f"w{i}" for i in range(8)]) == configs  # the study's seed decides the fills

    # A resumed searcher continues the same search, fills included.
    resumed = searcher()
    resumed.load_state_dict(state)
    rng = np.random.default_rng(0)
    for i, config in enumerate(configs):
        metrics = {"loss": float(rng.random()), "latency": float(config["layers"])}
        for s in (first, resumed):
            s.on_trial_complete(f"w{i}", metrics)
    assert ask_all(first, ["x0", "x1", "x2"]) == ask_all(resumed, ["x0", "x1", "x2"])
    assert first.state_dict()["suggested_by"] == resumed.state_dict()["suggested_by"] == {"model": 2, "random": 0, "fill": 9}
    statuses = first.summary()["trial_status"].value_counts().to_dict()
    assert statuses["COMPLETED"] == 8 and statuses["RUNNING"] == 3


def test_no_fill_without_a_known_max_concurrent_or_when_switched_off() -> None:
    space = SyntheticSpace(num_dims=3)
    off = AxMoboSearcher(space, OBJECTIVES, num_initial=3, batch_size=2, fill_idle_workers=False, **SMALL)
    off.workers = 8
    unknown = AxMoboSearcher(space, OBJECTIVES, num_initial=3, batch_size=2, **SMALL)
    for searcher in (off, unknown):
        ask_all(searcher, [f"w{i}" for i in range(8)])
        assert searcher.state_dict()["suggested_by"]["fill"] == 0


def test_a_tiny_study_with_four_workers_never_fills(tmp_path: Path) -> None:
    """max_concurrent <= batch_size (4 by default): every suggestion is the model's, so the search
    at the usual small scale is what it was; run in background mode, as in a study."""
    from orchestrator.plugins import build_searcher, build_space
    from orchestrator.study import parse_study

    study = parse_study({
        "name": "tiny", "storage": str(tmp_path), "seed": 1,
        "search_space": {"name": "synthetic", "options": {"num_dims": 3}},
        "trainer": {"kind": "synthetic", "options": {"problem": "zdt1"}},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 11}],
        "searcher": {"name": "ax_mobo", "options": {"num_initial": 4, "num_restarts": 2, "raw_samples": 32}},
        "budget": {"num_trials": 12, "max_concurrent": 4},
    })
    space = build_space(study)
    searcher = build_searcher(study, space)
    assert searcher.workers == 4
    try:
        in_flight: dict[str, dict[str, Any]] = {}
        asked, done = 0, 0
        deadline = time.monotonic() + 120
        while done < 12:
            assert time.monotonic() < deadline
            while len(in_flight) < 4 and asked < 12:  # every free worker asks, as Tune's loop does
                config = searcher.suggest(f"t{asked}")
                if not isinstance(config, dict):
                    break
                in_flight[f"t{asked}"] = config
                asked += 1
            if in_flight:
                tid = min(in_flight)  # the oldest trial finishes
                searcher.on_trial_complete(tid, zdt1(space, in_flight.pop(tid)))
                done += 1
            time.sleep(0.005)
        counts = searcher.state_dict()["suggested_by"]
    finally:
        searcher.close()
    assert counts["fill"] == 0 and counts["model"] + counts["random"] == 12
