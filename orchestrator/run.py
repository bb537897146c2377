"""Run a study: resolve its plug-ins, start (or join) Ray, drive the trials, keep the results.

By default an embedded Ray starts on loopback only (every listener on 127.0.0.1, no usage
reporting); `address` joins an existing cluster instead. Ray is shut down at the end only
when this process started it. The `local` backend runs the same plan in this process, one trial
at a time, without starting Ray (`orchestrator/local_backend.py`).
"""
from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

from cluster.storage import study_location, subdirectory_names
from orchestrator import ray_env, registry
from orchestrator.console import library_log
from orchestrator.errors import StudyError
from orchestrator.plan import TrialPlan
from orchestrator.export import export_after_trials
from orchestrator.hooks import TaskRunner, finish_stage, prepare_stage
from orchestrator.metric_check import MetricCheck
from orchestrator.plugins import build_scheduler, build_searcher, build_space, check_trainer
from orchestrator.progress import study_progress
from orchestrator.results import STUDY_FILE, TRIALS_FILE, ResultsStore, Summary, atomic_write_text, summarise
from orchestrator.resume import (SCHEDULER_STATE_FILE, SEARCHER_STATE_FILE, finished_count, load_json, reconcile,
                                 unfinished_count)
from orchestrator.schedulers.base import Scheduler
from orchestrator.searchers.base import Searcher
from orchestrator.study import Study, load_saved_study
from search_spaces.base import SearchSpace
from trainers.contract import Prepared, run_in_process

#: where the trials run: Ray Tune (the default; embedded, or a cluster) or this process, one at a time.
BACKENDS = ("ray", "local")


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """A Ray session for the duration of the block: joined, embedded on loopback, or already there.

    Embedded means a new instance of this process's own (`address="local"`): a head that `ray start`
    left on the machine is never joined unless `address` or `RAY_ADDRESS` names it.
    """
    ray_env.configure(address)
    import ray

    if ray.is_initialized():
        yield
        return
    # Inside a Ray job (`ray job submit -- lmnas run ...`) RAY_ADDRESS names the job's cluster.
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        # Joined (a job, a cluster): trial output goes to the driver's log, which `ray job logs`
        # shows, each line prefixed with its trial (ray_adapters.name_log_lines); Ray's own INFO
        # lines stay out of it.
        ray.init(address=address, log_to_driver=True, configure_logging=True, logging_level="ERROR")
    else:
        ray.init(
            address="local",
            num_cpus=num_cpus,
            dashboard_host="127.0.0.1",
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level="ERROR",
        )
    try:
        yield
    finally:
        ray.shutdown()


def prepare_directory(study: Study, overwrite: bool) -> Path:
    """Create the study directory and save the resolved study in it."""
    directory = study.directory
    if (directory / TRIALS_FILE).exists():
        if not overwrite:
            raise StudyError(
                "name",
                f"{directory} already holds results; continue it with `lmnas resume {directory}`, "
                "choose another name, or pass --overwrite",
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / STUDY_FILE, yaml.safe_dump(study.to_dict(), sort_keys=False))
    return directory


@dataclass
class RunOutcome:
    #: the study as it ran (a report of the run is written from it, not from the saved copy).
    study: Study
    #: the trials table at the end of the run, and its summary.
    trials: pd.DataFrame
    summary: Summary
    directory: Path
    #: trials left unfinished (Ctrl-C, time budget): `lmnas resume DIR` continues them.
    unfinished: int


def outcome(study: Study, store: ResultsStore) -> RunOutcome:
    """What a run leaves: the study, its trials and their summary, and the trials not run yet."""
    trials = store.trials_frame()
    unfinished = max(study.budget.num_trials - finished_count(store), 0)
    return RunOutcome(study, trials, summarise(trials, study.objectives, study.constraints), store.directory, unfinished)


@dataclass
class Setup:
    """A study's plug-ins built once for one invocation, before the stage that precedes its trials."""

    study: Study
    space: SearchSpace
    scheduler: Scheduler
    store: ResultsStore
    #: 0 for the first run of a study, then 1, 2, ... for each resume (names Tune's directory).
    run_index: int = 0
    resuming: bool = False


def run_study(
    study: Study, address: str | None = None, overwrite: bool = False, progress: bool = True, backend: str = "ray"
) -> RunOutcome:
    """Run every trial of a new study."""
    space = build_space(study)
    check_trainer(study, space)
    scheduler = build_scheduler(study)
    directory = prepare_directory(study, overwrite)
    store = ResultsStore(directory, study.objectives, study.constraints)
    return execute(Setup(study, space, scheduler, store), address, progress, backend)


def resume_study(directory: Path, address: str | None = None, progress: bool = True, backend: str = "ray") -> RunOutcome:
    """Continue a study from its directory: finished trials kept, unfinished ones rerun."""
    directory = Path(directory).absolute()
    study = load_saved_study(directory)
    space = build_space(study)
    check_trainer(study, space)
    scheduler = build_scheduler(study)
    if (state := load_json(directory / SCHEDULER_STATE_FILE)) is not None:
        scheduler.load_state_dict(state)
    store = ResultsStore(directory, study.objectives, study.constraints)
    # A run suggests at most its budget, so a study with the budget finished and no trial left
    # unfinished holds no suggestion to rerun either: no need to build its searcher to know.
    if finished_count(store) >= study.budget.num_trials and not unfinished_count(store):
        print(f"{directory}: all {study.budget.num_trials} trials are finished; nothing to resume", file=sys.stderr)
        return outcome(study, store)
    setup = Setup(study, space, scheduler, store, run_index=next_run_index(study, directory), resuming=True)
    return execute(setup, address, progress, backend)


def next_run_index(study: Study, directory: Path) -> int:
    """The number of the next Tune run (`tune-<n>`) of a study: one past those already stored, in
    the directory or, for a study at a URI, at the URI (where Tune keeps them)."""
    location = study_location(study.storage, study.name)
    names = subdirectory_names(location.uri) if location.uri else [p.name for p in directory.iterdir() if p.is_dir()]
    runs = [int(n[5:]) for n in names if n.startswith("tune-") and n[5:].isdigit()]
    return max(runs, default=-1) + 1


def trial_plan(setup: Setup, prepared: Prepared) -> TrialPlan:
    """The plan of the trials on the space and trainer options the stage before them settled on. Its
    searcher is built here, once: it samples from that space, and takes the state the study directory
    saved (none for a new study), aligned with the stored results; interrupted trials rerun first."""
    study, store = setup.study, setup.store
    searcher = build_searcher(study, prepared.space)
    if (state := load_json(store.directory / SEARCHER_STATE_FILE)) is not None:
        searcher.load_state_dict(state)
    replay = reconcile(store, searcher)
    remaining = max(study.budget.num_trials - finished_count(store), len(replay))
    if setup.resuming:
        print(f"resuming {study.name}: {finished_count(store)} trials finished, {len(replay)} to rerun, "
              f"{remaining - len(replay)} new", file=sys.stderr)
    return TrialPlan(study, store.directory, registry.TRAINERS[study.trainer.name], prepared.space, searcher,
                     setup.scheduler, store, num_trials=remaining, replay=replay, run_index=setup.run_index,
                     trainer_options=prepared.trainer_options)


def close_searcher(searcher: Searcher) -> None:
    close = getattr(searcher, "close", None)
    if callable(close):
        close()


def execute(setup: Setup, address: str | None, progress: bool, backend: str = "ray") -> RunOutcome:
    """Drive the study's trials on `backend`; whatever happens, leave the directory consistent."""
    if backend not in BACKENDS:
        raise StudyError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    local = backend == "local"
    if local and address:
        raise StudyError("backend", "the local backend runs the trials in this process, without Ray; "
                                    "drop --address, or use --backend ray to join a cluster")
    # Locally the hooks' heavy work runs here too, so nothing starts Ray.
    runner: TaskRunner | None = run_in_process if local else None
    study, store = setup.study, setup.store
    watch = study_progress(study, store, console=progress, ray_metrics=not local)
    check = MetricCheck(store, study.objectives, watch)
    watch()  # the live page from the start: readers see a running study (orchestrator/study_page.py)
    plan: TrialPlan | None = None
    try:
        with library_log(store.directory), nullcontext() if local else ray_session(address):
            if not local:
                from orchestrator.ray_adapters import check_placement

                check_placement(study.resources, joined=ray_env.joins_cluster(address))
            prepared = prepare_stage(study, setup.space, runner=runner)
            plan = trial_plan(setup, prepared)
            plan.on_change, plan.halted = check, check.halted
            run_trials(plan, local, joined=ray_env.joins_cluster(address))
            check.raise_if_halted()
            # Inside the session: a stage after the trials may run Ray tasks (regular distillation).
            finish_stage(study, prepared, store.directory, store, runner=runner)
            export_after_trials(study, prepared, store.directory, store, runner=runner)
    finally:
        if plan is not None:
            close_searcher(plan.searcher)
        store.mark_interrupted()
        watch.close()
    return outcome(study, store)


def run_trials(plan: TrialPlan, local: bool, joined: bool = False) -> None:
    """The trial loop of one backend (each imported only when used: the local one never imports Ray)."""
    if local:
        from orchestrator.local_backend import run_local

        run_local(plan)
    else:
        from orchestrator.ray_adapters import run_tune

        run_tune(plan, joined)
