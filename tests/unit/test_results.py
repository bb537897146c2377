"""The results store: every trial and report kept, files replaced atomically, reloadable."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import ResultsError
from orchestrator.objectives import Constraint, Objective, Objectives
from orchestrator.results import (
    COMPLETED,
    FAILED,
    STOPPED,
    ResultsStore,
    atomic_write_bytes,
    load_trials,
    summarise,
)

OBJS = Objectives((Objective("acc", "max", ref=0.0), Objective("params", "min", ref=100.0)))


def fill(store: ResultsStore) -> None:
    for i, (acc, params) in enumerate([(0.9, 50.0), (0.8, 20.0), (0.7, 30.0), (0.95, 90.0)]):
        tid = f"t{i}"
        store.trial_started(tid, {"layers": i + 1, "kind": "bert"}, host="h")
        store.trial_reported(tid, {"acc": acc - 0.1, "params": params, "epoch": 1})
        store.trial_reported(tid, {"acc": acc, "params": params, "epoch": 2})
        store.trial_finished(tid, COMPLETED if i != 2 else STOPPED)
    store.trial_started("bad", {"layers": 9, "kind": "bert"})
    store.trial_finished("bad", FAILED, error="ValueError: boom <script>")


def test_store_keeps_every_trial_and_report(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, OBJS, flush_interval_s=0)
    fill(store)
    trials = load_trials(tmp_path)
    assert set(trials["trial_id"]) == {"t0", "t1", "t2", "t3", "bad"}
    bad = trials.set_index("trial_id").loc["bad"]
    assert bad["status"] == FAILED and bad["error"] == "ValueError: boom <script>"
    assert trials.set_index("trial_id").loc["t1", "config.layers"] == 2
    reports = pd.read_parquet(tmp_path / "reports.parquet")
    assert len(reports) == 8 and set(reports["epoch"]) == {1, 2}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"] == {"running": 0, "completed": 3, "stopped": 1, "failed": 1, "interrupted": 0}
    front = pd.read_csv(tmp_path / "front.csv")
    # (0.7, 30) is dominated by (0.8, 20); the rest trade accuracy for size.
    assert sorted(front["trial_id"]) == ["t0", "t1", "t3"]


def test_store_reloads_and_continues(tmp_path: Path) -> None:
    fill(ResultsStore(tmp_path, OBJS, flush_interval_s=0))
    again = ResultsStore(tmp_path, OBJS, flush_interval_s=0)
    assert again.trials["t1"].metrics["acc"] == pytest.approx(0.8)
    assert again.trials["t1"].config == {"layers": 2, "kind": "bert"}
    assert len(again.reports) == 8
    again.trial_started("bad", {"layers": 9, "kind": "bert"})  # a retry of a failed trial
    assert again.trials["bad"].attempt == 2
    again.trial_finished("bad", COMPLETED, {"acc": 0.99, "params": 99.0})
    assert len(load_trials(tmp_path)) == 5


def test_constraints_and_reference_point_shape_the_front(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, OBJS, (Constraint.parse("params <= 60"),), flush_interval_s=0)
    fill(store)
    s = summarise(store.trials_frame(), OBJS, store.constraints)
    assert sorted(s.front["trial_id"]) == ["t0", "t1"]
    # minimise form: (-acc, params), ref (0, 100); HV of {(-.9, 50), (-.8, 20)} = .8*80 + .1*50
    assert s.hypervolume == pytest.approx(0.8 * 80 + 0.1 * 50)
    assert s.hypervolume_trace == sorted(s.hypervolume_trace)


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "trials.parquet"
    atomic_write_bytes(target, b"old")

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_missing_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no results"):
        load_trials(tmp_path)


def test_metric_names_that_collide_with_bookkeeping_are_prefixed(tmp_path: Path) -> None:
    objs = Objectives((Objective("status"),))
    store = ResultsStore(tmp_path, objs, flush_interval_s=0)
    store.trial_started("a", {"x": 1})
    store.trial_finished("a", COMPLETED, {"status": 3.0})
    row = load_trials(tmp_path).iloc[0]
    assert row["status"] == COMPLETED and row["metric.status"] == 3.0
    assert summarise(store.trials_frame(), objs).front["metric.status"].tolist() == [3.0]
    assert np.isfinite(ResultsStore(tmp_path, objs).trials["a"].metrics["status"])


def test_the_front_shows_a_network_once_though_trials_reused_it() -> None:
    import pandas as pd

    from orchestrator.objectives import Objective, Objectives
    from orchestrator.results import summarise

    objectives = Objectives((Objective("acc", "max", ref=0.0), Objective("params", "min", ref=100.0)))
    trials = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d"], "status": ["completed"] * 4, "ended_at": [1.0, 2.0, 3.0, 4.0],
        "acc": [0.7, 0.7, 0.9, 0.7], "params": [10.0, 10.0, 50.0, 10.0], "config.x": [0, 1, 2, 3],
        "reused_from": [None, "a", None, "a"],
    })
    summary = summarise(trials, objectives)
    assert sorted(summary.front["trial_id"]) == ["a", "c"]
    alone = summarise(trials[trials["reused_from"].isna()].drop(columns="reused_from"), objectives)
    assert summary.hypervolume == alone.hypervolume
