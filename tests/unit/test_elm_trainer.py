"""ELM end to end on a tiny random teacher: pre-train a super-network, read its space, score candidates."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator import registry
from search_spaces.base import InvalidArchitectureError
from search_spaces.elm import ElmSpace
from search_spaces.synthetic import SyntheticSpace
from trainers.efficiency import count_params
from trainers.elm import trainer
from trainers.elm.checkpoint import load_checkpoint
from trainers.elm.pretrain import pretrain
from trainers.contract import TrainerError, TrialContext, collect_reports
from tests.unit.tiny_teacher import SENTENCES, make_tiny_teacher


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("elm")
    teacher = make_tiny_teacher(root / "teacher")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20) + "\n")
    options = {"teacher": str(teacher), "corpus": str(corpus), "seq_len": 16, "corpus_blocks": 40, "eval_blocks": 8,
               "num_layers": 2, "hidden_size": 32, "num_heads": 4, "epochs": 3, "steps_per_epoch": 4,
               "batch_size": 4, "growth_top_k": 4, "device": "cpu"}
    reports: list[dict[str, float]] = []
    folder = pretrain(options, root / "supernet", report=lambda m: reports.append(dict(m)))
    return {"checkpoint": str(folder), "corpus": str(corpus), "epochs": len(reports),
            "grown": sum(r.get("grown_blocks", 0) for r in reports)}


def trial_options(setup: dict[str, object], **extra: object) -> dict[str, object]:
    return {"checkpoint": str(setup["checkpoint"]), "corpus": setup["corpus"], "seq_len": 16, "eval_blocks": 8,
            "batch_size": 4, "device": "cpu", **extra}


def test_pretraining_grows_the_top_blocks_and_the_space_reads_the_widths(setup: dict[str, object]) -> None:
    assert setup["epochs"] == 3 and setup["grown"] == 8  # top 4 after epochs 1 and 2, none after the last
    ckpt = load_checkpoint(str(setup["checkpoint"]))
    space = ElmSpace(checkpoint=str(setup["checkpoint"]))
    assert space.ffn_widths == ckpt.supernet.widths
    assert sum(w - 8 for row in space.ffn_widths for w in row) == 8 * 8  # eight growths of one step each
    assert ElmSpace(**space.options()) == space


def test_elm_subnet_scores_a_candidate_on_the_shared_weights(setup: dict[str, object]) -> None:
    space = ElmSpace(checkpoint=str(setup["checkpoint"]))
    config = space.sample(np.random.default_rng(0))
    seen, report = collect_reports()
    module = registry.trainers.load("elm_subnet")
    assert module is trainer
    metrics = module.train(TrialContext("t0", config, space, trial_options(setup, latency_repeats=2,
                                                                               latency_seq_len=16)), report)
    assert seen == [dict(metrics)]
    assert 0.0 < float(metrics["distill_loss"]) and -1.0 <= float(metrics["agreement"]) <= 1.0
    model = load_checkpoint(str(setup["checkpoint"])).supernet.extract_sub_network(space.architecture(config))
    assert metrics["params"] == count_params(model).total
    assert float(metrics["latency_ms"]) > 0 and metrics["hardware"]
    # The same candidate scores the same (the super-network is shared, evaluation is deterministic).
    again = module.train(TrialContext("t1", config, space, trial_options(setup)), lambda m: None)
    assert again["distill_loss"] == pytest.approx(metrics["distill_loss"])


def test_the_pearson_and_classic_scores_differ(setup: dict[str, object]) -> None:
    space = ElmSpace(checkpoint=str(setup["checkpoint"]))
    config = space.smallest()
    scores = {kind: trainer.train(TrialContext("t", config, space, trial_options(setup, loss=kind)), lambda m: None)
              for kind in ("pearson", "classic")}
    assert scores["pearson"]["distill_loss"] != scores["classic"]["distill_loss"]
    assert scores["pearson"]["agreement"] == scores["classic"]["agreement"]


def test_bad_trials_are_refused_in_one_line(setup: dict[str, object], tmp_path: Path) -> None:
    space = ElmSpace(checkpoint=str(setup["checkpoint"]))
    config = space.smallest()
    with pytest.raises(TrainerError, match="option .checkpoint. is required"):
        trainer.train(TrialContext("t", config, space, {}), lambda m: None)
    with pytest.raises(TrainerError, match="needs the 'elm' search space"):
        trainer.train(TrialContext("t", {"x": 0.5}, SyntheticSpace(), trial_options(setup)), lambda m: None)
    with pytest.raises(TrainerError, match="is not an ELM super-network folder"):
        trainer.train(TrialContext("t", config, space, trial_options(setup, checkpoint=str(tmp_path))), lambda m: None)
    # A space wider than the super-network: its widest member does not fit the checkpoint's blocks.
    wide = ElmSpace(num_layers=2, hidden_size=32, num_heads=4, vocab_size=space.shape.vocab_size,
                    max_positions=space.shape.max_positions, ffn_step=8, ffn_widths=[[64] * 6] * 2)
    with pytest.raises(InvalidArchitectureError, match="exceeds the") as err:
        trainer.train(TrialContext("t", wide.largest(), wide, trial_options(setup)), lambda m: None)
    assert "\n" not in str(err.value)


def test_pretraining_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="option 'loss' must be one of"):
        pretrain({"loss": "cosine"}, tmp_path)
    with pytest.raises(ValueError, match="unknown option 'epoch'"):
        pretrain({"epoch": 2}, tmp_path)


def test_a_checkpoint_restores_the_same_super_network(setup: dict[str, object]) -> None:
    a, b = load_checkpoint(str(setup["checkpoint"])), load_checkpoint(str(setup["checkpoint"]))
    ids = torch.randint(1, 20, (2, 10))
    path = a.supernet.full_path("mobile_kv")
    torch.testing.assert_close(a.supernet(ids, arch=path).last_hidden_state, b.supernet(ids, arch=path).last_hidden_state)
