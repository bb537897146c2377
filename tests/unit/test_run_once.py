"""A run converts its inputs once: each plug-in is built once per invocation (the searcher after the
stage before the trials has settled the space, on a new study and on a resume alike), and the report
at the end is written from the study the run holds, not from the copy it saved."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import orchestrator.report
from orchestrator import cli, plugins, run
from orchestrator.run import resume_study, run_study
from orchestrator.study import Study, parse_study
from search_spaces.synthetic import SyntheticSpace
from trainers.contract import Prepared


def synthetic_study(tmp_path: Path, num_trials: int) -> dict[str, Any]:
    return {
        "name": "once", "storage": str(tmp_path / "runs"), "seed": 1,
        "search_space": {"name": "synthetic", "options": {"num_dims": 2, "grid": 5}},
        "trainer": {"kind": "synthetic", "options": {"steps": 1}},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 11}],
        "budget": {"num_trials": num_trials},
    }


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Every space and searcher the run builds (the searcher with the space it samples from)."""
    built: dict[str, list[Any]] = {"space": [], "searcher": []}

    def space(study: Study) -> Any:
        built["space"].append(plugins.build_space(study))
        return built["space"][-1]

    def searcher(study: Study, on: Any) -> Any:
        built["searcher"].append(on)
        return plugins.build_searcher(study, on)

    monkeypatch.setattr(run, "build_space", space)
    monkeypatch.setattr(run, "build_searcher", searcher)
    return built


def test_a_space_settled_before_the_trials_gets_the_only_searcher(tmp_path: Path, builds: dict[str, list[Any]],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    settled = SyntheticSpace(num_dims=2, grid=5)
    monkeypatch.setattr(run, "prepare_stage", lambda study, space, runner=None: Prepared(settled, study.trainer.options))
    study = parse_study(synthetic_study(tmp_path, 3))
    first = run_study(study, progress=False, backend="local")
    assert len(builds["space"]) == 1 and builds["searcher"] == [settled]
    assert len(first.trials) == 3 and first.unfinished == 0

    # a resume reads the saved copy: give it two more trials to run
    saved = study.directory / "study.yaml"
    saved.write_text(saved.read_text().replace("num_trials: 3", "num_trials: 5"))
    builds["space"].clear()
    builds["searcher"].clear()
    again = resume_study(study.directory, progress=False, backend="local")
    assert len(builds["space"]) == 1 and builds["searcher"] == [settled]
    assert len(again.trials) == 5 and again.trials["trial_id"].is_unique


def test_a_finished_study_resumes_to_nothing_without_a_searcher(tmp_path: Path, builds: dict[str, list[Any]],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    study = parse_study(synthetic_study(tmp_path, 2))
    run_study(study, progress=False, backend="local")
    builds["searcher"].clear()
    outcome = resume_study(study.directory, progress=False, backend="local")
    assert builds["searcher"] == [] and outcome.unfinished == 0 and len(outcome.trials) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_the_report_after_a_run_comes_from_the_run_not_the_saved_study(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(synthetic_study(tmp_path, 3)))

    def refuse(*args: Any) -> Any:
        raise AssertionError("the study or its trials were read back from the directory")

    monkeypatch.setattr(orchestrator.report, "load_saved_study", refuse)
    monkeypatch.setattr(orchestrator.report, "load_trials", refuse)
    assert cli.main(["run", str(path), "--backend", "local", "--quiet"]) == 0
    directory = tmp_path / "runs" / "once"
    assert (directory / "report.html").is_file() and (directory / "report.png").is_file()
    assert len(pd.read_parquet(directory / "trials.parquet")) == 3
