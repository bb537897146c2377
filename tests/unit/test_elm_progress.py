"""ELM's super-network stage killed mid-run (SIGKILL while it saves), in pre-training (after a PCA
growth) or in the task fine-tune, continues from its last progress save, not from step 0, and ends
with the weights an uninterrupted run ends with."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from search_spaces.elm import ElmSpace
from tests.unit.crash import run_killed
from tests.unit.tiny_task import save_tiny_task
from tests.unit.tiny_teacher import SENTENCES, make_tiny_teacher
from trainers.elm import stage
from trainers.elm.checkpoint import load_checkpoint
from trainers.elm.options import ElmSubnetOptions
from trainers.progress import progress_dir, saves


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("elm-progress")
    teacher = make_tiny_teacher(root / "teacher")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20) + "\n")
    # Pre-training: 2 epochs of 3 steps, growth after the first; fine-tune: 6 steps; a save after every step.
    options = {"teacher": str(teacher), "corpus": str(corpus), "seq_len": 16, "corpus_blocks": 40, "eval_blocks": 8,
               "pretrain_epochs": 2, "pretrain_steps": 3, "pretrain_batch": 4, "growth_top_k": 4,
               "task": str(save_tiny_task(root / "task", rows=32)), "max_length": 16, "train_examples": None,
               "eval_examples": None, "probe_steps": 20, "finetune_steps": 6, "finetune_batch": 8, "batch_size": 8,
               "eval_tasks": [], "onnx": False, "device": "cpu", "save_every_s": 1e-9}
    space = ElmSpace(num_layers=2, hidden_size=32, num_heads=4, ffn_step=8)
    opts = ElmSubnetOptions(**{**options, "cache_dir": str(root / "whole")})  # type: ignore[arg-type]
    return {"root": root, "options": options, "space": space,
            "whole": stage.ensure_supernet(opts, space, 0, lambda line: None)}


@pytest.mark.parametrize("where, kill_at, newest", [("pretrain", 5, 4), ("finetune", 4, 3)])
def test_a_killed_stage_continues_to_the_uninterrupted_result(setup: dict[str, Any], where: str, kill_at: int,
                                                              newest: int) -> None:
    root, space = setup["root"], setup["space"]
    opts = ElmSubnetOptions(**{**setup["options"], "cache_dir": str(root / where)})  # type: ignore[arg-type]
    directory = stage.checkpoint_dir(opts, space, 0)
    run_killed("trainers.elm.stage:ensure_supernet", (opts, space, 0, print), kill_at, root, under=f".progress/{where}/")
    assert [p.name for p in saves(progress_dir(directory) / where)] == [f"step-{newest:09d}"]
    assert not stage.is_complete(directory)

    lines: list[str] = []
    assert stage.ensure_supernet(opts, space, 0, lines.append) == directory
    assert not progress_dir(directory).exists()
    # Pre-training's first epoch ended before either kill: the rerun reports only the second.
    assert [line.split()[3] for line in lines if line.startswith("elm: pre-training epoch")] == ["2"]
    if where == "finetune":
        assert "task fine-tune: continuing from the save of step 3/6" in lines

    expected, got = load_checkpoint(setup["whole"]), load_checkpoint(directory)
    assert expected.supernet.widths == got.supernet.widths != ((8,) * 6,) * 2  # grown after epoch 1
    for a, b in ((expected.supernet, got.supernet), (expected.adapters, got.adapters), (expected.head, got.head)):
        want, have = a.state_dict(), b.state_dict()  # type: ignore[union-attr]
        assert want.keys() == have.keys() and all(torch.equal(want[k], have[k]) for k in want)


def test_save_every_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="option 'save_every_s' must be > 0 seconds or null"):
        ElmSubnetOptions(save_every_s=-1)
