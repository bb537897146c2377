"""One tiny setting per registered trainer for the trainer contract tests (tests/contracts/test_trainers.py):
a search space, options that keep a trial to seconds on the tiny teacher and task of tests/unit/, and
one option whose effect shows in the reports. Add a case when you register a trainer."""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from search_spaces.autodistill import AutoDistillSpace
from search_spaces.base import SearchSpace
from search_spaces.elm import ElmSpace
from search_spaces.pruning import SmallSpace
from search_spaces.synthetic import SyntheticSpace
from tests.unit.tiny_task import save_tiny_task, tiny_weight_sharing_study
from tests.unit.tiny_teacher import SENTENCES, make_tiny_teacher

Reports = list[dict[str, Any]]


@dataclass(frozen=True)
class Case:
    space: SearchSpace
    options: dict[str, Any]
    #: options changed from `options`, and a check that the trial's reports show the change.
    probe: dict[str, Any] = field(default_factory=dict)
    shows_probe: Callable[[Reports], bool] = lambda reports: True


def tiny_files(root: Path) -> dict[str, Path]:
    """The tiny teacher, a labelled task, a text corpus and a table, written once under `root`."""
    files = {"teacher": root / "teacher", "task": root / "task", "corpus": root / "corpus.txt",
             "table": root / "table.csv"}
    if not files["table"].is_file():
        make_tiny_teacher(files["teacher"])
        save_tiny_task(files["task"], rows=64)
        files["corpus"].write_text("\n".join(SENTENCES * 20) + "\n")
        rows = [{"num_layers": layers, "num_heads": heads, "num_units": units, "accuracy": 0.5 + i / 100,
                 "accuracy_low": 0.4 + i / 100, "params": 1000.0 + 10 * i}
                for i, (layers, heads, units) in enumerate(itertools.product(range(3), (1, 2), (32, 64)))]
        pd.DataFrame(rows).to_csv(files["table"], index=False)
    return files


def synthetic(root: Path) -> Case:
    return Case(SyntheticSpace(), {"steps": 2}, {"steps": 3, "problem": "dtlz2", "num_objectives": 3},
                lambda r: [m["step"] for m in r] == [1, 2, 3] and "f3" in r[-1])


def tabular(root: Path) -> Case:
    space = SmallSpace(num_layers=2, num_heads=2, intermediate_size=64, hidden_size=32, vocab_size=120,
                       max_position=40, num_labels=2, unit_step=32)
    return Case(space, {"table": str(tiny_files(root)["table"])}, {"fidelity": "epoch"},
                lambda r: [m["epoch"] for m in r] == [1, 2] and r[0]["accuracy"] < r[1]["accuracy"])


def weight_sharing(root: Path) -> Case:
    study = tiny_weight_sharing_study(root / "ws")
    # 12 validation rows: an accuracy on a subsample of 4 is a multiple of 1/4.
    return Case(SmallSpace(**study["search_space"]["options"]), study["trainer"]["options"], {"eval_examples": 4},
                lambda r: (r[-1]["accuracy"] * 4).is_integer())


def standard_nas(root: Path) -> Case:
    study = tiny_weight_sharing_study(root / "ws")
    options = {k: v for k, v in study["trainer"]["options"].items() if k not in ("cache_dir", "log_every")}
    return Case(SmallSpace(**study["search_space"]["options"]), {**options, "epochs": 1}, {"epochs": 2},
                lambda r: [m["epoch"] for m in r] == [1, 2])


def flash_distill(root: Path) -> Case:
    files = tiny_files(root)
    vocab = json.loads((files["teacher"] / "config.json").read_text())["vocab_size"]
    space = AutoDistillSpace(hidden_size=[16, 24], bottleneck_size=[16], num_heads=[2], intermediate_size=[24],
                             num_ffn=[1], num_blocks=2, vocab_size=vocab, max_positions=64)
    options = dict(teacher=str(files["teacher"]), corpus=str(files["corpus"]), task=str(files["task"]), seq_len=12,
                   corpus_blocks=20, eval_blocks=4, steps_per_block=1, pretrain_steps=1, warmup_steps=0, batch_size=4,
                   task_max_length=12, finetune_steps=2, finetune_batch_size=4, task_train_examples=16,
                   task_eval_examples=8, latency_seq_len=12, latency_repeats=1, device="cpu", teacher_cache=False,
                   regular_students=1, regular_step_factor=1.0, regular_tasks=[str(files["task"])],
                   regular_finetune_steps=2, regular_train_examples=16)
    # No task: no probe accuracy, and the stage count is the distillation's alone.
    return Case(space, options, {"task": None}, lambda r: "accuracy" not in r[-1] and r[-1]["stage"] == 3)


def elm_subnet(root: Path) -> Case:
    files = tiny_files(root)
    space = ElmSpace(num_layers=2, hidden_size=32, num_heads=4, ffn_step=8, max_params=60_000,
                     cap_metric="params_non_embedding")
    options = {"teacher": str(files["teacher"]), "corpus": str(files["corpus"]), "seq_len": 16, "corpus_blocks": 40,
               "eval_blocks": 8, "pretrain_epochs": 2, "pretrain_steps": 2, "pretrain_batch": 4, "growth_top_k": 4,
               "task": str(files["task"]), "max_length": 16, "train_examples": None, "eval_examples": None,
               "probe_steps": 30, "finetune_steps": 3, "finetune_batch": 8, "batch_size": 16,
               "final_distill_steps": 2, "final_finetune_steps": 2, "eval_tasks": [str(files["task"])], "onnx": False,
               "cache_dir": str(root / "elm-cache"), "device": "cpu"}
    return Case(space, options, {"latency_repeats": 2, "latency_seq_len": 16},
                lambda r: float(r[-1]["latency_ms"]) > 0 and "hardware" in r[-1])


CASES: dict[str, Callable[[Path], Case]] = {
    "synthetic": synthetic, "tabular": tabular, "weight_sharing": weight_sharing, "standard_nas": standard_nas,
    "flash_distill": flash_distill, "elm_subnet": elm_subnet,
}
