"""The trainer contract (trainers/contract.py), over every registered trainer at tiny sizes: typed options
that refuse unknown keys, a final report with exactly the metrics it declares, options that change what
it reports, and hooks that run with the context a study gives them (tasks run in this process)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from orchestrator import registry
from tests.contracts.trainer_cases import CASES, Case
from trainers.contract import (FinishedTrial, Prepared, StageContext, TrialContext, collect_reports, declared_metrics,
                               run_in_process)
from trainers.options import build_options

TRAINERS = registry.trainers.names()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("trainers")


def context(case: Case, directory: Path, lines: list[str], **fields: Any) -> StageContext:
    return StageContext(study="contract", seed=0, options=case.options, space=case.space, directory=directory,
                        log=lines.append, run_task=run_in_process(lines.append), **fields)


#: what `prepare` settled, per trainer (it trains a super-network once per module).
_PREPARED: dict[str, Prepared] = {}


def prepared(name: str, case: Case, root: Path) -> Prepared:
    """The trainer's `prepare` on the case (the case as it is when the trainer has none)."""
    if name not in _PREPARED:
        prepare = getattr(registry.trainers.load(name), "prepare", None)
        lines: list[str] = []
        _PREPARED[name] = (prepare(context(case, root / name, lines)) if prepare is not None
                           else Prepared(case.space, case.options))
    return _PREPARED[name]


def run_trial(name: str, case: Case, root: Path, **options: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ready = prepared(name, case, root)
    space = ready.space
    reports, report = collect_reports()
    arch = space.smallest()
    final = registry.trainers.load(name).train(TrialContext("t0", arch, space, {**ready.trainer_options, **options},
                                                            0, root / name / "trials" / "t0"), report)
    return reports, dict(final)


def test_every_registered_trainer_has_a_case() -> None:
    assert sorted(CASES) == TRAINERS


@pytest.mark.parametrize("name", TRAINERS)
def test_options_are_a_frozen_dataclass_that_refuses_unknown_keys(name: str, root: Path) -> None:
    module = registry.trainers.load(name)
    assert dataclasses.is_dataclass(module.OPTIONS) and module.OPTIONS.__dataclass_params__.frozen
    with pytest.raises(ValueError, match="unknown option 'no_such_option'"):
        build_options(module.OPTIONS, {**CASES[name](root).options, "no_such_option": 1})


@pytest.mark.parametrize("name", TRAINERS)
def test_the_final_report_has_exactly_the_declared_metrics(name: str, root: Path) -> None:
    case = CASES[name](root)
    module = registry.trainers.load(name)
    ready = prepared(name, case, root)
    declared = declared_metrics(module, build_options(module.OPTIONS, ready.trainer_options), ready.space)
    assert declared, f"trainer {name!r} declares no METRICS"
    reports, final = run_trial(name, case, root)
    assert reports and reports[-1] == final  # the final metrics are the last report
    assert set(final) == declared, f"reported but not declared: {set(final) - declared}; declared but not " \
                                   f"reported: {declared - set(final)}"


@pytest.mark.parametrize("name", TRAINERS)
def test_an_option_changes_what_it_reports(name: str, root: Path) -> None:
    case = CASES[name](root)
    module = registry.trainers.load(name)
    ready = prepared(name, case, root)
    reports, final = run_trial(name, case, root, **case.probe)
    assert case.probe and case.shows_probe(reports), f"{name} ignored {case.probe}: {reports}"
    # The declaration follows the options too.
    changed = build_options(module.OPTIONS, {**ready.trainer_options, **case.probe})
    assert set(final) == declared_metrics(module, changed, ready.space)


@pytest.mark.parametrize("name", TRAINERS)
def test_hooks_run_with_a_study_context(name: str, root: Path) -> None:
    module = registry.trainers.load(name)
    hooks = [h for h in ("prepare", "finish", "export", "calibrate", "remeasure") if callable(getattr(module, h, None))]
    if not hooks:
        pytest.skip(f"{name} defines no hooks")
    case = CASES[name](root)
    ready = prepared(name, case, root)
    if "prepare" in hooks:
        again = prepared(name, case, root)
        assert isinstance(ready, Prepared) and ready.checkpoint and Path(ready.checkpoint).is_dir()
        assert again is ready and ready.space.is_valid(ready.space.smallest())
    _, final = run_trial(name, case, root)
    trial = FinishedTrial("t0", ready.space.smallest(), final)
    directory = root / name / "study"
    settled = dataclasses.replace(case, space=ready.space, options=dict(ready.trainer_options))
    lines: list[str] = []
    ctx = context(settled, directory, lines, trials=(trial,), front=(trial,))
    if "finish" in hooks:
        out = module.finish(ctx)
        assert out is not None and Path(out).is_file() and lines, f"{name}'s finish wrote nothing"
    if "export" in hooks:
        details = module.export(ctx, trial, directory / "export")
        assert any((directory / "export").iterdir()) and details
    if "calibrate" in hooks:  # standalone training reports the metrics its trial's proxy did
        standalone = module.calibrate(ctx, trial)
        numbers = {k for k, v in standalone.items() if isinstance(v, (int, float))}
        assert numbers and numbers <= set(final), f"{name}'s calibrate reported {sorted(standalone)}"
    if "remeasure" in hooks:  # the measured metrics again, under the names the trial reported them
        again = module.remeasure(ctx, trial)
        assert again and set(again) <= set(final), f"{name}'s remeasure reported {sorted(again)}"
