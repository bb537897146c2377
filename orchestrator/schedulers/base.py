"""The scheduler interface: per intermediate result, a decision (after Ray Tune's `TrialScheduler`
and syne-tune's `SchedulerDecision`)."""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from typing import Any, Mapping

from orchestrator.objectives import Objectives


class Decision(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"


class Scheduler(ABC):
    """Decide, for each intermediate result, whether a trial continues.

    `metrics` are as the trainer reported them; convert with `self.objectives.to_minimise`.
    """

    def __init__(self, objectives: Objectives, seed: int = 0) -> None:
        self.objectives = objectives
        self.seed = seed

    def on_trial_add(self, trial_id: str, config: Mapping[str, Any]) -> None:
        """A trial started."""

    @abstractmethod
    def on_trial_result(self, trial_id: str, metrics: Mapping[str, float]) -> Decision:
        """An intermediate result: continue or stop?"""

    def on_trial_complete(self, trial_id: str, metrics: Mapping[str, float] | None) -> None:
        """A trial ended (metrics None when it failed)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""
