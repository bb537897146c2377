"""Multi-objective asynchronous successive halving, MO-ASHA (Schmucker et al. 2021,
"Multi-objective multi-fidelity hyperparameter optimization with application to fairness";
pruning paper, Appendix D), in ASHA's stopping form (Li et al. 2020, "A system for massively
parallel hyperparameter tuning", §3).

Rungs sit at min_fidelity * eta^k below max_fidelity. When a trial first reports a fidelity at
or past a rung, its minimise-form objectives are recorded there and it continues iff it is
among the best ceil(n / eta) of the n trials recorded at that rung, ranked by non-dominated
sorting and, inside the front the cut falls in, by the tie-break (crowding distance or
epsilon-net). Decisions use whatever the rung holds at that moment, so the first trial at a
rung always continues. A trial that reports past max_fidelity is stopped.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from orchestrator.pareto import TIE_BREAKS, TieBreak, sort_order
from orchestrator.objectives import Objectives
from orchestrator.schedulers.base import Decision, Scheduler


def _positive_number(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"option '{name}' must be a positive number, got {value!r}")
    return float(value)


class MOASHAScheduler(Scheduler):
    """Options: `fidelity` (the reported metric that counts progress, e.g. "epoch" or "step"),
    `min_fidelity`, `max_fidelity`, `reduction_factor` (eta > 1, default 3) and `tie_break`
    ("crowding" or "epsilon_net")."""

    def __init__(
        self,
        objectives: Objectives,
        seed: int = 0,
        *,
        fidelity: str = "step",
        min_fidelity: float = 1,
        max_fidelity: float = 27,
        reduction_factor: float = 3,
        tie_break: TieBreak = "crowding",
    ) -> None:
        super().__init__(objectives, seed)
        if not isinstance(fidelity, str) or not fidelity:
            raise ValueError(f"option 'fidelity' must be the name of a reported metric, got {fidelity!r}")
        self.fidelity = fidelity
        self.min_fidelity = _positive_number("min_fidelity", min_fidelity)
        self.max_fidelity = _positive_number("max_fidelity", max_fidelity)
        if self.max_fidelity <= self.min_fidelity:
            raise ValueError(f"option 'max_fidelity' must be > min_fidelity ({min_fidelity}), got {max_fidelity}")
        self.eta = _positive_number("reduction_factor", reduction_factor)
        if self.eta <= 1:
            raise ValueError(f"option 'reduction_factor' must be > 1, got {reduction_factor}")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"option 'tie_break' must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
        self.tie_break: TieBreak = tie_break
        self.levels: list[float] = []
        while True:
            # Rounded so that e.g. 0.1 * 3 is the 0.3 a trainer reports, not 0.30000000000000004.
            level = float(f"{self.min_fidelity * self.eta ** len(self.levels):.12g}")
            if level >= self.max_fidelity:
                break
            self.levels.append(level)
        #: per rung, (trial_id, minimise-form objectives) in the order they were recorded.
        self.rungs: list[list[tuple[str, list[float]]]] = [[] for _ in self.levels]

    def on_trial_result(self, trial_id: str, metrics: Mapping[str, float]) -> Decision:
        progress = metrics.get(self.fidelity)
        if not isinstance(progress, (int, float)) or not self.objectives.has_values(metrics):
            return Decision.CONTINUE  # nothing to judge this result by
        if progress > self.max_fidelity:
            return Decision.STOP
        rung = self._rung_to_record(trial_id, float(progress))
        if rung is None:
            return Decision.CONTINUE
        self.rungs[rung].append((trial_id, self.objectives.to_minimise(metrics).tolist()))
        return Decision.CONTINUE if self.promotable(rung, trial_id) else Decision.STOP

    def on_trial_complete(self, trial_id: str, metrics: Mapping[str, float] | None) -> None:
        """A final result counts at the rungs it reached but was never judged at (e.g. when the
        trainer reported less often than the rungs)."""
        if metrics is None or not self.objectives.has_values(metrics):
            return
        progress = metrics.get(self.fidelity)
        if isinstance(progress, (int, float)) and progress <= self.max_fidelity:
            rung = self._rung_to_record(trial_id, float(progress))
            if rung is not None:
                self.rungs[rung].append((trial_id, self.objectives.to_minimise(metrics).tolist()))

    def _rung_to_record(self, trial_id: str, progress: float) -> int | None:
        """The highest rung at or below `progress` where the trial has no record yet, if any.
        Lower rungs skipped by a coarse report stay empty for this trial, as in ASHA."""
        for k in reversed(range(len(self.levels))):
            if progress >= self.levels[k]:
                if any(t == trial_id for t, _ in self.rungs[k]):
                    return None
                return k
        return None

    def promotable(self, rung: int, trial_id: str) -> bool:
        """Whether `trial_id` is among the best ceil(n / eta) of the n trials at `rung`."""
        recorded = self.rungs[rung]
        ids = [t for t, _ in recorded]
        points = np.array([v for _, v in recorded], dtype=float)  # (n, #objectives)
        keep = math.ceil(len(ids) / self.eta)
        best = sort_order(points, self.tie_break)[:keep]
        return ids.index(trial_id) in set(best.tolist())

    def state_dict(self) -> dict[str, Any]:
        return {"rungs": [[[t, list(v)] for t, v in rung] for rung in self.rungs]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        rungs = state["rungs"]
        if len(rungs) != len(self.levels):
            raise ValueError(f"saved state has {len(rungs)} rungs, this scheduler has {len(self.levels)}")
        self.rungs = [[(str(t), [float(x) for x in v]) for t, v in rung] for rung in rungs]
