"""The super-network stage and its trainers on a tiny BERT and a tiny csv task: the checkpoint is
cached by its config (a second call does not train), `weight_sharing` loads it once per process
and reports through the trainer contract, `standard_nas` reports every epoch."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from search_spaces.pruning import SmallSpace
from search_spaces.synthetic import SyntheticSpace
from tests.unit.tiny_task import save_tiny_task
from tests.unit.tiny_teacher import make_tiny_teacher
from trainers import standard_nas, weight_sharing
from trainers.contract import TrainerError, TrialContext, collect_reports
from trainers.supernet import cache, train
from trainers.supernet.cache import SupernetConfig, checkpoint_dir, load_supernet
from trainers.supernet.families import space_for


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny")
    return make_tiny_teacher(root / "model"), save_tiny_task(root / "task")


@pytest.fixture()
def space(assets: tuple[Path, Path]) -> SmallSpace:
    return space_for(SmallSpace, json.loads((assets[0] / "config.json").read_text()), num_labels=2)


def options(assets: tuple[Path, Path], cache_dir: Path, **extra: Any) -> dict[str, Any]:
    model, task = assets
    return {"model": str(model), "task": str(task), "max_length": 16, "batch_size": 8, "lr": 1e-3,
            "cache_dir": str(cache_dir), "device": "cpu", **extra}


def count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    calls: list[Any] = []
    original = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_second_call_uses_the_cached_checkpoint(assets: tuple[Path, Path], space: SmallSpace, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    trained = count_calls(monkeypatch, train, "train_supernet")
    config = SupernetConfig(**options(assets, tmp_path, num_random=1, log_every=1))
    lines: list[str] = []
    first = train.ensure_supernet(config, space, seed=0, log=lines.append)
    second = train.ensure_supernet(config, space, seed=0, log=lines.append)
    assert first == second and len(trained) == 1
    assert any("step 3/3" in line for line in lines) and "cached" in lines[-1]
    info = json.loads((first / cache.TRAIN_INFO).read_text())
    assert info["strategy"] == "full" and info["steps"] == 3 and len(info["trace"]) == 3
    # Each logged step has the mean loss and each sub-network role's own.
    assert set(info["trace"][0]) == {"step", "epoch", "loss", "largest", "smallest", "random_0"}
    assert "(largest " in lines[1] and ", smallest " in lines[1]
    # The stored super-network is the trained one: it differs from the pre-trained weights.
    loaded = load_supernet(first)
    assert loaded.shape == space.shape
    assert not torch.equal(loaded.layers[0].ffn.up.weight, train.SuperNetwork.from_pretrained(assets[0], 2).layers[0].ffn.up.weight)


def test_the_key_follows_training_settings_only(assets: tuple[Path, Path], space: SmallSpace, tmp_path: Path) -> None:
    config = SupernetConfig(**options(assets, tmp_path))
    key = checkpoint_dir(config, space, 0).name
    assert checkpoint_dir(replace(config, device="cuda", log_every=3), space, 0).name == key
    assert checkpoint_dir(replace(config, cache_dir=str(tmp_path / "elsewhere")), space, 0).name == key
    # `standard` takes no temperature: changing it does not retrain.
    standard = replace(config, strategy="standard")
    assert checkpoint_dir(replace(standard, temperature=3.0), space, 0) == checkpoint_dir(standard, space, 0)
    for changed in (replace(config, lr=1e-4), replace(config, strategy="sandwich"), replace(config, temperature=3.0),
                    replace(config, max_examples=10)):
        assert checkpoint_dir(changed, space, 0).name != key
    assert checkpoint_dir(config, space, 1).name != key


def test_a_space_that_does_not_fit_the_model_is_refused(assets: tuple[Path, Path], tmp_path: Path) -> None:
    config = SupernetConfig(**options(assets, tmp_path))
    with pytest.raises(TrainerError, match=r"does not fit model .* num_layers=6 \(model: 2\).*search_space.options"):
        train.ensure_supernet(config, SmallSpace(), seed=0)


def test_weight_sharing_loads_the_super_network_once_for_two_trials(assets: tuple[Path, Path], space: SmallSpace,
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = count_calls(monkeypatch, weight_sharing, "load_supernet")
    opts = options(assets, tmp_path, strategy="sandwich", latency_seq_len=16, latency_repeats=2)
    results = []
    for i, arch in enumerate([space.largest(), {"num_layers": 1, "num_heads": 2, "num_units": 8}]):
        reports, report = collect_reports()
        final = weight_sharing.train(TrialContext(f"t{i}", arch, space, opts), report)
        assert reports == [final]
        results.append(final)
    assert len(loads) == 1
    for final, arch in zip(results, [space.largest(), {"num_layers": 1, "num_heads": 2, "num_units": 8}]):
        assert {"accuracy", "loss", "params", "params_non_embedding", "flops", "latency_ms", "latency_cv"} <= set(final)
        assert 0.0 <= final["accuracy"] <= 1.0 and isinstance(final["hardware"], str)
        assert final["params"] == space.metrics(arch)["params"]
    assert results[1]["params"] < results[0]["params"] and results[1]["flops"] < results[0]["flops"]


def test_weight_sharing_refuses_other_spaces_and_long_sequences(assets: tuple[Path, Path], space: SmallSpace, tmp_path: Path) -> None:
    _, report = collect_reports()
    synthetic = SyntheticSpace()
    with pytest.raises(TrainerError, match="needs a pruning search space"):
        weight_sharing.train(TrialContext("t", synthetic.sample(np.random.default_rng(0)), synthetic,
                                          options(assets, tmp_path)), report)
    with pytest.raises(TrainerError, match="'latency_seq_len' must be <= the model's 64 usable positions"):
        weight_sharing.train(TrialContext("t", space.largest(), space, options(assets, tmp_path)), report)


def test_standard_nas_reports_every_epoch(assets: tuple[Path, Path], space: SmallSpace, tmp_path: Path) -> None:
    reports, report = collect_reports()
    arch = {"num_layers": 1, "num_heads": 2, "num_units": 8}
    opts = options(assets, tmp_path, epochs=3, latency_seq_len=16, latency_repeats=2)
    del opts["cache_dir"]
    final = standard_nas.train(TrialContext("t", arch, space, opts), report)
    assert [r["epoch"] for r in reports] == [1.0, 2.0, 3.0]
    assert final == reports[-1]
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]
    assert all(r["params"] == space.metrics(arch)["params"] for r in reports)
