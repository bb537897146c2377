"""Run a study: resolve its plug-ins, start (or join) Ray, drive the trials, keep the results.

By default an embedded Ray starts on loopback only (every listener on 127.0.0.1, no usage
reporting); `address` joins an existing cluster instead. Ray is shut down at the end only
when this process started it.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

import yaml

from orchestrator import registry
from orchestrator.errors import StudyError
from orchestrator.plugins import build_scheduler, build_searcher, build_space, check_trainer_options
from orchestrator.results import STUDY_FILE, TRIALS_FILE, ResultsStore, Summary, atomic_write_text, summarise
from orchestrator.stages import after_trials, before_trials
from orchestrator.study import Study

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """A Ray session for the duration of the block: joined, embedded on loopback, or already there."""
    for key, value in LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
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
                "name", f"{directory} already holds results of a study; choose another name or pass --overwrite"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / STUDY_FILE, yaml.safe_dump(study.to_dict(), sort_keys=False))
    return directory


class Progress:
    """One line per change in trial counts: done / running / failed, front size, hypervolume, time."""

    def __init__(self, study: Study, store: ResultsStore, stream: TextIO = sys.stderr) -> None:
        self.study, self.store, self.stream = study, store, stream
        self.started = time.monotonic()
        self.last = ""

    def __call__(self) -> None:
        s = summarise(self.store.trials_frame(), self.study.objectives, self.study.constraints)
        c = s.counts
        done = c["completed"] + c["stopped"]
        hv = f"{s.hypervolume:.4g}" if s.hypervolume is not None else "-"
        elapsed = time.monotonic() - self.started
        budget = self.study.budget.time_budget_s
        left = f", {max(budget - elapsed, 0):.0f}s of time budget left" if budget else ""
        line = (
            f"[{self.study.name}] trials {done + c['failed']}/{self.study.budget.num_trials}: "
            f"{done} done, {c['running']} running, {c['failed']} failed | front {len(s.front)} | "
            f"hypervolume {hv} | {elapsed:.0f}s elapsed{left}"
        )
        # One line per finished trial: starts alone would flood logs.
        key = f"{done}/{c['failed']}"
        if key != self.last:
            print(line, file=self.stream, flush=True)
            self.last = key


def run_study(
    study: Study, address: str | None = None, overwrite: bool = False, progress: bool = True
) -> Summary:
    """Run every trial of `study` and return the summary of its results."""
    check_trainer_options(study)
    space = build_space(study)
    searcher = build_searcher(study, space)
    scheduler = build_scheduler(study)
    directory = prepare_directory(study, overwrite)
    store = ResultsStore(directory, study.objectives, study.constraints)
    from orchestrator.ray_adapters import run_tune

    try:
        with ray_session(address):
            before_trials(study, space)
            run_tune(
                name=study.name,
                directory=directory,
                trainer_module=registry.TRAINERS[study.trainer.name],
                space=space,
                trainer_options=study.trainer.options,
                searcher=searcher,
                scheduler=scheduler,
                store=store,
                num_trials=study.budget.num_trials,
                max_concurrent=study.budget.max_concurrent,
                time_budget_s=study.budget.time_budget_s,
                max_retries=study.budget.max_retries,
                cpu=study.resources.cpu,
                gpu=study.resources.gpu,
                seed=study.seed,
                on_change=Progress(study, store) if progress else None,
            )
    finally:
        close = getattr(searcher, "close", None)
        if callable(close):
            close()
        store.flush()
    after_trials(study, space, directory)
    return summarise(store.trials_frame(), study.objectives, study.constraints)
