"""First in, first out: every trial runs to completion."""
from __future__ import annotations

from typing import Mapping

from orchestrator.schedulers.base import Decision, Scheduler


class FIFOScheduler(Scheduler):
    def on_trial_result(self, trial_id: str, metrics: Mapping[str, float]) -> Decision:
        return Decision.CONTINUE
