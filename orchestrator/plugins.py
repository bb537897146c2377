"""Build a study's plug-ins (space, trainer options, searcher, scheduler) from its spec.

Every failure a plug-in raises for its options becomes a `StudyError` naming the field.
"""
from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any, Callable, Mapping, TypeVar

from orchestrator import registry
from orchestrator.errors import StudyError
from orchestrator.schedulers.base import Scheduler
from orchestrator.searchers.base import Searcher
from search_spaces.base import SearchSpace
from trainers.contract import TrainerError, declared_metrics, space_metrics
from trainers.options import build_options
from trainers.sources import check_sources

T = TypeVar("T")


def construct(factory: Callable[..., T], options: Mapping[str, Any], where: str, *args: Any) -> T:
    """`factory(*args, **options)`, with unknown options and refused values as one-line StudyErrors."""
    params = inspect.signature(factory).parameters
    allowed = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)][len(args):]
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in options if k not in allowed]
        if unknown:
            allowed_text = ", ".join(allowed) if allowed else "none"
            raise StudyError(f"{where}.{unknown[0]}", f"unknown option; allowed options are {allowed_text}")
    try:
        return factory(*args, **options)
    except (ValueError, TypeError) as e:
        raise StudyError(where, str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def build_space(study: Any) -> SearchSpace:
    cls = registry.search_spaces.load(study.search_space.name, "search_space.name")
    return construct(cls, study.search_space.options, "search_space.options")


def trainer_module(study: Any) -> ModuleType:
    return registry.trainers.load(study.trainer.name, "trainer.kind")


def check_trainer_options(study: Any) -> Any:
    """The trainer's built options."""
    module = trainer_module(study)
    try:
        options = build_options(module.OPTIONS, study.trainer.options)
        check_sources(options)  # local models and data: exist, with the columns they need
    except (ValueError, TypeError, TrainerError) as e:
        raise StudyError("trainer.options", str(e)) from None
    return options


def check_trainer(study: Any, space: SearchSpace) -> None:
    """The trainer's options, and every objective and constraint names a metric the trainer reports (a
    constraint may also name one the space computes), so a study fails here, before Ray starts."""
    options = check_trainer_options(study)
    try:
        reported = declared_metrics(trainer_module(study), options, space)
    except (TrainerError, ValueError) as e:
        raise StudyError("trainer.options", str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    if reported is None:
        return  # a trainer that declares nothing is checked when its trials report
    listing = ", ".join(sorted(reported))
    for o in study.objectives.items:
        if o.metric not in reported:
            raise StudyError("objectives", f"metric {o.metric!r} is not reported by trainer {study.trainer.name!r}; "
                             f"it reports {listing}")
    known = reported | set(space_metrics(space))
    for c in study.constraints:
        if c.metric not in known:
            raise StudyError("constraints", f"{c}: metric {c.metric!r} is neither reported by trainer "
                             f"{study.trainer.name!r} nor computed by the {space.name!r} space; it reports {listing}")


def build_searcher(study: Any, space: SearchSpace) -> Searcher:
    cls = registry.searchers.load(study.searcher.name, "searcher.name")
    searcher = construct(
        cls, study.searcher.options, "searcher.options", space, study.objectives, study.constraints, study.seed
    )
    searcher.workers = study.budget.max_concurrent
    return searcher


def build_scheduler(study: Any) -> Scheduler:
    cls = registry.schedulers.load(study.scheduler.name, "scheduler.name")
    return construct(cls, study.scheduler.options, "scheduler.options", study.objectives, study.seed)


def check_plugins(study: Any) -> None:
    """Everything `lmnas validate` checks beyond the file's shape."""
    for reg, spec, field in (
        (registry.search_spaces, study.search_space, "search_space.name"),
        (registry.trainers, study.trainer, "trainer.kind"),
        (registry.searchers, study.searcher, "searcher.name"),
        (registry.schedulers, study.scheduler, "scheduler.name"),
    ):
        reg.check(spec.name, field)
    space = build_space(study)
    check_trainer(study, space)
    searcher = build_searcher(study, space)
    close = getattr(searcher, "close", None)
    if callable(close):
        close()
    build_scheduler(study)
