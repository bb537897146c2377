"""A tiny labelled text task (train / validation / test csv files) in the tiny teacher's vocabulary,
and a weight_sharing study over both."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tests.unit.tiny_teacher import SENTENCES, make_tiny_teacher


def save_tiny_task(directory: Path, rows: int = 48) -> Path:
    """Sentences labelled 1 when they mention "the" twice or more (learnable from tokens), else 0."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = [f"{SENTENCES[i % len(SENTENCES)]} {SENTENCES[(3 * i + 1) % len(SENTENCES)]}" for i in range(rows)]
    frame = pd.DataFrame({"text": texts, "label": [int(t.split().count("the") >= 3) for t in texts]})
    n = len(frame)
    for name, part in (("train", frame[: n // 2]), ("validation", frame[n // 2: 3 * n // 4]), ("test", frame[3 * n // 4:])):
        part.to_csv(directory / f"{name}.csv", index=False)
    return directory


def tiny_weight_sharing_study(root: Path, name: str = "tiny-ws") -> dict[str, Any]:
    """A weight_sharing study (as plain data) on the tiny teacher and task written under `root`."""
    model, task = make_tiny_teacher(root / "model"), save_tiny_task(root / "task")
    vocab = json.loads((model / "config.json").read_text())["vocab_size"]
    return {
        "name": name,
        "storage": str(root / "runs"),
        "search_space": {"name": "small", "options": {"num_layers": 2, "num_heads": 4, "intermediate_size": 64,
                                                      "hidden_size": 32, "vocab_size": vocab, "max_position": 64,
                                                      "num_labels": 2}},
        "trainer": {"kind": "weight_sharing", "options": {
            "model": str(model), "task": str(task), "max_length": 16, "batch_size": 8, "lr": 1e-3, "log_every": 1,
            "cache_dir": str(root / "cache"), "device": "cpu", "latency_seq_len": 16, "latency_repeats": 2}},
        "objectives": [{"metric": "accuracy", "mode": "max"}, {"metric": "params", "mode": "min"}],
    }
