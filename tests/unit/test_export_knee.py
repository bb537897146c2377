"""Knee selection on hand-made fronts, and the export of a weight-sharing study's knee model as a
standard BERT that `transformers` loads with the super-network's logits."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from orchestrator.errors import ResultsError
from orchestrator.export import SELECTION_FILE, export_study, knee_index, knee_row
from orchestrator.plugins import build_space, trainer_module
from orchestrator.objectives import Objective, Objectives
from orchestrator.results import COMPLETED, STUDY_FILE, ResultsStore
from orchestrator.study import load_saved_study, parse_study
from tests.unit.tiny_task import tiny_weight_sharing_study
from trainers.options import build_options
from trainers.supernet.cache import SupernetConfig, load_supernet
from trainers.supernet.train import ensure_supernet


def test_the_knee_is_the_balanced_point() -> None:
    assert knee_index(np.array([[0.0, 10.0], [1.0, 1.0], [10.0, 0.0]])) == 1


def test_objectives_are_scaled_to_the_front_before_measuring() -> None:
    # In raw units the second axis dominates; scaled, (0.5, 0.01) is nearest the ideal (0, 0).
    assert knee_index(np.array([[0.0, 1000.0], [0.5, 10.0], [1.0, 0.0]])) == 1
    # The same front with the axes' units changed a million-fold picks the same member.
    assert knee_index(np.array([[0.0, 1e9], [0.5, 1e7], [1.0, 0.0]])) == 1
    assert knee_index(np.array([[0.0, 1.0], [0.9, 0.05], [1.0, 0.0]])) == 1
    assert knee_index(np.array([[0.0, 1.0], [0.75, 0.75], [1.0, 0.0]])) == 0  # ties: the first


def test_degenerate_fronts() -> None:
    assert knee_index(np.array([[3.0, 4.0]])) == 0
    assert knee_index(np.array([[1.0, 5.0], [1.0, 3.0], [1.0, 4.0]])) == 1  # a constant axis decides nothing
    with pytest.raises(ValueError, match="non-empty"):
        knee_index(np.zeros((0, 2)))


def test_knee_row_turns_maximised_objectives_around() -> None:
    objectives = Objectives((Objective("accuracy", "max"), Objective("params", "min")))
    front = pd.DataFrame({"trial_id": ["a", "b", "c"], "accuracy": [0.6, 0.84, 0.85], "params": [1e6, 5e6, 2e7]})
    assert knee_row(front, objectives)["trial_id"] == "b"
    # A member worse than its reference value (here: below chance) is not a knee candidate.
    with_ref = Objectives((Objective("accuracy", "max", ref=0.55), Objective("params", "min")))
    front = pd.DataFrame({"trial_id": ["tiny", "b"], "accuracy": [0.43, 0.9], "params": [1e3, 2e7]})
    assert knee_row(front, objectives)["trial_id"] == "tiny"  # a tie at distance 1: the first
    assert knee_row(front, with_ref)["trial_id"] == "b"
    assert knee_row(front.iloc[:1], with_ref)["trial_id"] == "tiny"  # none better: all are candidates
    with pytest.raises(ResultsError, match="no front to export"):
        knee_row(front.iloc[0:0], objectives)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished weight_sharing study on the tiny model: a cached super-network and three trials."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("study")
    study = parse_study(tiny_weight_sharing_study(root, "knee"))
    space = build_space(study)
    options = SupernetConfig.of(build_options(trainer_module(study).OPTIONS, study.trainer.options))
    ensure_supernet(options, space, study.seed, log=lambda line: None)
    directory = study.directory
    directory.mkdir(parents=True)
    (directory / STUDY_FILE).write_text(yaml.safe_dump(study.to_dict()))
    store = ResultsStore(directory, study.objectives)
    for trial, (layers, accuracy, params) in {"small": (0, 0.5, 1000), "knee": (1, 0.7, 3000), "big": (2, 0.72, 9000),
                                              "dominated": (1, 0.4, 9500)}.items():
        store.trial_started(trial, {"num_layers": layers, "num_heads": 2, "num_units": 8})
        store.trial_finished(trial, COMPLETED, {"accuracy": accuracy, "params": params})
    return directory


def test_export_writes_the_knee_as_a_standard_bert(study_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = export_study(study_dir)
    selection = json.loads((out / SELECTION_FILE).read_text())
    assert selection["trial_id"] == "knee" and selection["config"] == {"num_layers": 1, "num_heads": 2, "num_units": 8}
    assert selection["format"] == "BertForSequenceClassification"
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["the cat sat on the mat", "a dog ran"], padding=True, return_tensors="pt")
    supernet = load_supernet(selection["supernet"])
    supernet.set_sub_network(build_space(load_saved_study(study_dir)).architecture(selection["config"]))
    with torch.no_grad():
        expected = supernet(batch["input_ids"], batch["attention_mask"])
        torch.testing.assert_close(hf(**batch).logits, expected, atol=1e-5, rtol=0)


def test_export_of_a_chosen_trial_and_of_unknown_ones(study_dir: Path) -> None:
    out = export_study(study_dir, trial_id="big")
    assert json.loads((out / SELECTION_FILE).read_text())["rule"] == "chosen"
    with pytest.raises(ResultsError, match="no trial 'nope'"):
        export_study(study_dir, trial_id="nope")
