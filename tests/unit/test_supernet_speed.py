"""benchmarks/supernet_speed.py on tiny random models: it times what it claims, for every family."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.module_file import load_module
from trainers.supernet.families import families

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark() -> Any:
    return load_module(ROOT / "benchmarks" / "supernet_speed.py")


def test_every_supported_family_is_benchmarked() -> None:
    assert set(load_benchmark().FAMILY_CONFIGS) == set(families())


def test_the_pair_is_one_model_and_a_training_step_trains_each(tmp_path: Path) -> None:
    speed = load_benchmark()
    torch.set_num_threads(1)
    pair = speed.family_pair("mpnet", tmp_path, batch=4, seq=10, sizes=speed.TINY_SIZES)
    assert type(pair.hf).__name__ == "MPNetForSequenceClassification"
    assert pair.batch["attention_mask"][0, -1] == 0  # padded rows, as the trainers' batches have
    assert speed.same_logits(pair) < 1e-5
    before = [m.head.classifier.weight.clone() if m is pair.ours else m.classifier.out_proj.weight.clone()
              for m in (pair.ours, pair.hf)]
    speed.training_step(pair.ours, pair.batch, pair.labels)()
    speed.training_step(pair.hf, pair.batch, pair.labels)()
    assert not torch.equal(before[0], pair.ours.head.classifier.weight)
    assert not torch.equal(before[1], pair.hf.classifier.out_proj.weight)


def test_interleaved_timing_alternates_who_goes_first() -> None:
    speed = load_benchmark()
    calls: list[str] = []
    ticks = iter(range(1000))
    ours, hf = speed.interleaved(lambda: calls.append("ours"), lambda: calls.append("hf"), repeats=3, steps=2, warmup=1,
                                 clock=lambda: float(next(ticks)))
    assert calls == ["ours", "hf"] + ["ours", "hf", "hf", "ours"] + ["hf", "ours", "ours", "hf"] + ["ours", "hf", "hf", "ours"]
    assert ours == hf == [1.0] * 3  # the clock ticks once per read: one tick per call


def test_the_script_writes_every_family_s_ratios(tmp_path: Path) -> None:
    out = tmp_path / "speed.txt"
    assert load_benchmark().main(["--tiny", "--batch", "4", "--seq", "10", "--repeats", "1", "--steps", "1",
                                  "--warmup", "0", "--out", str(out)]) == 0
    text = out.read_text()
    for family in families():
        assert f"{family} (random)" in text
    assert text.count("ratio ours/HF") == 2 * len(families())
