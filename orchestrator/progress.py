"""Console progress of a running study, fanned out with the Ray metrics and the live study page.

On a terminal one line is redrawn in place at every change; in a log (not a terminal) a line is
written when a trial finishes, at most every `min_interval_s`, so long studies do not flood logs.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from cluster.storage import study_location
from orchestrator.monitoring import StudyMetrics
from orchestrator.results import COMPLETED, FAILED, RUNNING, STOPPED, ResultsStore, Summary
from orchestrator.study import Study
from orchestrator.study_page import write_page

#: clears the rest of a terminal line (ANSI "erase in line").
_CLEAR_EOL = "\x1b[K"


def clock_text(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_line(study: Study, summary: Summary, elapsed_s: float) -> str:
    """trials done / running / failed, front size, hypervolume, elapsed time and remaining budget."""
    c = summary.counts
    done, failed = c[COMPLETED] + c[STOPPED], c[FAILED]
    total = study.budget.num_trials
    fraction = summary.hypervolume_fraction
    hv = "-" if summary.hypervolume is None else f"{fraction:.1%} of box" if fraction is not None else f"{summary.hypervolume:.4g}"
    stopped = f" ({c[STOPPED]} stopped early)" if c[STOPPED] else ""
    budget = study.budget.time_budget_s
    left = f", {clock_text(budget - elapsed_s)} of time budget left" if budget else ""
    return (
        f"[{study.name}] {done + failed}/{total} trials: {done} done{stopped}, {c[RUNNING]} running, "
        f"{failed} failed | front {len(summary.front)} | hypervolume {hv} | "
        f"{clock_text(elapsed_s)} elapsed, {max(total - done - failed, 0)} trials left{left}"
    )


class LivePage:
    """Rewrites the study page from the store's current trials (it reloads itself in a browser),
    then copies the study's files to its URI when it has one."""

    def __init__(self, study: Study, store: ResultsStore, push: Callable[[], None] | None = None) -> None:
        self.study, self.store, self.push = study, store, push

    def __call__(self, summary: Summary, live: bool = True) -> None:
        write_page(self.store.directory, self.study.name, self.study.objectives, self.store.trials_frame(), summary,
                   live=live)
        if self.push is not None:
            self.push()


class Progress:
    """The hook the runner calls after every trial event.

    It summarises the results once and hands the summary to the console, the Ray metrics and the
    live page (each optional).
    """

    def __init__(
        self,
        study: Study,
        store: ResultsStore,
        stream: TextIO | None = sys.stderr,
        metrics: StudyMetrics | None = None,
        page: LivePage | Callable[[Summary], None] | None = None,
        min_interval_s: float = 10.0,
        page_interval_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.study, self.store, self.stream = study, store, stream
        self.metrics, self.page = metrics, page
        self.min_interval_s, self.page_interval_s = min_interval_s, page_interval_s
        self.clock = clock
        self.started = clock()
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.last_finished = 0
        self.last_print = -float("inf")
        self.last_page = -float("inf")
        self.pending = ""  # the newest line a throttled log has not shown yet

    def __call__(self) -> None:
        summary = self.store.summary()  # the one the store just wrote: computed once per change
        now = self.clock()
        if self.metrics is not None:
            self.metrics.update(summary)
        if self.page is not None and now - self.last_page >= self.page_interval_s:
            self.page(summary)
            self.last_page = now
        if self.stream is not None:
            self._console(summary, now)

    def _console(self, summary: Summary, now: float) -> None:
        line = progress_line(self.study, summary, now - self.started)
        if self.tty:
            self.stream.write(f"\r{line}{_CLEAR_EOL}")
            self.stream.flush()
            return
        c = summary.counts
        finished = c[COMPLETED] + c[STOPPED] + c[FAILED]
        if finished == self.last_finished:
            return  # a trial started: not worth a log line
        self.last_finished = finished
        if now - self.last_print >= self.min_interval_s or finished >= self.study.budget.num_trials:
            print(line, file=self.stream, flush=True)
            self.last_print, self.pending = now, ""
        else:
            self.pending = line

    def close(self) -> None:
        """Write the final page; end the live line on a terminal, or show the line a throttle held back."""
        if isinstance(self.page, LivePage):
            self.page(self.store.summary(), live=False)
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        elif self.pending:
            print(self.pending, file=self.stream, flush=True)
            self.pending = ""


def study_progress(study: Study, store: ResultsStore, console: bool = True, ray_metrics: bool = True) -> Progress:
    """The runner's hook: console progress (unless quiet), Ray metrics (not for a run without Ray: they
    would import it for nobody to read) and the live study page."""
    location = study_location(study.storage, study.name)
    return Progress(study, store, stream=sys.stderr if console else None,
                    metrics=StudyMetrics(study.name, study.objectives) if ray_metrics else None,
                    page=LivePage(study, store, push=location.push if location.uri else None))
