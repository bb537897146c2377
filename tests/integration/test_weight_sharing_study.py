"""A weight_sharing study end to end through the command line on a local Ray head: the
super-network stage runs as a Ray task and streams its progress, `lmnas run` reuses the cached
checkpoint, scores sub-networks and exports the knee of the front."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import ray_env
from tests.unit.tiny_task import tiny_weight_sharing_study

pytestmark = pytest.mark.integration


def lmnas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, env=ray_env(),
                          capture_output=True, text=True, timeout=600)


def test_supernet_stage_then_study_then_knee_export(tmp_path: Path, ray_address: str) -> None:
    study = {**tiny_weight_sharing_study(tmp_path), "budget": {"num_trials": 4, "max_concurrent": 2}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))

    stage = lmnas("supernet", "train", str(path), "--address", ray_address, cwd=tmp_path)
    assert stage.returncode == 0, stage.stderr[-3000:]
    checkpoint = Path(stage.stdout.strip().splitlines()[-1])
    assert (checkpoint / "model.safetensors").is_file() and checkpoint.parent == tmp_path / "cache"
    assert "supernet: step 3/3 epoch 1 loss" in stage.stderr  # streamed from the Ray task

    run = lmnas("run", str(path), "--address", ray_address, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"using the cached checkpoint {checkpoint}" in run.stderr and "supernet: step" not in run.stderr
    directory = tmp_path / "runs" / "tiny-ws"
    trials = pd.read_parquet(directory / "trials.parquet")
    assert (trials["status"] == "completed").all() and len(trials) == 4
    assert {"accuracy", "loss", "params", "flops", "latency_ms", "hardware"} <= set(trials.columns)
    selection = json.loads((directory / "export" / "selection.json").read_text())
    assert selection["trial_id"] in set(pd.read_csv(directory / "front.csv", dtype={"trial_id": str})["trial_id"])
    assert selection["supernet"] == str(checkpoint)

    # The proxy checked: 3 trials trained standalone as Ray tasks, ranked against their shared-weight scores.
    calibration = lmnas("calibrate", str(directory), "--n", "3", "--address", ray_address, cwd=tmp_path)
    assert calibration.returncode == 0, calibration.stderr[-3000:]
    assert "fine-tuning" in calibration.stderr and "calibrate: 3 trials (0 done before)" in calibration.stderr
    rows = pd.read_csv(directory / "calibration.csv", dtype={"trial_id": str})
    assert len(rows) == 3 and set(rows["trial_id"]) <= set(trials["trial_id"]) and rows["trial_id"].is_unique
    assert {"proxy_accuracy", "standalone_accuracy", "proxy_cost_s", "standalone_cost_s"} <= set(rows.columns)
    assert rows["standalone_accuracy"].between(0, 1).all() and (rows["standalone_cost_s"] > 0).all()
    by_id = trials.set_index("trial_id")["accuracy"]
    assert (rows["proxy_accuracy"].to_numpy() == by_id[rows["trial_id"]].to_numpy()).all()
    saved = json.loads((directory / "calibration.json").read_text())
    assert saved["n"] == 3 and sorted(saved["picked"]) == sorted(rows["trial_id"])
    # A rerun continues: nothing left to train.
    again = lmnas("calibrate", str(directory), "--n", "3", "--address", ray_address, cwd=tmp_path)
    assert again.returncode == 0 and "calibrate: 3 trials (3 done before)" in again.stderr, again.stderr[-2000:]
    assert "fine-tuning" not in again.stderr
    # The front timed again, alone: both values kept.
    remeasured = lmnas("remeasure", str(directory), "--address", ray_address, cwd=tmp_path)
    assert remeasured.returncode == 0, remeasured.stderr[-3000:]
    table = pd.read_csv(directory / "remeasured.csv", dtype={"trial_id": str})
    assert sorted(table["trial_id"]) == sorted(pd.read_csv(directory / "front.csv", dtype={"trial_id": str})["trial_id"])
    assert (table["latency_ms_remeasured"] > 0).all() and (table["latency_ms"] == by_latency(trials, table)).all()
    assert "latency_ms" in remeasured.stdout and "-> " in remeasured.stdout
    report = lmnas("report", str(directory), cwd=tmp_path)
    assert report.returncode == 0 and 'id="calibration"' in (directory / "report.html").read_text()


def test_supernet_train_refuses_a_study_without_a_super_network(tmp_path: Path) -> None:
    study = {**tiny_weight_sharing_study(tmp_path), "trainer": {"kind": "standard_nas"}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    done = lmnas("supernet", "train", str(path), cwd=tmp_path)
    assert done.returncode == 2 and "trainer.kind: 'standard_nas' has no stage before its trials" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def by_latency(trials: pd.DataFrame, table: pd.DataFrame) -> "pd.Series":
    return trials.set_index("trial_id")["latency_ms"][table["trial_id"]].reset_index(drop=True)


def test_calibrate_refuses_a_study_whose_trainer_cannot_train_standalone(tmp_path: Path) -> None:
    from tests.unit.study_results import study_directory

    s, _ = study_directory(tmp_path)  # a synthetic-trainer study with results
    done = lmnas("calibrate", str(s.directory), cwd=tmp_path)
    assert done.returncode == 2 and "'synthetic' has no" in done.stderr and "lmnas calibrate" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
