"""Study progress as Ray custom metrics, for the Ray dashboard's metrics view.

The Ray dashboard has had no Tune view since Ray 2.0, so the driver exports its own gauges
through `ray.util.metrics`; Ray's metrics agent serves them to Prometheus (and the dashboard's
Grafana panels) as `ray_lmnas_trials`, `ray_lmnas_hypervolume` and `ray_lmnas_best_objective`,
each tagged with the study name.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Protocol

from orchestrator.objectives import Objectives
from orchestrator.results import COMPLETED, FAILED, RUNNING, STOPPED, Summary, metric_column


class GaugeLike(Protocol):
    def set(self, value: float, tags: Mapping[str, str] | None = None) -> None: ...


GaugeFactory = Callable[[str, str, tuple[str, ...]], GaugeLike]


def ray_gauge(name: str, description: str, tag_keys: tuple[str, ...]) -> GaugeLike:
    from ray.util.metrics import Gauge

    return Gauge(name, description=description, tag_keys=tag_keys)


def best_values(summary: Summary, objectives: Objectives) -> dict[str, float]:
    """The best value of every objective among the front (each objective's optimum lies on it)."""
    out: dict[str, float] = {}
    for o in objectives.items:
        column = metric_column(o.metric)
        if len(summary.front) and column in summary.front.columns:
            values = summary.front[column].astype(float)
            out[o.metric] = float(values.min() if o.mode == "min" else values.max())
    return out


class StudyMetrics:
    """The gauges of one study; `update(summary)` sets them from the current results."""

    def __init__(self, study_name: str, objectives: Objectives, gauge: GaugeFactory = ray_gauge) -> None:
        self.study_name = study_name
        self.objectives = objectives
        self.trials = gauge("lmnas_trials", "Trials of an lmnas study, by status.", ("study", "status"))
        self.hypervolume = gauge("lmnas_hypervolume", "Hypervolume of the study's current Pareto front.", ("study",))
        self.best = gauge(
            "lmnas_best_objective", "Best value so far of each objective, in its own units.", ("study", "objective")
        )

    def update(self, summary: Summary) -> None:
        tags: dict[str, Any] = {"study": self.study_name}
        c = summary.counts
        # "done" counts early-stopped trials too: they finished, at a lower fidelity.
        for status, value in (("done", c[COMPLETED] + c[STOPPED]), ("running", c[RUNNING]), ("failed", c[FAILED]),
                              ("stopped", c[STOPPED])):
            self.trials.set(float(value), tags={**tags, "status": status})
        if summary.hypervolume is not None and math.isfinite(summary.hypervolume):
            self.hypervolume.set(summary.hypervolume, tags=tags)
        for metric, value in best_values(summary, self.objectives).items():
            self.best.set(value, tags={**tags, "objective": metric})
