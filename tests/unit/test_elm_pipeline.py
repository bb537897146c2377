"""ELM Algorithm 2 on a tiny random teacher and a tiny task: the cached super-network stage (pre-train +
task fine-tune), task-accuracy scoring of candidates, the searched space from the checkpoint, the
retraining of the found model and its standalone export."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.module_file import load_module
from search_spaces.elm import ElmSpace
from tests.unit.tiny_task import save_tiny_task
from tests.unit.tiny_teacher import SENTENCES, make_tiny_teacher
from trainers.contract import FinishedTrial, TrainerError, TrialContext
from trainers.elm import stage, trainer
from trainers.elm.checkpoint import load_checkpoint
from trainers.elm.final import retrain_and_evaluate
from trainers.elm.hooks import best_candidate, searched_space
from trainers.elm.options import ElmSubnetOptions
from trainers.elm.task import ElmClassifier, fit_probe


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("elm-pipeline")
    teacher = make_tiny_teacher(root / "teacher")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20) + "\n")
    task = save_tiny_task(root / "task", rows=64)
    options = {"teacher": str(teacher), "corpus": str(corpus), "seq_len": 16, "corpus_blocks": 40, "eval_blocks": 8,
               "pretrain_epochs": 2, "pretrain_steps": 3, "pretrain_batch": 4, "growth_top_k": 4, "task": str(task),
               "max_length": 16, "train_examples": None, "eval_examples": None, "probe_steps": 50,
               "finetune_steps": 6, "finetune_batch": 8, "batch_size": 8, "final_distill_steps": 3,
               "final_finetune_steps": 4, "eval_tasks": [str(task)], "onnx": False, "cache_dir": str(root / "cache"),
               "device": "cpu"}
    space = ElmSpace(num_layers=2, hidden_size=32, num_heads=4, ffn_step=8, max_params=60_000,
                     cap_metric="params_non_embedding")
    lines: list[str] = []
    folder = stage.ensure_supernet(ElmSubnetOptions(**options), space, 0, lines.append)
    return {"root": root, "options": options, "space": space, "checkpoint": folder, "lines": lines}


def test_the_stage_pretrains_fine_tunes_and_is_cached(setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    folder = setup["checkpoint"]
    assert folder.parent.name == "supernets" and stage.is_complete(folder)
    assert any("teacher probe" in line for line in setup["lines"])
    assert any("fine-tuning every path" in line for line in setup["lines"])
    ckpt = load_checkpoint(folder)
    assert ckpt.head is not None and ckpt.head.out_features == 2 and ckpt.task is not None
    assert ckpt.supernet.widths != ((8,) * 6,) * 2  # PCA growth widened some blocks after epoch 1
    monkeypatch.setattr(stage, "pretrain", lambda *a, **k: pytest.fail("a cached super-network was trained again"))
    lines: list[str] = []
    assert stage.ensure_supernet(ElmSubnetOptions(**setup["options"]), setup["space"], 0, lines.append) == folder
    assert "cached" in lines[0]
    # Another loss kind is another super-network.
    other = ElmSubnetOptions(**{**setup["options"], "loss": "classic"})
    assert stage.checkpoint_dir(other, setup["space"], 0) != folder


def test_the_searched_space_has_the_checkpoint_widths_and_the_studys_cap(setup: dict[str, Any]) -> None:
    space = searched_space(setup["space"], str(setup["checkpoint"]))
    assert space.ffn_widths == load_checkpoint(setup["checkpoint"]).supernet.widths
    assert (space.max_params, space.cap_metric, space.head_counts) == (60_000, "params_non_embedding", (1, 2, 4))
    rng = np.random.default_rng(0)
    assert all(space.capped_size(space.sample(rng)) <= 60_000 for _ in range(20))
    # The same checkpoint gives the same space (what a resumed study relies on).
    assert searched_space(setup["space"], str(setup["checkpoint"])).options() == space.options()
    tight = ElmSpace(num_layers=2, hidden_size=32, num_heads=4, ffn_step=8, max_params=13_000,
                     cap_metric="params_non_embedding")
    with pytest.raises(TrainerError, match="does not fit the study's space"):
        searched_space(tight, str(setup["root"] / "teacher"))


def test_candidates_are_scored_by_task_accuracy_on_the_shared_weights(setup: dict[str, Any]) -> None:
    space = searched_space(setup["space"], str(setup["checkpoint"]))
    options = {**setup["options"], "checkpoint": str(setup["checkpoint"]), "latency_repeats": 2, "latency_seq_len": 16}
    config = space.largest()
    metrics = trainer.train(TrialContext("t0", config, space, options), lambda m: None)
    assert 0.0 <= float(metrics["accuracy"]) <= 1.0 and float(metrics["loss"]) > 0
    assert -1.0 <= float(metrics["agreement"]) <= 1.0
    assert metrics["params_non_embedding"] <= 60_000 and float(metrics["latency_ms"]) > 0
    # The score is the shared weights' and head's: the same by hand.
    ckpt = load_checkpoint(setup["checkpoint"])
    assert ckpt.head is not None
    split, _ = trainer.cached_split(ckpt.teacher, ckpt.task["task"], 16, None, 0, "cpu")  # type: ignore[index]
    classifier = ElmClassifier(ckpt.supernet, 2, ckpt.head).eval()
    logits = classifier.run(split.input_ids, split.attention_mask, space.architecture(config))[0]
    assert float(metrics["accuracy"]) == pytest.approx(float((logits.argmax(-1) == split.labels).float().mean()))


def test_the_best_candidate_is_the_most_accurate_finished_trial(setup: dict[str, Any]) -> None:
    space = searched_space(setup["space"], str(setup["checkpoint"]))
    configs = [space.smallest(), space.largest(), space.sample(np.random.default_rng(1))]
    trials = [FinishedTrial(f"t{i}", config, {"accuracy": acc, "params": float(i)})
              for i, (config, acc) in enumerate(zip(configs, (0.6, 0.8, 0.7)))]
    assert best_candidate(trials, space) == trials[1]
    # A tie on accuracy goes to the smaller model; a configuration outside the space is no candidate.
    smaller = FinishedTrial("t3", configs[2], {"accuracy": 0.8, "params": 0.5})
    assert best_candidate([*trials, smaller], space) == smaller
    assert best_candidate([FinishedTrial("x", {"nope": 1}, {"accuracy": 0.9})], space) is None
    assert best_candidate([], space) is None


def test_the_found_model_is_retrained_evaluated_and_exported(setup: dict[str, Any], tmp_path: Path) -> None:
    space = searched_space(setup["space"], str(setup["checkpoint"]))
    opts = ElmSubnetOptions(**{**setup["options"], "checkpoint": str(setup["checkpoint"])})
    arch = space.architecture(space.largest())
    lines: list[str] = []
    rows = retrain_and_evaluate(opts, str(setup["checkpoint"]), arch, str(tmp_path / "export"), 0, lines.append)
    assert [r["task"] for r in rows] == [setup["options"]["task"]]
    row = rows[0]
    assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["teacher_accuracy"] <= 1.0
    assert row["params_non_embedding"] <= 60_000 and any("after head search" in line for line in lines)
    # The export loads with its own torch-only file and agrees with the model's encoder layout.
    module = load_module(tmp_path / "export" / "modeling_elm.py", "modeling_elm_export")
    model = module.load(tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert [layer["kind"] for layer in config["layers"]] == [c.kind for c in arch.layers]
    ids = torch.randint(5, 20, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    assert model(ids, mask).shape == (3, 2)
    assert sum(p.numel() for p in model.encoder.parameters()) == row["params"]


def test_the_exported_loader_matches_the_training_model(setup: dict[str, Any], tmp_path: Path) -> None:
    from trainers.elm.export import export_elm

    ckpt = load_checkpoint(setup["checkpoint"])
    for kind in ("bert_qv", "mobile_kv", "mobile"):
        classifier = ElmClassifier(ckpt.supernet.extract_sub_network(ckpt.supernet.full_path(kind)), 2, ckpt.head).eval()
        out = export_elm(classifier, tmp_path / kind, ["a", "b"], onnx=kind == "mobile")
        module = load_module(out / "modeling_elm.py", f"m_{kind}")
        ids = torch.randint(5, 20, (2, 10))
        mask = torch.ones_like(ids)
        mask[1, 6:] = 0
        torch.testing.assert_close(module.load(out)(ids, mask), classifier(ids, mask))
        if kind == "mobile":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(out / "model.onnx"))
            (logits,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
            np.testing.assert_allclose(logits, classifier(ids, mask).detach().numpy(), atol=1e-4)


def test_the_teacher_probe_folds_standardisation_into_one_linear() -> None:
    torch.manual_seed(0)
    x = torch.randn(200, 5) * torch.tensor([1.0, 10.0, 0.1, 5.0, 1.0]) + 3.0
    labels = (x[:, 1] / 10 + x[:, 2] * 10 > 0.5).long()
    head = fit_probe(x, labels, 2, steps=300)
    assert float((head(x).argmax(-1) == labels).float().mean()) > 0.9


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="option 'head_eta' must be in"):
        ElmSubnetOptions(head_eta=1.5)
    with pytest.raises(ValueError, match="option 'eval_tasks' must be a list"):
        ElmSubnetOptions(eval_tasks="movie-reviews")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="option 'loss' must be one of"):
        ElmSubnetOptions(loss="mse")  # type: ignore[arg-type]


def test_calibrate_retrains_a_candidate_and_scores_it_on_the_proxys_split(setup: dict[str, Any],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from trainers.contract import StageContext, run_in_process
    from trainers.elm import final, hooks

    space = searched_space(setup["space"], str(setup["checkpoint"]))
    options = {**setup["options"], "checkpoint": str(setup["checkpoint"])}
    config = space.largest()
    proxy = trainer.train(TrialContext("t0", config, space, options), lambda m: None)
    tuned: list[ElmClassifier] = []
    real = final.tuned_copy
    monkeypatch.setattr(final, "tuned_copy", lambda *a: tuned.append(real(*a)[0]) or (tuned[-1], None))
    lines: list[str] = []
    ctx = StageContext(study="elm", seed=0, options=options, space=space, directory=setup["root"] / "study",
                       log=lines.append, run_task=run_in_process(lines.append))
    standalone = hooks.calibrate(ctx, FinishedTrial("t0", config, proxy))
    assert set(standalone) == {"accuracy", "loss"} and set(standalone) <= set(proxy)
    # Retrained as the found model is: head search from all heads, distillation, then the task fine-tune.
    assert any("after head search" in line for line in lines) and any("distillation: step" in line for line in lines)
    assert any("fine-tune on" in line for line in lines) and len(tuned) == 1
    # Scored on the very sentences the proxy was scored on, by the retrained model (not the shared weights).
    ckpt = load_checkpoint(setup["checkpoint"])
    split, _ = trainer.cached_split(ckpt.teacher, ckpt.task["task"], 16, None, 0, "cpu")  # type: ignore[index]
    with torch.no_grad():
        logits = tuned[0](split.input_ids, split.attention_mask)
    assert standalone["accuracy"] == pytest.approx(float((logits.argmax(-1) == split.labels).float().mean()))
    assert standalone["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, split.labels)), rel=1e-5)
    assert standalone["loss"] != pytest.approx(float(proxy["loss"]))


def test_an_elastic_space_gets_a_super_network_that_sampled_its_genes(setup: dict[str, Any]) -> None:
    opts = ElmSubnetOptions(**{**setup["options"], "task": None, "eval_tasks": []})
    blocks = setup["space"]
    assert "elastic" not in opts.pretrain_options(blocks)  # the paper's space keeps its cache key
    elastic = ElmSpace(**{**blocks.options(), "elastic": ["ffn", "heads"], "head_counts": [2, 4]})
    assert stage.checkpoint_dir(opts, elastic, 0) != stage.checkpoint_dir(opts, blocks, 0)
    folder = stage.ensure_supernet(opts, elastic, 0, lambda line: None)
    ckpt = load_checkpoint(folder)
    assert ckpt.sampling.elastic == ("ffn", "heads") and ckpt.sampling.head_counts == (2, 4)
    searched = searched_space(elastic, str(folder))
    assert searched.elastic == ("ffn", "heads") and searched.head_counts == (2, 4)
    assert searched.is_valid(searched.smallest())
    with pytest.raises(TrainerError, match="needs a super-network that sampled them"):
        searched_space(elastic, str(setup["checkpoint"]))
