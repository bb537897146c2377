"""A worker node dies while its trials run: the study still finishes, every trial recorded exactly
once, the lost trials rerun under their own ids (`budget.max_retries`), the searcher state intact.

The cluster is three Ray nodes on loopback in one process tree (`ray.cluster_utils.Cluster`): a head
that only drives and two one-CPU workers; the driver is `lmnas run --address`, as in a job.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.conftest import ray_env
from tests.integration.test_resume_and_failures import write_study

pytestmark = pytest.mark.integration

NUM_TRIALS = 8


def busy(directory: Path) -> int:
    """Trials running and past their first report."""
    try:
        trials = pd.read_parquet(directory / "trials.parquet")
    except (FileNotFoundError, OSError, ValueError):
        return 0
    return int(((trials["status"] == "running") & (trials["num_reports"] >= 1)).sum())


@pytest.mark.timeout(900)
def test_a_study_survives_the_loss_of_a_worker_node(tmp_path: Path, cluster_client: object) -> None:
    # cluster_client: this process has the clients' environment (the token), so the cluster it
    # starts and the driver authenticate alike.
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        path = write_study(tmp_path, "node-loss", {"steps": 6, "step_seconds": 1.0},
                           {"num_trials": NUM_TRIALS, "max_concurrent": 2, "max_retries": 2})
        directory = tmp_path / "runs" / "node-loss"
        driver = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "run", str(path), "--address", cluster.address, "--quiet"],
            cwd=tmp_path, env=ray_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Kill a worker node while both nodes are in the middle of a trial: two trials running, each
        # past its first report (one CPU per node, so they run on different nodes).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None and busy(directory) < 2:
            time.sleep(0.2)
        assert driver.poll() is None, driver.communicate()[0][-3000:]
        cluster.remove_node(workers[0], allow_graceful=False)
        output, _ = driver.communicate(timeout=600)
        assert driver.returncode == 0, output[-3000:]
    finally:
        cluster.shutdown()

    trials = pd.read_parquet(directory / "trials.parquet")
    assert len(trials) == NUM_TRIALS and trials["trial_id"].is_unique
    assert (trials["status"] == "completed").all(), trials[["trial_id", "status", "error"]]
    assert (trials["num_reports"] == 6).all()
    assert (trials["attempt"] > 1).any(), "no trial was rerun: the node was lost between trials"
    state = json.loads((directory / "searcher_state.json").read_text())
    assert len(state["history"]) == NUM_TRIALS and not state["pending"]
    assert sorted(h[0] for h in state["history"]) == sorted(trials["trial_id"])


def test_a_rerun_trial_continues_from_its_last_checkpoint(tmp_path: Path, ray_address: str) -> None:
    """A trial that reports checkpoints and fails once is rerun from its last checkpoint: its second run
    reports only the steps the first did not finish."""
    path = write_study(tmp_path, "resumed", {"steps": 4, "checkpoint": True, "fail_first_run_at_step": 3},
                       {"num_trials": 2, "max_concurrent": 2, "max_retries": 1})
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(path), "--address", ray_address,
                           "--quiet"], cwd=tmp_path, env=ray_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    directory = tmp_path / "runs" / "resumed"
    trials = pd.read_parquet(directory / "trials.parquet")
    assert (trials["status"] == "completed").all() and (trials["attempt"] == 2).all()
    reports = pd.read_parquet(directory / "reports.parquet")
    for _, rows in reports.groupby("trial_id"):
        steps = {a: sorted(r["step"].astype(int)) for a, r in rows.groupby("attempt")}
        assert steps == {1: [1, 2], 2: [3, 4]}, steps
