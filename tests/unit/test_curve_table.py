"""Standard NAS with epochs as the fidelity: `benchmarks/make_curve_table.py` on a tiny BERT and task
(one row per finished epoch; a rerun continues), and `benchmarks/search_efficiency.py --curves` on a
synthetic learning-curve table (MO-ASHA, the real scheduler plug-in, stops trials before epoch E)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmarks import make_curve_table, search_efficiency
from search_spaces.pruning import SmallSpace
from tests.unit.tiny_task import save_tiny_task
from tests.unit.tiny_teacher import make_tiny_teacher

EPOCHS = 3


def test_the_curve_table_has_a_row_per_epoch_and_a_rerun_continues(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model, task = make_tiny_teacher(tmp_path / "model"), save_tiny_task(tmp_path / "task")
    out = tmp_path / "curves.csv"
    argv = ["--model", str(model), "--task", str(task), "--n", "2", "--epochs", "2", "--unit-step", "8",
            "--max-length", "16", "--max-examples", "0", "--eval-examples", "0", "--batch-size", "8", "--out", str(out)]
    make_curve_table.main(argv)
    first = pd.read_csv(out)
    assert first["epoch"].tolist() == [1, 2, 1, 2]
    assert first.groupby(["num_layers", "num_heads", "num_units"]).ngroups == 2
    assert (first["seconds"] > 0).all() and first["params"].dtype.kind == "i"
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:-1]))  # cut off after 3 epochs
    make_curve_table.main(argv)
    again = pd.read_csv(out)
    assert len(again) == 4
    pd.testing.assert_series_equal(again.iloc[-1].drop("seconds"), first.iloc[-1].drop("seconds"))
    assert json.loads(out.with_suffix(".json").read_text())["run_seconds"] > 0
    with pytest.raises(SystemExit, match="made with other settings"):
        make_curve_table.main([*argv, "--lr", "1e-3"])


def synthetic_curves(path: Path) -> Path:
    """Every network of a small SMALL space; accuracy grows with the network and the epochs, and
    bigger networks cost parameters, so the front has several members."""
    space = SmallSpace(num_layers=3, num_heads=2, intermediate_size=4, hidden_size=8, vocab_size=10, max_position=16,
                       unit_step=2)
    rows, seen = [], set()
    for layers in range(4):
        for heads in (1, 2):
            for units in (2, 4):
                config = {"num_layers": layers, "num_heads": heads, "num_units": units}
                if space.network_key(config) in seen:
                    continue
                seen.add(space.network_key(config))
                size = layers * (heads + units) / 18
                for epoch in range(1, EPOCHS + 1):
                    rows.append({**config, "epoch": epoch, "accuracy": 0.55 + 0.3 * size * epoch / EPOCHS + 0.01 * heads,
                                 "params": space.metrics(config)["params"]})
    pd.DataFrame(rows).to_csv(path, index=False)
    path.with_suffix(".json").write_text(json.dumps({"space": {"name": "small", "options": space.options()}}))
    return path


def test_moasha_stops_trials_early_where_fifo_trains_every_epoch(tmp_path: Path) -> None:
    curves = search_efficiency.load_curves(synthetic_curves(tmp_path / "curves.csv"))
    assert curves.epochs == EPOCHS and len(curves.configs) == 13
    objs = search_efficiency.objectives(curves.final())
    fifo = search_efficiency.search_curves("random", "fifo", curves, objs, seed=0, budget=30, workers=2)
    moasha = search_efficiency.search_curves("random", "moasha", curves, objs, seed=0, budget=30, workers=2)
    assert set(fifo.steps_per_trial) == {EPOCHS}
    k = min(len(fifo.steps_per_trial), len(moasha.steps_per_trial))
    assert sum(moasha.steps_per_trial[:k]) < sum(fifo.steps_per_trial[:k])  # fewer epochs for as many trials
    assert moasha.trials > fifo.trials and moasha.spent and max(moasha.spent) <= 30 + 2


def test_the_curve_replay_writes_regret_against_epochs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, out = synthetic_curves(tmp_path / "curves.csv"), tmp_path / "replay.json"
    search_efficiency.main(["--curves", str(table), "--seeds", "3", "--runs", "random,random+moasha", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["budget_epochs"] == 13 * EPOCHS // 2 and set(result["runs"]) == {"random", "random+moasha"}
    regret = result["runs"]["random+moasha"]["regret"]
    assert len(regret) == 3 and all(0.0 <= r <= 1.0 for seed in regret for r in seed)
    assert set(result["tests"]) == {"random@5", "random@10", "random@19"}
    assert "Mann-Whitney" in capsys.readouterr().out
