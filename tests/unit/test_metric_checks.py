"""Objectives and constraints are checked against what the trainer reports: at `lmnas validate` and
before `lmnas run` starts Ray (exit 2, one line; the refusals are in tests/unit/test_cli.py), and, for
a metric a trial's final report still lacks, by stopping the study at that trial (on Ray:
tests/integration/test_metric_check.py)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from orchestrator.errors import StudyError
from orchestrator.metric_check import MetricCheck
from orchestrator.objectives import Objective, Objectives
from orchestrator.results import COMPLETED, FAILED, STOPPED, ResultsStore
from tests.unit.test_cli import lmnas

SYNTHETIC = "name: m\nsearch_space: {name: synthetic}\ntrainer: {kind: synthetic}\n"


def test_what_the_trainer_reports_and_the_space_computes_passes(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(SYNTHETIC.replace("{kind: synthetic}", "{kind: synthetic, options: {problem: dtlz2, "
                                      "num_objectives: 3}}") + "objectives: [{metric: f1}, {metric: f3}]\n")
    assert lmnas("validate", str(path), cwd=tmp_path).returncode == 0
    # A table without a params_non_embedding column: the small space computes it, so a constraint may name it.
    pd.DataFrame([{"num_layers": 0, "num_heads": 1, "num_units": 1, "accuracy": 0.5, "params": 10.0}]).to_csv(
        tmp_path / "table.csv", index=False)
    path.write_text("name: t\nsearch_space: {name: small}\ntrainer: {kind: tabular, options: {table: table.csv}}\n"
                    "objectives: [{metric: accuracy, mode: max}, {metric: params}]\n"
                    "constraints: ['params_non_embedding <= 1e9']\n")
    done = lmnas("validate", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    path.write_text(path.read_text().replace("{metric: params}", "{metric: params_non_embedding}"))
    done = lmnas("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2 and "metric 'params_non_embedding' is not reported by trainer 'tabular'" in done.stderr


def test_the_check_stops_at_the_first_completed_trial_without_an_objective(tmp_path: Path) -> None:
    objectives = Objectives((Objective("f1"), Objective("g")))
    store = ResultsStore(tmp_path, objectives, flush_interval_s=60)
    store.trial_started("old", {"x0": 0.1})
    store.trial_finished("old", COMPLETED, {"f1": 1.0})
    changes: list[int] = []
    check = MetricCheck(store, objectives, lambda: changes.append(1))
    check()
    assert not check.halted() and changes == [1]  # an earlier run's trial was judged then
    for tid, status, metrics in (("ok", COMPLETED, {"f1": 1.0, "g": 2.0}), ("early", STOPPED, {"f1": 1.0}),
                                 ("broken", FAILED, {})):
        store.trial_started(tid, {"x0": 0.2})
        store.trial_finished(tid, status, metrics)
        check()
    assert not check.halted()
    check.raise_if_halted()
    store.trial_started("t4", {"x0": 0.3})
    store.trial_finished("t4", COMPLETED, {"f1": 1.0, "step": 1.0})
    check()
    assert check.halted() and len(changes) == 5
    with pytest.raises(StudyError, match=r"^objectives: trial t4 finished without the objective's metric 'g' "
                                         r"\(it reported f1, step\)"):
        check.raise_if_halted()
