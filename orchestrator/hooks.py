"""The stages a study runs once around its trials, through the trainer's hooks (`trainers/contract.py`).

A trainer module may define `prepare` (before the trials), `finish` (after them) and `export` (one
trial as a deployable model); this module calls them by role and knows no trainer by name. It hands
them a `StageContext`: the study's settings, a `run_task` that runs heavy work as one Ray task (a GPU
when the cluster has one, so a super-network lands on a GPU worker) and streams its log lines here,
and the finished trials and the front as plain records.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TextIO

from orchestrator import registry
from orchestrator.errors import LmnasError, ResultsError, StudyError
from orchestrator.pareto import epsilon_net_order
from orchestrator.plugins import trainer_module
from orchestrator.results import FINISHED_STATUSES, ResultsStore, summarise
from orchestrator.study import Study
from search_spaces.base import SearchSpace
from trainers.contract import FinishedTrial, Log, Prepared, RunTask, StageContext, TrainerError

#: makes the `run_task` of a context from its log: `ray_task` under `lmnas`, `run_in_process` in tests.
TaskRunner = Callable[[Log], RunTask]

#: how often a stage's task reruns after its node or worker died.
STAGE_RETRIES = 2

#: hook roles, and what each does in a user's words (for refusals).
ROLES = {"prepare": "stage before its trials (no super-network to train)", "finish": "stage after its trials",
         "export": "trial weights to export", "calibrate": "standalone training of a trial to check its proxy by",
         "remeasure": "measured metric to time again"}


class StageError(LmnasError):
    """A stage around the trials failed for a reason the user can fix (data, model, options)."""


def hook(study: Study, role: str) -> Callable[..., Any] | None:
    """The trainer's `role` hook, or None when it has none."""
    found = getattr(trainer_module(study), role, None)
    return found if callable(found) else None


def trainers_with(role: str) -> list[str]:
    """Registered trainers that define the `role` hook (imports each trainer module)."""
    return [name for name in registry.trainers.names() if callable(getattr(registry.trainers.load(name), role, None))]


def require(study: Study, role: str, command: str) -> Callable[..., Any]:
    """The trainer's `role` hook; a one-line StudyError naming the trainers that have one when it lacks it."""
    found = hook(study, role)
    if found is None:
        raise StudyError("trainer.kind", f"{study.trainer.name!r} has no {ROLES[role]}, so `{command}` has nothing "
                         f"to do; it works for studies of {', '.join(trainers_with(role)) or 'no trainer'}")
    return found


def printer(study: Study, stream: TextIO) -> Log:
    return lambda line: print(f"[{study.name}] {line}", file=stream, flush=True)


def ray_task(log: Log) -> RunTask:
    """A `run_task` on Ray: `fn(*args, log)` as one task holding a whole GPU when the cluster has one,
    else the CPUs of the largest node; `log` lines reach this process through a queue while it runs."""
    def run(fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> Any:
        import ray
        from ray.util.queue import Queue

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        gpus = 1 if any(r.get("GPU", 0) >= 1 for r in nodes) else 0
        cpus = 1 if gpus else max(int(r.get("CPU", 1)) for r in nodes)
        queue = Queue(actor_options={"num_cpus": 0})
        # max_retries covers system failures only (its node lost, its worker killed): the stage runs
        # again elsewhere, while a user error (an exception it raises) is not retried.
        ref = ray.remote(num_gpus=gpus, num_cpus=cpus, max_retries=STAGE_RETRIES)(task).remote(fn, args, queue)
        try:
            while True:
                done, _ = ray.wait([ref], timeout=0.5)
                for line in queue.get_nowait_batch(queue.qsize()):
                    log(line)
                if done:
                    return ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            # A user error (missing data, a space that does not fit the model) is one line; a bug keeps its traceback.
            if isinstance(e.cause, (TrainerError, ValueError)):
                raise StageError(f"{what} failed: {one_line(e.cause)}") from None
            raise
        finally:
            queue.shutdown()

    return run


def task(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> Any:
    """Runs on the worker: as many torch threads as CPUs the task holds, then `fn`."""
    import ray
    import torch

    torch.set_num_threads(max(int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)), 1))
    return fn(*args, queue.put)


def one_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


def finished(store: ResultsStore) -> tuple[FinishedTrial, ...]:
    """The store's finished trials in the order they ended."""
    done = sorted((r for r in store.trials.values() if r.status in FINISHED_STATUSES), key=lambda r: r.ended_at or 0.0)
    return tuple(FinishedTrial(r.trial_id, dict(r.config), dict(r.metrics)) for r in done)


def spread_front(study: Study, store: ResultsStore, trials: Sequence[FinishedTrial]) -> tuple[FinishedTrial, ...]:
    """The Pareto front of `trials` in epsilon-net order (`StageContext.front`)."""
    ids = set(summarise(store.trials_frame(), study.objectives, study.constraints).front["trial_id"])
    members = [t for t in trials if t.trial_id in ids]
    if not members:
        return ()
    points = study.objectives.matrix([t.metrics for t in members])  # (n, m), minimise form
    return tuple(members[i] for i in epsilon_net_order(points))


def stage_context(study: Study, space: SearchSpace, options: Mapping[str, Any], directory: Path, log: Log,
                  store: ResultsStore | None = None, chosen: Sequence[str] = (),
                  runner: TaskRunner | None = None) -> StageContext:
    """The context a hook gets; with a results store, its finished trials, front and the `chosen` ones."""
    trials = finished(store) if store is not None else ()
    picked: tuple[FinishedTrial, ...] = ()
    if chosen:
        known = {r.trial_id: r for r in store.trials.values()} if store is not None else {}
        missing = [tid for tid in chosen if tid not in known]
        if missing:
            raise ResultsError(f"no trial {missing[0]!r} in this study; see `lmnas status` for the trial ids")
        picked = tuple(FinishedTrial(tid, dict(known[tid].config), dict(known[tid].metrics)) for tid in chosen)
    return StageContext(study=study.name, seed=study.seed, options=dict(options), space=space, directory=directory,
                        log=log, run_task=(runner or ray_task)(log), trials=trials,
                        front=spread_front(study, store, trials) if store is not None else (), chosen=picked)


def call(fn: Callable[..., Any], what: str, *args: Any) -> Any:
    """A hook's call in this process: its TrainerError (a user error) as one line."""
    try:
        return fn(*args)
    except TrainerError as e:
        raise StageError(f"{what} failed: {one_line(e)}") from None


def prepare_stage(study: Study, space: SearchSpace, stream: TextIO = sys.stderr,
                  runner: TaskRunner | None = None) -> Prepared:
    """Run the trainer's `prepare` (nothing for most trainers): the space and options the trials get."""
    prepare = hook(study, "prepare")
    if prepare is None:
        return Prepared(space, study.trainer.options)
    ctx = stage_context(study, space, study.trainer.options, study.directory, printer(study, stream), runner=runner)
    return call(prepare, "the stage before the trials", ctx)


def finish_stage(study: Study, prepared: Prepared, directory: Path, store: ResultsStore, stream: TextIO = sys.stderr,
                 chosen: Sequence[str] = (), runner: TaskRunner | None = None) -> Path | None:
    """Run the trainer's `finish` on the stored trials (or the `chosen` ones); the file it wrote."""
    finish = hook(study, "finish")
    if finish is None:
        return None
    ctx = stage_context(study, prepared.space, prepared.trainer_options, directory, printer(study, stream), store,
                        chosen, runner)
    return call(finish, "the stage after the trials", ctx)
