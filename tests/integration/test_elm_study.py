"""An ELM study end to end through the command line on a local Ray head, on a tiny teacher and task:
the super-network stage (pre-train + fine-tune) as a Ray task, NSGA-II trials on the space read from
its checkpoint (block choices at their grown widths), the retraining stage with its table and export,
`lmnas calibrate` retraining candidates standalone; a resumed study rebuilds the same space from the
cached checkpoint and reruns an unfinished trial without training again."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import ray_env
from tests.unit.tiny_task import save_tiny_task
from tests.unit.tiny_teacher import SENTENCES, make_tiny_teacher

pytestmark = pytest.mark.integration


def lmnas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, env=ray_env(),
                          capture_output=True, text=True, timeout=600)


def tiny_elm_study(root: Path) -> dict[str, Any]:
    teacher, task = make_tiny_teacher(root / "teacher"), save_tiny_task(root / "task", rows=64)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20) + "\n")
    return {
        "name": "tiny-elm",
        "storage": str(root / "runs"),
        "search_space": {"name": "elm", "options": {"num_layers": 2, "hidden_size": 32, "num_heads": 4, "ffn_step": 8,
                                                    "max_params": 60000, "cap_metric": "params_non_embedding"}},
        "trainer": {"kind": "elm_subnet", "options": {
            "teacher": str(teacher), "corpus": str(corpus), "seq_len": 16, "corpus_blocks": 40, "eval_blocks": 8,
            "pretrain_epochs": 2, "pretrain_steps": 2, "pretrain_batch": 4, "growth_top_k": 4, "task": str(task),
            "max_length": 16, "train_examples": None, "eval_examples": None, "probe_steps": 30, "finetune_steps": 3,
            "finetune_batch": 8, "batch_size": 16, "final_distill_steps": 2, "final_finetune_steps": 2,
            "eval_tasks": [str(task)], "onnx": False, "cache_dir": str(root / "cache"), "device": "cpu"}},
        "objectives": [{"metric": "accuracy", "mode": "max"}, {"metric": "params", "mode": "min"}],
        "searcher": {"name": "nsga2", "options": {"population": 3, "generations": 2, "crossover_probability": 1.0,
                                                  "mutation_probability": 0.1}},
        "budget": {"num_trials": 6, "max_concurrent": 2},
    }


def test_elm_study_trains_searches_retrains_and_resumes(tmp_path: Path, ray_address: str) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_elm_study(tmp_path)))
    run = lmnas("run", str(path), "--address", ray_address, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "elm: pre-training" in run.stderr and "elm: fine-tuning every path" in run.stderr  # streamed from the task
    checkpoint = next((tmp_path / "cache" / "supernets").iterdir())
    directory = tmp_path / "runs" / "tiny-elm"
    trials = pd.read_parquet(directory / "trials.parquet")
    assert (trials["status"] == "completed").all() and len(trials) == 6
    assert {"accuracy", "agreement", "params", "params_non_embedding"} <= set(trials.columns)
    assert (trials["params_non_embedding"] <= 60000).all()
    final = pd.read_csv(directory / "elm_final.csv", dtype={"trial_id": str})  # an all-digit id is still an id
    best = trials.loc[trials["accuracy"].idxmax()]
    assert final["trial_id"].iloc[0] in set(trials.loc[trials["accuracy"] == best["accuracy"], "trial_id"])
    assert {"task", "accuracy", "teacher_accuracy", "params", "architecture"} <= set(final.columns)
    assert (directory / "export" / "model.safetensors").is_file() and (directory / "export" / "modeling_elm.py").is_file()
    # The trials searched the paper's space read from the checkpoint: block choices, each at its grown
    # width; the found model's head search started from all heads (the count can only fall).
    grown = json.loads((checkpoint / "elm.json").read_text())["ffn_widths"]
    assert any(w > 8 for row in grown for w in row)
    assert sorted(c for c in trials.columns if c.startswith("config.")) == ["config.block_0", "config.block_1"]
    kinds = ["bert", "bert_qv", "bert_kv", "mobile", "mobile_qv", "mobile_kv"]
    for i, layer in enumerate(final["architecture"].iloc[0].split()):
        kind, ffn, heads = layer.split("/")
        assert int(ffn) == grown[i][kinds.index(kind)] and 1 <= int(heads.removesuffix("h")) <= 4

    # The shared-weight ranking checked against standalone retraining of three candidates.
    calibration = lmnas("calibrate", str(directory), "--n", "3", "--address", ray_address, cwd=tmp_path)
    assert calibration.returncode == 0, calibration.stderr[-3000:]
    assert "retraining standalone" in calibration.stderr
    rows = pd.read_csv(directory / "calibration.csv", dtype={"trial_id": str})
    assert len(rows) == 3 and rows["standalone_accuracy"].between(0, 1).all() and rows["proxy_accuracy"].notna().all()

    # A crash left the last trial running: resume reruns it on the same space, without training.
    frame = pd.read_parquet(directory / "trials.parquet")
    frame.loc[frame.index[-1], "status"] = "running"
    frame.to_parquet(directory / "trials.parquet", index=False)
    resumed = lmnas("resume", str(directory), "--address", ray_address, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"using the cached super-network {checkpoint}" in resumed.stderr and "pre-training" not in resumed.stderr
    after = pd.read_parquet(directory / "trials.parquet")
    assert (after["status"] == "completed").all() and len(after) == 6


def test_supernet_train_prints_the_elm_checkpoint(tmp_path: Path, ray_address: str) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_elm_study(tmp_path)))
    done = lmnas("supernet", "train", str(path), "--address", ray_address, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = Path(done.stdout.strip().splitlines()[-1])
    assert (checkpoint / "elm.json").is_file() and checkpoint.parent == tmp_path / "cache" / "supernets"
