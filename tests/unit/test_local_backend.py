"""The in-process backend: trials in this process without Ray, the same results files, failures,
early stops, time limits, reuse of evaluated networks, and resume (the comparison with Ray is in
tests/integration/test_local_backend.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from orchestrator.errors import StudyError
from orchestrator.run import resume_study, run_study
from orchestrator.study import Study, parse_study


def synthetic_study(tmp_path: Path, trainer: dict[str, Any], budget: dict[str, Any], **extra: Any) -> Study:
    return parse_study({
        "name": "local", "storage": str(tmp_path / "runs"), "seed": 3,
        "search_space": {"name": "synthetic", "options": {"num_dims": 3, "grid": 11}},
        "trainer": {"kind": "synthetic", "options": trainer},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 11}],
        "budget": budget, **extra,
    })


def trials_of(study: Study) -> pd.DataFrame:
    return pd.read_parquet(study.directory / "trials.parquet")


def test_a_study_runs_in_process_without_ray(tmp_path: Path) -> None:
    study = synthetic_study(tmp_path, {"steps": 3, "fail_below_x0": 0.15}, {"num_trials": 10})
    outcome = run_study(study, progress=False, backend="local")
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
    trials = trials_of(study)
    assert len(trials) == 10 and trials["trial_id"].is_unique and outcome.unfinished == 0
    for name in ("reports.parquet", "searcher_state.json", "scheduler_state.json", "summary.json", "front.csv"):
        assert (study.directory / name).is_file(), name
    failed = trials[trials["status"] == "failed"]
    assert (failed["config.x0"] <= 1).all() and failed["error"].str.startswith("trainers.synthetic.InjectedFailure").all()
    ok = trials[trials["status"] == "completed"]
    assert (ok["num_reports"] == 3).all() and (ok["f1"] == ok["config.x0"] / 10).all()
    state = json.loads((study.directory / "searcher_state.json").read_text())
    assert [h[0] for h in state["history"]] == trials.sort_values("ended_at")["trial_id"].tolist()
    assert state["pending"] == {}


def test_scheduler_stops_trials_through_report(tmp_path: Path) -> None:
    moasha = {"name": "moasha", "options": {"fidelity": "step", "min_fidelity": 1, "max_fidelity": 9}}
    study = synthetic_study(tmp_path, {"steps": 9}, {"num_trials": 12}, scheduler=moasha)
    run_study(study, progress=False, backend="local")
    trials = trials_of(study)
    stopped = trials[trials["status"] == "stopped"]
    assert len(stopped) > 0 and (stopped["num_reports"] < 9).all()
    assert (trials.loc[trials["status"] == "completed", "num_reports"] == 9).all()
    assert json.loads((study.directory / "scheduler_state.json").read_text())


def test_retries_timeouts_and_reuse(tmp_path: Path) -> None:
    # x0 < 0.25 hangs: the trial limit stops it, after one retry, in this process (SIGALRM).
    study = synthetic_study(tmp_path, {"fail_below_x0": 0.25, "failure_mode": "hang"},
                            {"num_trials": 12, "trial_timeout_s": 0.3, "max_retries": 1},
                            search_space={"name": "synthetic", "options": {"num_dims": 2, "grid": 3}})
    run_study(study, progress=False, backend="local")
    trials = trials_of(study)
    hung = trials[trials["config.x0"] < 1]
    assert len(hung) and (hung["status"] == "failed").all() and (hung["attempt"] == 2).all()
    assert hung["error"].str.contains("TrialTimeout: the trial ran longer than budget.trial_timeout_s = 0.3 s").all()
    # Nine configurations, twelve trials: the repeats report the stored metrics of their network.
    reused = trials[trials["reused_from"].notna()] if "reused_from" in trials else trials.iloc[:0]
    assert len(reused) > 0 and (reused["status"] == "completed").all()
    first = trials.set_index("trial_id")
    assert (reused["f2"].to_numpy() == first.loc[reused["reused_from"], "f2"].to_numpy()).all()


def test_time_budget_leaves_the_running_trial_to_resume(tmp_path: Path) -> None:
    study = synthetic_study(tmp_path, {"steps": 4, "step_seconds": 0.3}, {"num_trials": 6, "time_budget_s": 2})
    outcome = run_study(study, progress=False, backend="local")
    before = trials_of(study)
    assert outcome.unfinished > 0 and (before["status"] == "interrupted").sum() == 1
    interrupted = before.loc[before["status"] == "interrupted"].iloc[0]
    # The time budget holds per invocation, as on Ray: a few resumes finish the study.
    for _ in range(8):
        if resume_study(study.directory, progress=False, backend="local").unfinished == 0:
            break
    trials = trials_of(study)
    assert len(trials) == 6 and trials["trial_id"].is_unique
    assert (trials["status"] == "completed").all()
    again = trials.set_index("trial_id").loc[interrupted["trial_id"]]
    assert again["config.x0"] == interrupted["config.x0"] and again["attempt"] == 2


def test_a_killed_local_run_resumes_without_losing_or_repeating_trials(tmp_path: Path) -> None:
    study = synthetic_study(tmp_path, {"steps": 3, "step_seconds": 0.3}, {"num_trials": 6})
    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(study.to_dict()))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", "--backend", "local", str(path)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        try:
            if (trials_of(study)["status"] == "completed").sum() >= 2:
                break
        except (FileNotFoundError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    assert driver.poll() is None, driver.stderr.read().decode()[-2000:] if driver.stderr else ""
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=60)
    before = trials_of(study)
    kept = before[before["status"] == "completed"].set_index("trial_id")

    resume_study(study.directory, progress=False, backend="local")
    trials = trials_of(study)
    assert len(trials) == 6 and trials["trial_id"].is_unique and (trials["status"] == "completed").all()
    again = trials.set_index("trial_id").loc[kept.index]
    assert (again["f2"] == kept["f2"]).all() and (again["attempt"] == 1).all()
    rerun = before[before["status"] != "completed"].set_index("trial_id")
    cols = [c for c in rerun.columns if c.startswith("config.")]
    pd.testing.assert_frame_equal(trials.set_index("trial_id").loc[rerun.index, cols], rerun[cols])
    state = json.loads((study.directory / "searcher_state.json").read_text())
    assert len(state["history"]) == 6 and state["pending"] == {}


def test_the_local_backend_refuses_an_address(tmp_path: Path) -> None:
    study = synthetic_study(tmp_path, {}, {"num_trials": 1})
    with pytest.raises(StudyError, match="local backend"):
        run_study(study, address="127.0.0.1:6379", progress=False, backend="local")


def test_a_retry_continues_from_the_last_checkpoint(tmp_path: Path) -> None:
    """As on Ray: a trial that reported checkpoints and failed is retried from the last one."""
    study = synthetic_study(tmp_path, {"steps": 4, "checkpoint": True, "fail_first_run_at_step": 3},
                            {"num_trials": 2, "max_retries": 1})
    run_study(study, progress=False, backend="local")
    trials = trials_of(study)
    assert (trials["status"] == "completed").all() and (trials["attempt"] == 2).all()
    reports = pd.read_parquet(study.directory / "reports.parquet")
    for _, rows in reports.groupby("trial_id"):
        assert {a: sorted(r["step"].astype(int)) for a, r in rows.groupby("attempt")} == {1: [1, 2], 2: [3, 4]}
