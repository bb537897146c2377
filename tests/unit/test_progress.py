"""Console progress (live line on a terminal, throttled lines in a log) and the study's Ray gauges."""
from __future__ import annotations

import io
from pathlib import Path

from orchestrator.monitoring import StudyMetrics, best_values
from orchestrator.progress import Progress, clock_text, progress_line
from orchestrator.results import COMPLETED, FAILED, ResultsStore, summarise
from tests.unit.study_results import OBJS, study, study_directory


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeGauge:
    def __init__(self, name: str, description: str, tag_keys: tuple[str, ...]) -> None:
        self.name, self.tag_keys = name, tag_keys
        self.values: dict[tuple[str, ...], float] = {}

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        assert tags is not None and set(tags) == set(self.tag_keys)
        self.values[tuple(tags[k] for k in self.tag_keys)] = value


def test_progress_line_names_counts_front_hypervolume_and_budget(tmp_path: Path) -> None:
    s, store = study_directory(tmp_path)
    summary = summarise(store.trials_frame(), OBJS)
    line = progress_line(s, summary, 75.0)
    assert line.startswith("[page-study] 6/8 trials: 5 done (1 stopped early), 1 running, 1 failed | front 3 |")
    # The box between the best values seen (acc 0.95, params 20) and the reference (acc 0, params 100).
    assert summary.hypervolume_fraction == summary.hypervolume / (0.95 * 80) and 0 < summary.hypervolume_fraction <= 1
    assert f"hypervolume {summary.hypervolume_fraction:.1%} of box" in line and "01:15 elapsed, 2 trials left" in line
    assert summary.hypervolume_text() == (f"{summary.hypervolume_fraction:.1%} of the reference box "
                                          f"(raw {summary.hypervolume:.4g})")
    assert clock_text(3725) == "1:02:05" and clock_text(-3) == "00:00"


def logged(tmp_path: Path, min_interval_s: float) -> tuple[ResultsStore, Progress, io.StringIO, Clock]:
    """An empty study whose progress goes to a log (not a terminal) on a hand-driven clock."""
    s = study(tmp_path)
    store = ResultsStore(s.directory, s.objectives, flush_interval_s=0)
    log, clock = io.StringIO(), Clock()
    return store, Progress(s, store, stream=log, min_interval_s=min_interval_s, clock=clock), log, clock


def test_log_gets_one_throttled_line_per_finished_trial(tmp_path: Path) -> None:
    store, progress, log, clock = logged(tmp_path, min_interval_s=10)
    for i in range(6):
        store.trial_started(f"t{i}", {"layers": 1})
        progress()  # a start alone writes nothing
        clock.now += 4
        store.trial_finished(f"t{i}", COMPLETED, {"acc": 0.5 + i / 100, "params": 10.0 + i})
        progress()
    lines = log.getvalue().splitlines()
    # finished at t=4, 8, ..., 24: printed at 4 and 16 (the first >= 10 s after 4); 24 is held back
    assert [ln.split(" trials:")[0] for ln in lines] == ["[page-study] 1/8", "[page-study] 4/8"]
    progress.close()
    assert log.getvalue().splitlines()[-1].startswith("[page-study] 6/8 trials: 6 done")
    assert "\r" not in log.getvalue()


def test_last_trial_of_the_budget_is_always_printed(tmp_path: Path) -> None:
    store, progress, log, _ = logged(tmp_path, min_interval_s=1e9)
    for i in range(8):
        store.trial_started(f"t{i}", {})
        store.trial_finished(f"t{i}", FAILED if i % 2 else COMPLETED, {"acc": 0.5, "params": 10.0 + i})
        progress()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("[page-study] 8/8 trials: 4 done, 0 running, 4 failed")


def test_terminal_line_is_redrawn_in_place(tmp_path: Path) -> None:
    s, store = study_directory(tmp_path)
    term = Terminal()
    progress = Progress(s, store, stream=term)
    progress()
    progress()
    progress.close()
    out = term.getvalue()
    assert out.count("\r") == 2 and out.count("\x1b[K") == 2 and out.endswith("\n") and out.count("\n") == 1


def test_page_and_metrics_follow_every_change_page_throttled(tmp_path: Path) -> None:
    s, store = study_directory(tmp_path)
    pages: list[int] = []
    metrics = StudyMetrics(s.name, s.objectives, gauge=FakeGauge)
    clock = Clock()
    progress = Progress(s, store, stream=None, metrics=metrics, page=lambda summary: pages.append(len(summary.front)),
                        page_interval_s=3, clock=clock)
    for t in (0.0, 1.0, 3.5, 4.0, 7.0):
        clock.now = t
        progress()
    assert pages == [3, 3, 3]  # at 0, 3.5 and 7
    summary = summarise(store.trials_frame(), s.objectives)
    trials = metrics.trials.values  # type: ignore[attr-defined]
    assert trials[("page-study", "done")] == 5 and trials[("page-study", "running")] == 1
    assert trials[("page-study", "failed")] == 1 and trials[("page-study", "stopped")] == 1
    assert metrics.hypervolume.values[("page-study",)] == summary.hypervolume  # type: ignore[attr-defined]
    assert metrics.best.values == {("page-study", "acc"): 0.95, ("page-study", "params"): 20.0}  # type: ignore[attr-defined]


def test_best_values_follow_each_objective_direction(tmp_path: Path) -> None:
    _, store = study_directory(tmp_path)
    assert best_values(summarise(store.trials_frame(), OBJS), OBJS) == {"acc": 0.95, "params": 20.0}
    empty = summarise(store.trials_frame().iloc[0:0], OBJS)
    assert best_values(empty, OBJS) == {}
