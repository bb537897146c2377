"""`lmnas remeasure DIR`: the front's measured metrics (latency) taken again in one quiet pass.

During a search, trials share machines: however carefully each one times its forward passes
(`trainers/efficiency/host_lock.py`), a neighbour's work still shifts the numbers. After the search
nothing else runs, so the front is timed again, one trial after another inside one task, through the
trainer's `remeasure` hook. Both values are kept: `remeasured.csv` in the study directory has, per
front member, each metric as the search measured it and as remeasured (`<metric>_remeasured`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, TextIO

import pandas as pd

from orchestrator.console import library_log
from orchestrator.hooks import prepare_stage, printer, require, stage_context
from orchestrator.plugins import build_space
from orchestrator.results import ResultsStore, atomic_write_text
from orchestrator.run import ray_session
from orchestrator.study import load_saved_study
from trainers.contract import FinishedTrial, StageContext

REMEASURED_CSV = "remeasured.csv"


def remeasure_front(directory: Path, address: str | None = None, stream: TextIO = sys.stderr) -> pd.DataFrame:
    """Time the study's front again; returns (and writes) the table of both values."""
    directory = Path(directory).absolute()
    study = load_saved_study(directory)
    hook = require(study, "remeasure", "lmnas remeasure")
    store = ResultsStore(directory, study.objectives, study.constraints)
    log = printer(study, stream)
    with library_log(directory), ray_session(address):
        prepared = prepare_stage(study, build_space(study), stream)
        ctx = stage_context(study, prepared.space, prepared.trainer_options, directory, log, store)
        if not ctx.front:
            log("remeasure: the study has no front yet")
            return pd.DataFrame()
        log(f"remeasure: timing the {len(ctx.front)} front members again, one at a time")
        fresh = ctx.run_task(measure_all, (hook, plain(ctx), ctx.front), "remeasuring the front")
    rows = [row(trial, metrics) for trial, metrics in zip(ctx.front, fresh)]
    table = pd.DataFrame(rows)
    atomic_write_text(directory / REMEASURED_CSV, table.to_csv(index=False))
    return table


def plain(ctx: StageContext) -> dict[str, Any]:
    """The context's fields a task can carry (its callables stay in this process)."""
    return {"study": ctx.study, "seed": ctx.seed, "options": dict(ctx.options), "space": ctx.space,
            "directory": ctx.directory}


def measure_all(hook: Callable[..., Any], fields: dict[str, Any], front: tuple[FinishedTrial, ...],
                log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Runs in one task: the hook on each front member in turn."""
    from trainers.contract import run_in_process

    ctx = StageContext(**fields, log=log, run_task=run_in_process(log))
    out = []
    for trial in front:
        out.append(dict(hook(ctx, trial)))
        log(f"remeasure: {trial.trial_id} done")
    return out


def row(trial: FinishedTrial, fresh: dict[str, Any]) -> dict[str, Any]:
    both: dict[str, Any] = {"trial_id": trial.trial_id}
    for key, value in fresh.items():
        both[key] = trial.metrics.get(key)
        both[f"{key}_remeasured"] = value
    return both
