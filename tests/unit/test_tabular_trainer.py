"""The tabular trainer replays a hand-made table: low fidelity at step 1, full at step 2, refusals in one line."""
from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import registry
from search_spaces.base import InvalidArchitectureError
from search_spaces.pruning import SmallSpace
from trainers.options import build_options
from trainers.contract import TrainerError, TrialContext, collect_reports

TINY = dict(num_layers=2, num_heads=2, intermediate_size=64, hidden_size=32, vocab_size=120, max_position=40, type_vocab=2, num_labels=2)
SPACE = SmallSpace(**TINY, unit_step=32)


def hand_table() -> pd.DataFrame:
    """Every member of SPACE (3 x 2 x 2 = 12 rows) with made-up metrics that differ per row."""
    rows = []
    for i, (layers, heads, units) in enumerate(itertools.product(range(3), (1, 2), (32, 64))):
        rows.append({"num_layers": layers, "num_heads": heads, "num_units": units, "accuracy": 0.5 + i / 100,
                     "accuracy_low": 0.4 + i / 100, "params": 1000 + 10 * i})
    return pd.DataFrame(rows)


@pytest.fixture(params=["csv", "parquet"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    path = tmp_path / f"table.{request.param}"
    frame = hand_table()
    frame.to_csv(path, index=False) if request.param == "csv" else frame.to_parquet(path)
    return str(path)


def run(table: str, arch: dict, **options: object) -> tuple[list[dict], dict]:
    seen, report = collect_reports()
    final = registry.trainers.load("tabular").train(TrialContext("t0", arch, SPACE, {"table": table, **options}), report)
    return seen, dict(final)


def test_reports_the_low_row_then_the_full_row(table: str) -> None:
    # Row 7 of the product order: layers 1, heads 2, units 64.
    seen, final = run(table, {"num_layers": 1, "num_heads": 2, "num_units": 64})
    assert seen == [{"accuracy": pytest.approx(0.47), "params": 1070.0, "step": 1},
                    {"accuracy": pytest.approx(0.57), "params": 1070.0, "step": 2}]
    assert final == seen[-1]


def test_the_fidelity_metric_can_be_renamed(table: str) -> None:
    seen, _ = run(table, {"num_layers": 0, "num_heads": 1, "num_units": 32}, fidelity="epoch")
    assert [r["epoch"] for r in seen] == [1, 2] and seen[0]["accuracy"] == pytest.approx(0.40)


def test_a_configuration_missing_from_the_table_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    hand_table().iloc[:-1].to_csv(path, index=False)
    with pytest.raises(TrainerError, match=r"^configuration \{'num_layers': 2, 'num_heads': 2, 'num_units': 64\} is not in the table .* \(11 rows\)") as e:
        run(str(path), {"num_layers": 2, "num_heads": 2, "num_units": 64})
    assert "\n" not in str(e.value)


def test_a_configuration_outside_the_space_is_refused_before_the_lookup(table: str) -> None:
    with pytest.raises(InvalidArchitectureError, match="num_units=48"):
        run(table, {"num_layers": 1, "num_heads": 1, "num_units": 48})


def test_a_table_without_the_space_columns_names_them(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    hand_table().drop(columns=["num_heads"]).to_csv(path, index=False)
    with pytest.raises(TrainerError, match=r"lacks the columns \['num_heads'\] of the 'small' search space"):
        run(str(path), {"num_layers": 1, "num_heads": 1, "num_units": 32})


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="does not exist; make it with benchmarks/make_subnet_table.py"):
        run(str(tmp_path / "none.csv"), {"num_layers": 1, "num_heads": 1, "num_units": 32})


@pytest.mark.parametrize("options,message", [
    ({}, "option 'table' must name a .csv or .parquet file"),
    ({"table": "t.txt"}, "option 'table' must name a .csv or .parquet file"),
    ({"table": "t.csv", "step_seconds": -1.0}, "option 'step_seconds' must be >= 0"),
    ({"table": "t.csv", "fidelity": ""}, "option 'fidelity' must be a metric name"),
])
def test_bad_options_are_one_line(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_options(registry.trainers.load("tabular").OPTIONS, options)
