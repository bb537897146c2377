"""The trainer contract: what a trainer receives and how it reports.

A trainer calls `report(metrics)` for every intermediate result (each carrying its fidelity,
e.g. `epoch` or `step`, so schedulers can stop it early) and returns its final metrics.
`report` may raise `TrialStopped` when a scheduler ends the trial; trainers need not catch it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from search_spaces.base import SearchSpace

#: numbers, plus text labels where a number would mislead (e.g. "hardware": "NVIDIA H100").
Metrics = Mapping[str, float | str]
Report = Callable[[Metrics], None]


class TrialStopped(Exception):
    """Raised by a `report` callable when the trial should stop (early stopping)."""


class TrainerError(RuntimeError):
    """A trainer cannot run with the options it was given (a user error, not a bug)."""


@dataclass(frozen=True)
class TrialContext:
    """Everything a trainer needs for one trial."""

    trial_id: str
    arch: Mapping[str, Any]
    space: SearchSpace
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    #: a directory private to this trial, for checkpoints and artefacts.
    trial_dir: Path | None = None


class Trainer(Protocol):
    def __call__(self, ctx: TrialContext, report: Report) -> Metrics: ...


def collect_reports() -> tuple[list[dict[str, float]], Report]:
    """A `report` callable that just records: for tests and the command line."""
    seen: list[dict[str, float]] = []
    return seen, lambda m: seen.append(dict(m))
