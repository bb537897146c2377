"""The in-process backend (`lmnas run --backend local`): a study's trials one at a time in the driver.

No Ray: the trainer runs in this process and thread, so `breakpoint()` / pdb inside a trainer works,
and a benchmark that replays a table costs lookups, not actor starts. It runs the same `TrialPlan` as
`ray_adapters.run_tune` and leaves the same files (trials.parquet, reports.parquet,
searcher_state.json, scheduler_state.json, summary.json), so `lmnas resume` continues a local run on
either backend. It makes the searcher and scheduler calls Ray Tune makes:

- `suggest` per trial (replays of an interrupted run first, under their old ids);
- per report, `scheduler.on_trial_result`, then `searcher.on_trial_result` unless the scheduler
  stopped the trial; a stop raises `TrialStopped` from the trainer's `report` (status `stopped`);
- at the end, `scheduler.on_trial_complete` and `searcher.on_trial_complete` with the last report
  (None when it failed); a failure is retried `budget.max_retries` times, as on Ray.

What differs from Ray: trials never overlap (`max_concurrent` and `resources` are not used);
Tune's repeat of the last result when a trainer returns is not made; a trainer that kills its
process (`os._exit`, a segfault) ends the study, which `lmnas resume` then continues; and
`budget.trial_timeout_s` is enforced with SIGALRM (in the main thread) and at every report, so a
trial stuck inside one long C call (a single huge matmul, a blocking read) is stopped only when
that call returns. `budget.time_budget_s` is checked between trials and at every report: the trial
running when it runs out is left unfinished (interrupted), and a resume reruns it, as on Ray.
"""
from __future__ import annotations

import importlib
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cluster.storage import join, study_location, upload_dir
from orchestrator.plan import TrialPlan
from orchestrator.results import COMPLETED, FAILED, STOPPED, atomic_write_text
from orchestrator.resume import SCHEDULER_STATE_FILE, SEARCHER_STATE_FILE, BackgroundSaver
from orchestrator.schedulers.base import Decision
from orchestrator.searchers.base import Finished
from orchestrator.trials import (NetworkReuse, TrialTimeout, error_line, plain_metrics, reused_metrics, timeout_message,
                                 trial_config)
from trainers.contract import TrialContext, TrialStopped

#: how often a searcher that answers "not ready yet" (None) is asked again.
POLL_S = 0.01


class OutOfTime(BaseException):
    """The study must stop now (its time budget is spent, or a check halted it). A BaseException, like
    KeyboardInterrupt, so a trainer's `except Exception` does not swallow it; the running trial stays
    unfinished and a resume reruns it."""


@dataclass
class Clock:
    """The study's and the running trial's deadlines (time.monotonic), and the alarm for the trial's."""

    study_deadline: float | None
    trial_timeout_s: float | None
    trial_deadline: float | None = None
    #: SIGALRM works in the main thread only; elsewhere the limit is checked at reports alone.
    alarm: bool = field(default_factory=lambda: threading.current_thread() is threading.main_thread())

    def start_trial(self) -> None:
        self.trial_deadline = None if self.trial_timeout_s is None else time.monotonic() + self.trial_timeout_s
        self.arm()

    def arm(self) -> None:
        """Raise TrialTimeout in the trainer when the trial's time is up (re-armed after each report)."""
        if self.trial_deadline is None:
            return
        left = self.trial_deadline - time.monotonic()
        if left <= 0:
            raise TrialTimeout(timeout_message(self.trial_timeout_s or 0.0))
        if self.alarm:
            signal.signal(signal.SIGALRM, self.ring)
            signal.setitimer(signal.ITIMER_REAL, left)

    def disarm(self) -> None:
        """No alarm while the driver's own code runs (a report being stored), nor after the trial."""
        if self.trial_deadline is not None and self.alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

    def end_trial(self) -> None:
        self.disarm()
        self.trial_deadline = None

    def ring(self, signum: int, frame: Any) -> None:
        raise TrialTimeout(timeout_message(self.trial_timeout_s or 0.0))

    def study_over(self) -> bool:
        return self.study_deadline is not None and time.monotonic() >= self.study_deadline


@dataclass
class Reporter:
    """The `report` a trainer gets: each report to the scheduler, the searcher and the store, in Tune's order."""

    plan: TrialPlan
    trial_id: str
    clock: Clock
    last: dict[str, float | str] = field(default_factory=dict)
    #: the report as the trainer passed it, to tell whether its return value is a new result.
    raw: dict[str, Any] = field(default_factory=dict)
    #: the scheduler stopped the trial.
    stopped: bool = False
    #: the state the trial last reported as a checkpoint: a retry continues from it.
    checkpoint: Path | None = None

    def __call__(self, metrics: Mapping[str, Any], checkpoint: Path | None = None) -> None:
        if self.stopped:  # a trainer that caught TrialStopped and reports on
            raise TrialStopped("the trial was stopped")
        if checkpoint is not None:
            self.checkpoint = Path(checkpoint)
        self.clock.disarm()
        self.raw = dict(metrics)
        self.last = plain_metrics(metrics)
        decision = self.plan.scheduler.on_trial_result(self.trial_id, self.last)
        if decision is not Decision.STOP:  # Tune tells the searcher only of results it lets continue
            self.plan.searcher.on_trial_result(self.trial_id, self.last)
        self.plan.store.trial_reported(self.trial_id, self.last)
        if decision is Decision.STOP:
            self.stopped = True
            raise TrialStopped(f"the {self.plan.study.scheduler.name} scheduler stopped the trial")
        if self.clock.study_over() or halted(self.plan):
            raise OutOfTime
        self.clock.arm()


def halted(plan: TrialPlan) -> bool:
    return plan.halted is not None and plan.halted()


def changed(plan: TrialPlan) -> None:
    if plan.on_change is not None:
        plan.on_change()


class LocalRun:
    """One invocation of the trial loop in this process."""

    def __init__(self, plan: TrialPlan) -> None:
        self.plan = plan
        study = plan.study
        self.trainer = importlib.import_module(plan.trainer_module)
        self.replay = list(plan.replay)
        self.reuse = NetworkReuse(plan.space, plan.store)
        self.saver = BackgroundSaver(plan.searcher.state_dict, plan.directory / SEARCHER_STATE_FILE)
        budget = study.budget.time_budget_s
        self.clock = Clock(None if budget is None else time.monotonic() + budget, study.budget.trial_timeout_s)
        self.publish_uri = study_location(study.storage, study.name).uri
        self.count = 0

    def run(self) -> None:
        try:
            for _ in range(self.plan.num_trials):
                if self.clock.study_over() or halted(self.plan):
                    return
                suggestion = self.next_trial()
                if suggestion is None:
                    return
                self.run_trial(*suggestion)
        except OutOfTime:
            return
        finally:
            self.clock.end_trial()
            self.saver.close()
            self.save_scheduler()
            self.plan.store.flush()

    def next_trial(self) -> tuple[str, dict[str, Any]] | None:
        """(study trial id, configuration) of the next trial; None when the searcher is finished."""
        if self.replay:
            study_id, config = self.replay.pop(0)
            self.plan.searcher.add_pending(study_id, config)
            return study_id, config
        study_id = self.fresh_id()
        while (suggested := self.plan.searcher.suggest(study_id)) is None:  # computing off this thread
            if self.clock.study_over() or halted(self.plan):
                return None
            time.sleep(POLL_S)
        if isinstance(suggested, Finished):
            return None
        self.saver.request()
        return study_id, suggested

    def fresh_id(self) -> str:
        """An id no trial of the study has (a resumed study keeps its earlier ones)."""
        taken = set(self.plan.store.trials) | set(self.plan.searcher.pending)
        while (candidate := f"trial_{self.count:05d}") in taken:
            self.count += 1
        self.count += 1
        return candidate

    def run_trial(self, study_id: str, arch: dict[str, Any]) -> None:
        plan = self.plan
        config = trial_config(study_id, arch, self.reuse.evaluated(arch))
        plan.scheduler.on_trial_add(study_id, arch)
        restore: Path | None = None
        for attempt in range(plan.study.budget.max_retries + 1):
            plan.store.trial_started(study_id, arch)
            changed(plan)
            reporter = Reporter(plan, study_id, self.clock, checkpoint=restore)
            error: str | None = None
            try:
                self.attempt(config, reporter)
            except TrialStopped:
                pass
            except Exception as e:  # the trainer's failure is the trial's, as on Ray
                error = error_line(e)
            finally:
                self.clock.end_trial()
            if error is not None and attempt < plan.study.budget.max_retries:
                restore = reporter.checkpoint  # a retry continues from the last checkpoint, as on Ray
                continue
            # A trainer that caught TrialStopped and went on is still a trial the scheduler stopped.
            status = FAILED if error is not None else STOPPED if reporter.stopped else COMPLETED
            self.finish(study_id, status, reporter.last, error)
            return

    def attempt(self, config: dict[str, Any], report: Reporter) -> None:
        """One run of the trainer through the trainer contract (as `ray_adapters.make_trainable` does)."""
        plan, study_id = self.plan, config["trial_id"]
        if (reuse := config.get("reuse")) is not None:  # the same network was evaluated already
            report(reused_metrics(reuse))
            return
        ctx = TrialContext(study_id, config["arch"], plan.space, dict(plan.options), plan.study.seed,
                           plan.directory / "trials" / study_id, report.checkpoint)
        self.clock.start_trial()
        final = self.trainer.train(ctx, report)
        self.clock.disarm()
        if self.publish_uri is not None and ctx.trial_dir is not None and ctx.trial_dir.is_dir():
            upload_dir(ctx.trial_dir, join(self.publish_uri, "trials", study_id))
        if final and dict(final) != report.raw:
            report(dict(final))

    def finish(self, study_id: str, status: str, metrics: dict[str, float | str], error: str | None = None) -> None:
        """The end of a trial: scheduler, searcher, store, then the saved states (Tune's order)."""
        plan = self.plan
        observed = None if status == FAILED else metrics
        plan.scheduler.on_trial_complete(study_id, observed)
        plan.searcher.on_trial_complete(study_id, observed)
        plan.store.trial_finished(study_id, status, metrics, error=error)
        changed(plan)
        self.save_scheduler()
        self.saver.request()

    def save_scheduler(self) -> None:
        atomic_write_text(self.plan.directory / SCHEDULER_STATE_FILE, json.dumps(self.plan.scheduler.state_dict()))


def run_local(plan: TrialPlan) -> None:
    """Run the plan's trials in this process, one at a time; results land in `plan.store` as they come."""
    LocalRun(plan).run()
