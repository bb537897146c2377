"""Per-trial resources (fractions too) as Ray resources, trial actors named after the study, and the
hardware label of a measurement kept with the trial's results."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from orchestrator.ray_adapters import make_trainable, named_trainable, trainer_metrics, trial_resources
from orchestrator.results import COMPLETED, ResultsStore
from orchestrator.study import Resources
from search_spaces.synthetic import SyntheticSpace
from tests.unit.study_results import OBJS


@pytest.mark.parametrize("cpu,gpu", [(1.0, 0.0), (0.5, 0.25), (2.0, 1.0), (0.25, 0.5)])
def test_study_resources_become_the_trial_bundle(cpu: float, gpu: float, tmp_path: Path) -> None:
    trainable = make_trainable("trainers.synthetic", SyntheticSpace(num_dims=2), {}, 0, tmp_path)
    assert trial_resources(Resources(cpu, gpu)) == {"cpu": cpu, "gpu": gpu}
    bundles = named_trainable(trainable, "s1", Resources(cpu, gpu)).default_resource_request({}).bundles
    assert bundles == [{"CPU": cpu, **({"GPU": gpu} if gpu else {})}]


def test_trial_actors_are_named_after_the_study(tmp_path: Path) -> None:
    trainable = make_trainable("trainers.synthetic", SyntheticSpace(num_dims=2), {}, 0, tmp_path)
    cls = named_trainable(trainable, "my-study", Resources())
    assert cls.__name__ == cls.__qualname__ == "lmnas:my-study"


def test_hardware_label_reaches_trials_parquet(tmp_path: Path) -> None:
    result = {"acc": 0.9, "params": 10, "hardware": "NVIDIA H100 80GB HBM3", "training_iteration": 1, "done": False}
    metrics = trainer_metrics(result)
    assert metrics == {"acc": 0.9, "params": 10.0, "hardware": "NVIDIA H100 80GB HBM3"}
    store = ResultsStore(tmp_path, OBJS, flush_interval_s=0)
    store.trial_started("t0", {"x": 1})
    store.trial_reported("t0", metrics)
    store.trial_finished("t0", COMPLETED, metrics)
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    assert trials.loc[0, "hardware"] == "NVIDIA H100 80GB HBM3"
