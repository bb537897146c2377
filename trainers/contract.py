"""The trainer contract: what a trainer receives, how it reports, and the hooks it may define.

A trainer module defines `train(ctx, report)` and `OPTIONS` (a frozen dataclass). `train` calls
`report(metrics)` for every intermediate result (each carrying its fidelity, e.g. `epoch` or
`step`, so schedulers can stop it early) and returns its final metrics. `report` may raise
`TrialStopped` when a scheduler ends the trial; trainers need not catch it.

Beside them a module may define, and the orchestrator calls by role (never by trainer name):

- `METRICS`: the names `train` reports (a collection, or a function of the built options and the
  search space when they decide it), so a study is checked before anything runs;
- `prepare(ctx: StageContext) -> Prepared`: before the trials (train a super-network, fill a
  cache); it may settle the space and the options the trials get;
- `finish(ctx: StageContext) -> Path | None`: after the trials (retraining, regular
  distillation), on `ctx.chosen` when the user named trials, else on trials it picks itself;
  returns the file it wrote its results to;
- `export(ctx: StageContext, trial: FinishedTrial, out: Path) -> Mapping[str, Any]`: a
  deployable model of one finished trial in `out`; returns what to record about it.
- `calibrate(ctx: StageContext, trial: FinishedTrial) -> Metrics`: one finished trial trained the
  way a user would deploy it (e.g. extracted and fine-tuned on its own); returns the metrics its
  trial reported as a cheap proxy (same names), so `lmnas calibrate` can rank both.
- `remeasure(ctx: StageContext, trial: FinishedTrial) -> Metrics`: the trial's measured metrics
  (latency) taken again, for `lmnas remeasure`, which times the front once more after the search,
  one trial at a time on an otherwise idle host.

The hooks get everything in a plain `StageContext`, so they run the same under `lmnas`, in a test
and from a script (`run_in_process`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Protocol

from search_spaces.base import SearchSpace

#: numbers, plus text labels where a number would mislead (e.g. "hardware": "NVIDIA H100").
Metrics = Mapping[str, float | str]


class Report(Protocol):
    """`report(metrics)` for each result; `report(metrics, checkpoint=dir)` when `dir` holds the state
    a rerun of the trial continues from (it comes back as `TrialContext.restore_dir`)."""

    def __call__(self, metrics: Metrics, checkpoint: Path | None = None) -> None: ...


Log = Callable[[str], None]
#: `run_task(fn, args, what)` runs `fn(*args, log)` as one task (a Ray task under `lmnas`) and
#: returns its result; `what` names the work in a failure's one-line message.
RunTask = Callable[[Callable[..., Any], tuple[Any, ...], str], Any]
#: what a module's METRICS may be: the names, or a function of its built OPTIONS and the space giving them.
DeclaredMetrics = Collection[str] | Callable[[Any, SearchSpace], Collection[str]]

#: measured size and latency, as several trainers report them (`trainers/efficiency`).
PARAM_METRICS = ("params", "params_non_embedding")
LATENCY_METRICS = ("latency_ms", "latency_p90_ms", "latency_cv", "hardware", "latency_clock", "precision")


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
    #: on a rerun of the trial (its node was lost, a retry), the state it last reported as a
    #: checkpoint (`report(metrics, checkpoint=dir)`); None on a first run.
    restore_dir: Path | None = None


class Trainer(Protocol):
    def __call__(self, ctx: TrialContext, report: Report) -> Metrics: ...


@dataclass(frozen=True)
class FinishedTrial:
    """One finished trial as a hook sees it: its configuration and its final metrics."""

    trial_id: str
    config: Mapping[str, Any]
    metrics: Mapping[str, float | str]


@dataclass(frozen=True)
class Prepared:
    """What the trials run with once `prepare` is done. It may settle them: the `elm` space takes its
    FFN widths from the super-network `prepare` trained, the trainer its checkpoint path. The study
    file keeps what the user wrote, so a resumed study prepares again (a cache hit) and gets the same
    space back."""

    space: SearchSpace
    trainer_options: Mapping[str, Any]
    #: what `prepare` trained or found (`lmnas supernet train` prints it).
    checkpoint: str | None = None


@dataclass(frozen=True)
class StageContext:
    """What a hook gets: the study's settings, a way to run heavy work as a task, and the trials."""

    study: str
    seed: int
    #: the trainer options (after `prepare`, the ones it settled).
    options: Mapping[str, Any]
    space: SearchSpace
    #: the study directory; hooks write their results under it.
    directory: Path
    log: Log
    run_task: RunTask
    #: finished trials, in the order they ended.
    trials: tuple[FinishedTrial, ...] = ()
    #: the Pareto front, well spread first: the best on the first objective, then each time the
    #: member farthest from those already taken (an epsilon-net order), so `front[:k]` covers it.
    front: tuple[FinishedTrial, ...] = ()
    #: trials the user named (`lmnas distill --trials`): a `finish` works on these instead.
    chosen: tuple[FinishedTrial, ...] = ()


def run_in_process(log: Log = print) -> RunTask:
    """A `run_task` that runs the task here: for tests, scripts and debugging a hook."""
    return lambda fn, args, what: fn(*args, log)


def declared_metrics(module: Any, options: Any, space: SearchSpace) -> frozenset[str] | None:
    """The metrics a trainer module declares for its built `options` on `space` (None when it declares none)."""
    declared: DeclaredMetrics | None = getattr(module, "METRICS", None)
    if declared is None:
        return None
    return frozenset(declared(options, space) if callable(declared) else declared)


def space_metrics(space: SearchSpace) -> tuple[str, ...]:
    """The metrics a space computes without training (`SearchSpace.metrics`), which trainers often report too."""
    return tuple(space.metrics(space.smallest()))


def collect_reports() -> tuple[list[dict[str, float]], Report]:
    """A `report` callable that just records (checkpoints are left where they are): for tests and the command line."""
    seen: list[dict[str, float]] = []

    def report(metrics: Metrics, checkpoint: Path | None = None) -> None:
        seen.append(dict(metrics))

    return seen, report
