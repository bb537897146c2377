"""Studies survive their driver: killed at several moments, resumed with nothing lost or doubled;
trials that raise, kill their worker or hang are recorded and the study goes on."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import ray_env
from tests.integration.test_cli_run import lmnas

pytestmark = pytest.mark.integration


def write_study(tmp_path: Path, name: str, trainer: dict, budget: dict, searcher: str = "random") -> Path:
    study = {
        "name": name,
        "storage": str(tmp_path / "runs"),
        "search_space": {"name": "synthetic", "options": {"num_dims": 3, "grid": 21}},
        "trainer": {"kind": "synthetic", "options": trainer},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 11}],
        "searcher": {"name": searcher, "options": {}},
        "budget": budget,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def count_finished(directory: Path) -> int:
    try:
        trials = pd.read_parquet(directory / "trials.parquet")
    except (FileNotFoundError, OSError, ValueError):
        return 0
    return int(trials["status"].isin(["completed", "failed", "stopped"]).sum())


@pytest.mark.parametrize(("sig", "after", "searcher"),
                         [(signal.SIGKILL, 1, "random"), (signal.SIGKILL, 4, "random"), (signal.SIGINT, 2, "random"),
                          # Optuna's journal lives in the searcher state: a killed TPE study continues it.
                          (signal.SIGKILL, 3, "optuna_tpe")],
                         ids=["kill-early", "kill-late", "ctrl-c", "kill-optuna-tpe"])
def test_a_killed_study_resumes_without_losing_or_repeating_trials(
    tmp_path: Path, ray_address: str, sig: signal.Signals, after: int, searcher: str
) -> None:
    path = write_study(tmp_path, "resumable", {"steps": 3, "step_seconds": 0.4},
                       {"num_trials": 7, "max_concurrent": 2}, searcher)
    directory = tmp_path / "runs" / "resumable"
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--address", ray_address],
                              cwd=tmp_path, env=ray_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while count_finished(directory) < after and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert driver.poll() is None, "the study ended before it could be interrupted"
    os.killpg(driver.pid, sig)
    driver.wait(timeout=120)
    before = pd.read_parquet(directory / "trials.parquet")
    kept = before[before["status"] == "completed"].set_index("trial_id")
    assert len(before) < 7 or (before["status"] != "completed").any()

    resumed = lmnas("resume", str(directory), "--address", ray_address, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    trials = pd.read_parquet(directory / "trials.parquet")
    assert len(trials) == 7 and trials["trial_id"].is_unique
    assert (trials["status"] == "completed").all()
    # Trials finished before the kill are untouched (same metrics, one attempt).
    again = trials.set_index("trial_id").loc[kept.index]
    assert (again["f2"] == kept["f2"]).all() and (again["attempt"] == 1).all()
    # Reruns keep their id and configuration.
    rerun = before[before["status"] != "completed"].set_index("trial_id")
    assert set(rerun.index) <= set(trials["trial_id"])
    cols = [c for c in rerun.columns if c.startswith("config.")]
    pd.testing.assert_frame_equal(trials.set_index("trial_id").loc[rerun.index, cols], rerun[cols])
    state = json.loads((directory / "searcher_state.json").read_text())
    assert sorted(h[0] for h in state["history"]) == sorted(trials["trial_id"]) and not state["pending"]
    configs = {json.dumps(h[1], sort_keys=True) for h in state["history"]}
    assert len(configs) == 7  # no configuration evaluated twice
    if searcher.startswith("optuna_"):  # Optuna's study: every trial told once, nothing left running
        from orchestrator.objectives import Objective, Objectives
        from orchestrator.searchers.optuna_samplers import OptunaTPESearcher
        from search_spaces.synthetic import SyntheticSpace

        optuna_searcher = OptunaTPESearcher(SyntheticSpace(num_dims=3, grid=21),
                                            Objectives((Objective("f1", ref=1.1), Objective("f2", ref=11))))
        optuna_searcher.load_state_dict(state)
        handed = [t for t in optuna_searcher.optuna_trials() if "trial_id" in t.user_attrs]
        assert all(t.state.name in ("COMPLETE", "FAIL") for t in optuna_searcher.optuna_trials())
        told = {t.user_attrs["trial_id"]: t.values for t in handed if t.state.name == "COMPLETE"}
        assert sorted(told) == sorted(trials["trial_id"])
        assert all(told[r.trial_id] == [r.f1, r.f2] for r in trials.itertuples())

    done = lmnas("resume", str(directory), "--address", ray_address, cwd=tmp_path)
    assert done.returncode == 0 and "nothing to resume" in done.stderr


def test_a_study_at_a_uri_resumes_from_the_uri_on_another_machine(tmp_path: Path, ray_address: str) -> None:
    """The driver dies; `lmnas resume <URI>` runs where the first driver's mirror is not (another
    LMNAS_HOME): the URI alone carries the results, the searcher state and Tune's runs."""
    bucket = (tmp_path / "bucket").as_uri()
    path = write_study(tmp_path, "at-uri", {"steps": 3, "step_seconds": 0.4}, {"num_trials": 6, "max_concurrent": 2})
    path.write_text(path.read_text().replace(str(tmp_path / "runs"), bucket))
    stored = tmp_path / "bucket" / "at-uri"
    first = {**ray_env(), "LMNAS_HOME": str(tmp_path / "first-machine")}
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--address", ray_address],
                              cwd=tmp_path, env=first, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while count_finished(stored) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert driver.poll() is None, "the study ended before it could be interrupted"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=120)
    kept = pd.read_parquet(stored / "trials.parquet")
    kept = kept[kept["status"] == "completed"].set_index("trial_id")

    second = {**ray_env(), "LMNAS_HOME": str(tmp_path / "second-machine")}
    resumed = subprocess.run([sys.executable, "-m", "orchestrator.cli", "resume", f"{bucket}/at-uri", "--address",
                              ray_address], cwd=tmp_path, env=second, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{bucket}/at-uri" in resumed.stdout

    trials = pd.read_parquet(stored / "trials.parquet")  # what the URI holds, not a mirror
    assert len(trials) == 6 and trials["trial_id"].is_unique and (trials["status"] == "completed").all()
    assert (trials.set_index("trial_id").loc[kept.index, "f2"] == kept["f2"]).all()
    assert sorted(p.name for p in stored.glob("tune-*")) == ["tune-0", "tune-1"]
    assert (stored / "report.html").exists()


@pytest.mark.parametrize(
    ("mode", "budget", "expected"),
    [
        ("raise", {"max_retries": 1}, "InjectedFailure"),
        ("exit", {}, "died"),
        ("hang", {"trial_timeout_s": 4}, "TrialTimeout"),
    ],
)
def test_failing_trials_are_recorded_and_the_study_goes_on(
    tmp_path: Path, ray_address: str, mode: str, budget: dict, expected: str
) -> None:
    # x0 on a grid of 21: the values 0..4 lie below 0.22 and fail.
    path = write_study(tmp_path, f"fail-{mode}", {"fail_below_x0": 0.22, "failure_mode": mode},
                       {"num_trials": 8, "max_concurrent": 2, **budget})
    result = lmnas("run", str(path), "--address", ray_address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "runs" / f"fail-{mode}" / "trials.parquet")
    assert len(trials) == 8
    bad = trials["config.x0"] <= 4
    assert bad.any() and (~bad).any()  # the seeded search visits both regions
    assert (trials.loc[bad, "status"] == "failed").all() and (trials.loc[~bad, "status"] == "completed").all()
    assert trials.loc[bad, "error"].str.contains(expected, case=False).all(), trials.loc[bad, "error"].tolist()
    if budget.get("max_retries"):
        assert (trials.loc[bad, "attempt"] == 2).all()
