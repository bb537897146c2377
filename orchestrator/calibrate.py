"""`lmnas calibrate DIR`: how well a study's cheap proxy ranks the models users deploy.

A search ranks candidates by a cheap proxy (accuracy on shared weights, a short distillation); what a
user deploys is the candidate trained on its own. This picks N finished trials of a study (spread over
the front, plus some off it, seeded), trains each one standalone through the trainer's `calibrate`
hook as Ray tasks with the study's per-trial resources, and measures the agreement of the two
rankings: Kendall's tau and Spearman's rho with their p-values, and the overlap of the top k.

Files in the study directory: `calibration.json` (the picked trials first, then the statistics) and
`calibration.csv` (one row per trial: proxy value, standalone value, the cost of each), written as
each trial finishes, so an interrupted calibration continues where it stopped.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

import numpy as np
import pandas as pd

from orchestrator.calibration import CALIBRATION_CSV, CALIBRATION_JSON, Calibration, compare, compared_metrics
from orchestrator.console import library_log
from orchestrator.errors import ResultsError
from orchestrator.hooks import prepare_stage, printer, require, stage_context, task
from orchestrator.plugins import build_space
from orchestrator.results import ResultsStore, atomic_write_text
from orchestrator.run import ray_session
from orchestrator.study import Study, load_saved_study
from trainers.contract import FinishedTrial, StageContext, run_in_process

def pick_trials(front: Sequence[FinishedTrial], others: Sequence[FinishedTrial], n: int,
                seed: int) -> list[FinishedTrial]:
    """Up to half of `n` from the front (in its spread order, so they cover it), the rest drawn from
    off the front with `seed`; either group tops up when the other runs short."""
    rng = np.random.default_rng(seed)
    off = [others[i] for i in rng.permutation(len(others))]
    take_front = min(len(front), max(n - len(off), math.ceil(n / 2)))
    return list(front[:take_front]) + off[: n - take_front]


def standalone_task(trainer_module: str, ctx: dict[str, Any], trial: FinishedTrial, log: Any) -> dict[str, Any]:
    """Runs on a worker: the trainer's `calibrate` hook on one trial; its metrics and wall seconds."""
    import importlib

    hook = importlib.import_module(trainer_module).calibrate
    began = time.monotonic()
    metrics = hook(StageContext(**ctx, log=log, run_task=run_in_process(log)), trial)
    return {**metrics, "cost_s": time.monotonic() - began}


def calibrate_study(directory: Path, n: int = 8, address: str | None = None,
                    stream: TextIO = sys.stderr) -> Calibration:
    """Calibrate a finished study's proxy on `n` of its trials (resuming an interrupted calibration)."""
    from orchestrator import registry

    directory = Path(directory).absolute()
    study = load_saved_study(directory)
    require(study, "calibrate", "lmnas calibrate")
    store = ResultsStore(directory, study.objectives, study.constraints)
    log = printer(study, stream)
    csv_path, json_path = directory / CALIBRATION_CSV, directory / CALIBRATION_JSON
    with library_log(directory), ray_session(address):
        prepared = prepare_stage(study, build_space(study), stream)  # the cached super-network: a cache hit
        ctx = stage_context(study, prepared.space, prepared.trainer_options, directory, log, store)
        picked = saved_picks(json_path, ctx, n) or pick_trials(ctx.front, off_front(ctx), n, study.seed)
        if len(picked) < 3:
            raise ResultsError(f"{directory} has {len(ctx.trials)} finished trials; calibration ranks at least 3")
        atomic_write_text(json_path, json.dumps({"n": n, "picked": [t.trial_id for t in picked]}, indent=1))
        rows = pd.read_csv(csv_path, dtype={"trial_id": str}) if csv_path.exists() else pd.DataFrame()
        todo = [t for t in picked if rows.empty or t.trial_id not in set(rows["trial_id"])]
        log(f"calibrate: {len(picked)} trials ({len(picked) - len(todo)} done before), trained standalone "
            f"as tasks of {study.resources.cpu:g} CPUs / {study.resources.gpu:g} GPUs")
        module = registry.TRAINERS[study.trainer.name]
        fields = {"study": study.name, "seed": study.seed, "options": dict(prepared.trainer_options),
                  "space": prepared.space, "directory": directory}
        for trial, result in run_standalone(module, fields, todo, study, log):
            rows = pd.concat([rows, pd.DataFrame([row(trial, result, store)])], ignore_index=True)
            atomic_write_text(csv_path, rows.to_csv(index=False))
            log(f"calibrate: {trial.trial_id} done ({len(rows)}/{len(picked)})")
    rows = rows[rows["trial_id"].isin([t.trial_id for t in picked])].reset_index(drop=True)
    result = Calibration(rows, compare(rows, compared_metrics(study, rows), top_k=max(1, len(rows) // 2)))
    atomic_write_text(json_path, json.dumps({"n": n, "picked": [t.trial_id for t in picked], "stats": result.stats},
                                            indent=1))
    return result


def off_front(ctx: StageContext) -> list[FinishedTrial]:
    """The trials off the front, one per network: a trial whose configuration builds the same network
    as a front member or an earlier trial (0 layers with any heads) would be trained standalone twice
    and enter the ranking as a tie with itself."""
    seen = {ctx.space.network_key(t.config) for t in ctx.front}
    out = []
    for t in ctx.trials:
        key = ctx.space.network_key(t.config)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def saved_picks(path: Path, ctx: StageContext, n: int) -> list[FinishedTrial] | None:
    """The trials an earlier calibration of the same size picked (so a rerun continues it)."""
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    known = {t.trial_id: t for t in ctx.trials}
    if saved.get("n") != n or not all(tid in known for tid in saved.get("picked", [])):
        return None
    return [known[tid] for tid in saved["picked"]]


def run_standalone(module: str, fields: Mapping[str, Any], trials: Sequence[FinishedTrial], study: Study, log: Any):
    """(trial, metrics) as each standalone task ends; the tasks run side by side as resources allow."""
    import ray
    from ray.util.queue import Queue

    if not trials:
        return
    queue = Queue(actor_options={"num_cpus": 0})
    remote = ray.remote(num_cpus=study.resources.cpu, num_gpus=study.resources.gpu, max_retries=1)(task)
    pending = {remote.remote(standalone_task, (module, dict(fields), t), queue): t for t in trials}
    try:
        while pending:
            done, _ = ray.wait(list(pending), timeout=0.5)
            for line in queue.get_nowait_batch(queue.qsize()):
                log(line)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        queue.shutdown()


def row(trial: FinishedTrial, result: Mapping[str, Any], store: ResultsStore) -> dict[str, Any]:
    record = store.trials[trial.trial_id]
    proxy_cost = (record.ended_at - record.started_at) if record.ended_at else math.nan
    numbers = {k: v for k, v in result.items() if k != "cost_s" and isinstance(v, (int, float))}
    return {"trial_id": trial.trial_id, **{f"config.{k}": v for k, v in trial.config.items()},
            **{f"proxy_{k}": trial.metrics.get(k, math.nan) for k in numbers},
            **{f"standalone_{k}": v for k, v in numbers.items()},
            "proxy_cost_s": proxy_cost, "standalone_cost_s": result["cost_s"]}
