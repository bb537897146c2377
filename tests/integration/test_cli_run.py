"""End to end through the command line, on a local Ray head, with the synthetic trainer."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import ray_env

pytestmark = pytest.mark.integration

STUDY = {
    "name": "e2e",
    "seed": 1,
    "search_space": {"name": "synthetic", "options": {"num_dims": 4, "grid": 11}},
    "trainer": {"kind": "synthetic", "options": {"problem": "zdt1", "steps": 3, "fail_below_x0": 0.15}},
    "objectives": [{"metric": "f1", "mode": "min", "ref": 1.1}, {"metric": "f2", "mode": "min", "ref": 11}],
    "searcher": {"name": "random"},
    "scheduler": {"name": "fifo"},
    "budget": {"num_trials": 10, "max_concurrent": 2},
    "resources": {"cpu": 1},
}


def lmnas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, env=ray_env(),
                          capture_output=True, text=True, timeout=600)


def test_run_status_report_through_the_cli(tmp_path: Path, ray_address: str) -> None:
    study = {**STUDY, "storage": str(tmp_path / "runs")}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))

    done = lmnas("run", str(path), "--address", ray_address, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Pareto front" in done.stdout and "report:" in done.stdout
    directory = tmp_path / "runs" / "e2e"

    trials = pd.read_parquet(directory / "trials.parquet")
    assert len(trials) == 10 and trials["trial_id"].is_unique
    failed = trials[trials["status"] == "failed"]
    # x0 is on a grid of 11 values, 0 and 1 of which lie below 0.15: the failure region.
    assert (failed["config.x0"] <= 1).all() and (trials.loc[trials["config.x0"] <= 1, "status"] == "failed").all()
    assert failed["error"].str.contains("InjectedFailure").all()
    ok = trials[trials["status"] == "completed"]
    assert len(ok) + len(failed) == 10 and len(ok) > 0
    assert (ok["f1"] == ok["config.x0"] / 10).all()
    assert (ok["num_reports"] == 3).all()

    reports = pd.read_parquet(directory / "reports.parquet")
    assert len(reports[reports["trial_id"].isin(ok["trial_id"])]) == 3 * len(ok)

    saved = yaml.safe_load((directory / "study.yaml").read_text())
    assert saved["name"] == "e2e" and saved["budget"]["num_trials"] == 10
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["counts"]["completed"] == len(ok) and summary["hypervolume"] > 0
    front = pd.read_csv(directory / "front.csv", dtype={"trial_id": str})
    assert set(front["trial_id"]) <= set(ok["trial_id"])
    html = (directory / "report.html").read_text()
    assert html.count("<circle") == len(ok) and "InjectedFailure" in html
    assert (directory / "report.png").read_bytes()[:4] == b"\x89PNG"
    state = json.loads((directory / "searcher_state.json").read_text())
    assert len(state["history"]) == 10 and not state["pending"]

    status = lmnas("status", str(directory), cwd=tmp_path)
    assert status.returncode == 0 and f"{len(ok)} completed" in status.stdout

    again = lmnas("run", str(path), "--address", ray_address, cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_a_trial_no_machine_can_hold_fails_before_any_trial(tmp_path: Path) -> None:
    """Embedded on this CPU machine, a trial asking for a GPU is one line and exit 2, not a study that
    waits forever for a node that will never come."""
    study = {**STUDY, "storage": str(tmp_path / "runs"), "resources": {"cpu": 1, "gpu": 1}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    done = lmnas("run", str(path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("lmnas: error")]
    assert len(errors) == 1 and "resources: a trial asks for 1 CPUs and 1 GPUs" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs" / "e2e" / "trials.parquet").exists() or \
        pd.read_parquet(tmp_path / "runs" / "e2e" / "trials.parquet").empty


def test_a_network_evaluated_once_is_not_trained_again(tmp_path: Path, ray_address: str) -> None:
    """Four distinct points, ten trials: each point is trained once; a repeat reports the stored
    metrics at once (naming its source), and the searcher still sees ten observations."""
    study = {**STUDY, "storage": str(tmp_path / "runs"),
             "search_space": {"name": "synthetic", "options": {"num_dims": 2, "grid": 2}},
             "trainer": {"kind": "synthetic", "options": {"problem": "zdt1", "steps": 3}},
             "budget": {"num_trials": 10, "max_concurrent": 1}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    done = lmnas("run", str(path), "--address", ray_address, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "runs" / "e2e" / "trials.parquet").set_index("trial_id")
    assert len(trials) == 10 and (trials["status"] == "completed").all()
    config = trials[["config.x0", "config.x1"]].apply(tuple, axis=1)
    trained = trials[trials["reused_from"].isna()]
    assert len(trained) == config.nunique() and config[trained.index].is_unique
    reused = trials[trials["reused_from"].notna()]
    assert len(reused) == 10 - config.nunique() > 0
    for tid, row in reused.iterrows():
        source = trials.loc[row["reused_from"]]
        assert config[tid] == config[row["reused_from"]] and pd.isna(source["reused_from"])
        assert (row["f1"], row["f2"]) == (source["f1"], source["f2"]) and row["num_reports"] == 1
    state = json.loads((tmp_path / "runs" / "e2e" / "searcher_state.json").read_text())
    assert len(state["history"]) == 10
