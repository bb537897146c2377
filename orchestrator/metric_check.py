"""Stop a study at the first trial that completes without one of its objectives' metrics.

Such a trial can never enter the front, and neither can any later one: running on would spend the
whole budget to end with an empty front. `lmnas validate` catches most of these from the trainer's
`METRICS`; this catches the rest (a trainer that declares none, or declares wrongly) at once.
"""
from __future__ import annotations

from typing import Callable

from orchestrator.errors import StudyError
from orchestrator.objectives import Objectives
from orchestrator.results import COMPLETED, ResultsStore


class MetricCheck:
    """The runner's `on_change` hook: checks every newly completed trial, then calls `then`."""

    def __init__(self, store: ResultsStore, objectives: Objectives, then: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.objectives = objectives
        self.then = then
        # Trials of an earlier run (a resumed study) were judged then.
        self.checked: set[str] = set(store.trials)
        #: the one-line problem once a trial lacked a metric (the study then stops).
        self.problem: str | None = None

    def __call__(self) -> None:
        for rec in list(self.store.trials.values()):
            if rec.status != COMPLETED or rec.trial_id in self.checked:
                continue
            self.checked.add(rec.trial_id)
            missing = [m for m in self.objectives.metrics if m not in rec.metrics]
            if missing and self.problem is None:
                reported = ", ".join(sorted(rec.metrics)) or "nothing"
                self.problem = (f"trial {rec.trial_id} finished without the objective's metric {missing[0]!r} "
                                f"(it reported {reported}); name a metric the trainer reports")
        self.then()

    def halted(self) -> bool:
        """Whether the study must stop (the trial loop polls this)."""
        return self.problem is not None

    def raise_if_halted(self) -> None:
        if self.problem is not None:
            raise StudyError("objectives", self.problem)
