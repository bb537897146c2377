"""Every registered scheduler honours the scheduler contract (after syne-tune's
`test_schedulers_api.py`): a study on the in-process backend stops trials through the trainer's
`report`, interleaved trials from the synthetic trainer get Decision members, the state survives a
JSON round trip, and failed, removed or unknown trials are tolerated. The hand-driven loop (`run`)
stays where the contract needs several trials in flight at once (a rung of MO-ASHA filled by
concurrent trials), which the in-process backend never has. Plug-ins are read from the registry
when the tests run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pytest

from orchestrator import registry
from orchestrator.objectives import Objective, Objectives
from orchestrator.schedulers.base import Decision, Scheduler
from search_spaces.synthetic import SyntheticSpace
from tests.contracts.local_study import local_study
from tests.contracts.plugin_options import SCHEDULER_OPTIONS
from trainers import synthetic
from trainers.contract import TrialContext, collect_reports

NAMES = registry.schedulers.names()
OBJECTIVES = Objectives((Objective("f1"), Objective("f2")))
SPACE = SyntheticSpace(num_dims=4)


def scheduler_for(name: str) -> Scheduler:
    return registry.schedulers.load(name)(OBJECTIVES, 0, **SCHEDULER_OPTIONS.get(name, {}))


def trial_reports(n: int, first: int = 0) -> dict[str, list[dict[str, float]]]:
    """What the synthetic trainer reports (ZDT1, steps 1..9) for n random configurations."""
    rng = np.random.default_rng(first)
    out = {}
    for i in range(first, first + n):
        seen, report = collect_reports()
        ctx = TrialContext(f"t{i}", SPACE.sample(rng), SPACE, {"problem": "zdt1", "steps": 9})
        synthetic.train(ctx, report)
        out[ctx.trial_id] = seen
    return out


def run(scheduler: Scheduler, trials: dict[str, list[dict[str, float]]], workers: int = 4) -> list[tuple[str, Decision]]:
    """Feed the reports of `workers` trials at a time, round robin, as a runner would: a trial
    that is told to stop ends there; one that runs out of reports completes."""
    decisions: list[tuple[str, Decision]] = []
    waiting = list(trials)
    running: dict[str, Iterable[dict[str, float]]] = {}
    last: dict[str, dict[str, float]] = {}
    while waiting or running:
        while waiting and len(running) < workers:
            trial_id = waiting.pop(0)
            scheduler.on_trial_add(trial_id, {})
            running[trial_id] = iter(trials[trial_id])
        for trial_id in list(running):
            metrics = next(running[trial_id], None)  # type: ignore[call-overload]
            if metrics is None:
                scheduler.on_trial_complete(trial_id, last[trial_id])
                del running[trial_id]
                continue
            last[trial_id] = metrics
            decision = scheduler.on_trial_result(trial_id, metrics)
            decisions.append((trial_id, decision))
            if decision is Decision.STOP:
                scheduler.on_trial_complete(trial_id, metrics)
                del running[trial_id]
    return decisions


@pytest.mark.parametrize("name", NAMES)
def test_a_study_on_the_local_backend(name: str, tmp_path: Path) -> None:
    """12 trials of 9 steps in this process: a trial the scheduler stops ends early (status stopped,
    fewer reports), every other one reports all 9 steps, and the scheduler's state is saved."""
    trials, directory = local_study(tmp_path, {"steps": 9}, 12, scheduler=name)
    assert len(trials) == 12 and trials["status"].isin(["completed", "stopped"]).all()
    assert (trials.loc[trials["status"] == "stopped", "num_reports"] < 9).all()
    assert (trials.loc[trials["status"] == "completed", "num_reports"] == 9).all()
    reloaded = scheduler_for(name)
    reloaded.load_state_dict(json.loads((directory / "scheduler_state.json").read_text()))
    if name == "fifo":
        assert (trials["status"] == "completed").all()


@pytest.mark.parametrize("name", NAMES)
def test_lifecycle_gives_decisions(name: str) -> None:
    trials = trial_reports(12)
    decisions = run(scheduler_for(name), trials)
    assert all(isinstance(d, Decision) for _, d in decisions)
    assert {t for t, _ in decisions} == set(trials)


def test_fifo_never_stops() -> None:
    decisions = run(scheduler_for("fifo"), trial_reports(8))
    assert {d for _, d in decisions} == {Decision.CONTINUE}
    assert len(decisions) == 8 * 9


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_decides_identically(name: str) -> None:
    original = scheduler_for(name)
    run(original, trial_reports(8))
    resumed = scheduler_for(name)
    resumed.load_state_dict(json.loads(json.dumps(original.state_dict())))
    later = trial_reports(8, first=100)
    assert run(resumed, later) == run(original, later)


@pytest.mark.parametrize("name", NAMES)
def test_failed_removed_and_unknown_trials_are_tolerated(name: str) -> None:
    scheduler = scheduler_for(name)
    trials = trial_reports(6)
    ids = list(trials)
    # A trial fails after two reports; another is removed before reporting anything.
    scheduler.on_trial_add(ids[0], {})
    for metrics in trials[ids[0]][:2]:
        assert isinstance(scheduler.on_trial_result(ids[0], metrics), Decision)
    scheduler.on_trial_complete(ids[0], None)
    scheduler.on_trial_add(ids[1], {})
    scheduler.on_trial_complete(ids[1], None)
    # Results of a trial never added, and results without fidelity or objectives.
    assert isinstance(scheduler.on_trial_result("stranger", trials[ids[2]][0]), Decision)
    assert isinstance(scheduler.on_trial_result("stranger", {"f1": 1.0}), Decision)
    scheduler.on_trial_complete("never-added", None)
    decisions = run(scheduler, {t: trials[t] for t in ids[3:]})
    assert all(isinstance(d, Decision) for _, d in decisions)
    json.dumps(scheduler.state_dict())
