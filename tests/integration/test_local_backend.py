"""The two backends run the same plan: `lmnas run --backend local` and `lmnas run` (Ray) give the
same trials for the same seed, in the same order when trials do not overlap."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.integration.test_cli_run import lmnas

pytestmark = pytest.mark.integration

SYNTHETIC = Path(__file__).parents[2] / "studies" / "synthetic.yaml"


def run_both(tmp_path: Path, ray_address: str, changes: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study file with `changes`, run on each backend; each one's trials in the order they started."""
    study = yaml.safe_load(SYNTHETIC.read_text()) | changes
    out = []
    for backend in ("local", "ray"):
        path = tmp_path / f"{backend}.yaml"
        path.write_text(yaml.safe_dump({**study, "storage": str(tmp_path / backend)}))
        where = ["--backend", "local"] if backend == "local" else ["--address", ray_address]
        done = lmnas("run", str(path), *where, "--quiet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        trials = pd.read_parquet(tmp_path / backend / study["name"] / "trials.parquet")
        out.append(trials.sort_values("started_at", kind="stable").reset_index(drop=True))
    return out[0], out[1]


def outcome(trials: pd.DataFrame) -> pd.DataFrame:
    """What must agree: configurations, status and metrics (ids and times may differ)."""
    columns = [c for c in trials.columns if c.startswith("config.")] + ["status", "f1", "f2", "num_reports"]
    return trials[columns].reset_index(drop=True)


def test_local_and_ray_give_the_same_trials(tmp_path: Path, ray_address: str) -> None:
    # studies/synthetic.yaml as it is (random search, two trials at a time on Ray): the same set.
    local, ray = run_both(tmp_path, ray_address, {})
    assert len(local) == len(ray) == 24
    key = [c for c in local.columns if c.startswith("config.")]
    pd.testing.assert_frame_equal(outcome(local).sort_values(key).reset_index(drop=True),
                                  outcome(ray).sort_values(key).reset_index(drop=True))


def test_one_at_a_time_both_backends_give_identical_sequences(tmp_path: Path, ray_address: str) -> None:
    # A searcher that learns (MO-REA) with trials one at a time: every suggestion depends on the results
    # before it, so the sequences agree only if both backends feed the searcher the same way.
    changes = {"searcher": {"name": "morea", "options": {"population_size": 4, "sample_size": 2}},
               "budget": {"num_trials": 10, "max_concurrent": 1}}
    local, ray = run_both(tmp_path, ray_address, changes)
    assert len(local) == 10
    pd.testing.assert_frame_equal(outcome(local), outcome(ray))
