"""Reconciling a searcher with stored results after a crash at any moment."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.objectives import Objective, Objectives
from orchestrator.results import COMPLETED, FAILED, ResultsStore
from orchestrator.resume import finished_count, reconcile
from orchestrator.searchers.base import Searcher
from orchestrator.searchers.optuna_samplers import OptunaTPESearcher
from orchestrator.searchers.random import RandomSearcher
from search_spaces.synthetic import SyntheticSpace

OBJS = Objectives((Objective("f1"), Objective("f2")))


def test_reconcile_keeps_finished_reruns_unfinished_and_teaches_the_searcher(tmp_path: Path) -> None:
    space = SyntheticSpace(3, grid=5)
    searcher = RandomSearcher(space, OBJS, seed=0)
    store = ResultsStore(tmp_path, OBJS, flush_interval_s=0)
    configs = {f"t{i}": searcher.suggest(f"t{i}") for i in range(5)}
    # t0: finished and learned; t1: finished in the results, but the process died before the
    # searcher heard of it; t2: failed, unheard; t3: running when killed; t4: suggested, never started.
    for tid in ("t0", "t1", "t2", "t3"):
        store.trial_started(tid, configs[tid])
    store.trial_finished("t0", COMPLETED, {"f1": 0.1, "f2": 0.9})
    searcher.on_trial_complete("t0", {"f1": 0.1, "f2": 0.9})
    store.trial_finished("t1", COMPLETED, {"f1": 0.5, "f2": 0.5})
    store.trial_finished("t2", FAILED, error="boom")
    state = searcher.state_dict()

    again = RandomSearcher(space, OBJS, seed=0)
    again.load_state_dict(state)
    replay = reconcile(ResultsStore(tmp_path, OBJS), again)

    assert [tid for tid, _ in replay] == ["t3", "t4"]
    assert [cfg for _, cfg in replay] == [configs["t3"], configs["t4"]]
    assert [tid for tid, _, _ in again.history] == ["t0", "t1", "t2"]
    assert again.history[2][2] is None  # the failure is remembered as a failure
    assert set(again.pending) == {"t3", "t4"}
    assert finished_count(store) == 3


def test_reconcile_restores_a_trial_the_searcher_state_predates(tmp_path: Path) -> None:
    space = SyntheticSpace(3, grid=5)
    searcher = RandomSearcher(space, OBJS, seed=1)
    stale = searcher.state_dict()  # saved before the suggestion below
    store = ResultsStore(tmp_path, OBJS, flush_interval_s=0)
    config = searcher.suggest("t0")
    store.trial_started("t0", config)
    fresh = RandomSearcher(space, OBJS, seed=1)
    fresh.load_state_dict(stale)
    assert reconcile(store, fresh) == [("t0", config)]
    assert fresh.pending == {"t0": config}


@pytest.mark.parametrize("searcher_class", [RandomSearcher, OptunaTPESearcher], ids=["random", "optuna-tpe"])
def test_a_trial_learned_before_its_result_was_stored_reruns_and_is_learned_once(
    tmp_path: Path, searcher_class: type[Searcher]
) -> None:
    """The driver died after the searcher state recorded t0's end and before trials.parquet did."""
    space = SyntheticSpace(3, grid=5)
    searcher = searcher_class(space, OBJS, seed=2)
    store = ResultsStore(tmp_path, OBJS, flush_interval_s=0)
    config = searcher.suggest("t0")
    store.trial_started("t0", config)
    searcher.on_trial_complete("t0", {"f1": 0.1, "f2": 0.9})
    again = searcher_class(space, OBJS, seed=2)
    again.load_state_dict(searcher.state_dict())

    replay = reconcile(ResultsStore(tmp_path, OBJS), again)
    assert replay == [("t0", config)]  # the results do not hold its end: it reruns
    assert again.pending == {}
    again.add_pending("t0", config)  # as the runner does when it hands the rerun out
    again.on_trial_complete("t0", {"f1": 0.2, "f2": 0.8})
    assert [tid for tid, _, _ in again.history] == ["t0"]
    if isinstance(again, OptunaTPESearcher):
        assert len(again.optuna_trials()) == 1


def test_background_saver_never_blocks_and_writes_the_final_state(tmp_path: Path) -> None:
    import json
    import time

    from orchestrator.resume import BackgroundSaver

    calls = {"n": 0}

    def slow_snapshot() -> dict:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("dictionary changed size during iteration")
        time.sleep(0.3)  # like a searcher finishing a suggestion first
        return {"n": calls["n"]}

    path = tmp_path / "state.json"
    saver = BackgroundSaver(slow_snapshot, path)
    began = time.perf_counter()
    for _ in range(5):
        saver.request()
    assert time.perf_counter() - began < 0.05
    saver.close()
    assert json.loads(path.read_text())["n"] == calls["n"]  # the last snapshot is the one on disk
    assert 2 <= calls["n"] <= 4  # requests coalesced; the failed attempt was retried
