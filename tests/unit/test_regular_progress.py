"""AutoDistill's regular distillation killed mid-run (SIGKILL while it saves) continues from its last
progress save, not from step 0, and ends with the student an uninterrupted run ends with."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.unit.crash import run_killed
from tests.unit.test_autodistill_regular import tiny_options, tiny_space
from tests.unit.tiny_teacher import make_tiny_teacher
from trainers.autodistill.regular import distil_long, regular_distill
from trainers.autodistill.trainer import FlashDistillOptions
from trainers.progress import progress_dir, saves


def test_a_killed_regular_distillation_continues_to_the_uninterrupted_result(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    teacher = make_tiny_teacher(tmp_path / "teacher")
    # 2 blocks x 3 steps, then 3 pre-training steps: 9 steps, a save after every one.
    opts = FlashDistillOptions(**tiny_options(teacher, tmp_path, save_every_s=1e-9))  # type: ignore[arg-type]
    arch = tiny_space(teacher).architecture(tiny_space(teacher).smallest())
    whole = regular_distill(arch, opts, 0, tmp_path / "whole", lambda line: None)

    out = tmp_path / "resumed"
    # Killed while saving step 5 (block 2's second step): step 4's save is the newest complete one.
    run_killed("trainers.autodistill.regular:regular_distill", (arch, opts, 0, out, print), 5, tmp_path)
    assert [p.name for p in saves(progress_dir(out))] == ["step-000000004"]
    assert not (out / "encoder").exists()

    lines: list[str] = []
    rows = regular_distill(arch, opts, 0, out, lines.append)
    # Block 1's stage was done before the kill: the rerun reports only the stages after it.
    assert [line.split(":")[0] for line in lines if line.startswith("stage")] == ["stage 2 step 6", "stage 3 step 9"]
    assert "continued from the save of step 4 (the steps before it did not run again)" in lines
    assert not progress_dir(out).exists()
    assert rows == [{**row, "export": row["export"].replace(str(tmp_path / "whole"), str(out)),
                     "distill_seconds": rows[i]["distill_seconds"]} for i, row in enumerate(whole)]
    expected, got = (load_file(str(d / "encoder" / "model.safetensors")) for d in (tmp_path / "whole", out))
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_save_every_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="option 'save_every_s' must be > 0 seconds or null"):
        FlashDistillOptions(save_every_s=0)


def test_a_rerun_after_the_end_of_run_save_keeps_the_distillation_metrics(tmp_path: Path) -> None:
    """Without pre-training the last save is that of the last block's stage: a rerun that finds it
    (a crash during fine-tuning or export) reports that stage's metrics, not the zeros of a replay."""
    torch.set_num_threads(1)
    teacher = make_tiny_teacher(tmp_path / "teacher")
    # Saves far apart: the end-of-run save is the only one.
    options = {**tiny_options(teacher, tmp_path, save_every_s=3600), "pretrain_steps": 0}
    opts = FlashDistillOptions(**options)  # type: ignore[arg-type]
    arch = tiny_space(teacher).architecture(tiny_space(teacher).smallest())
    first = distil_long(arch, opts, 0, lambda line: None, tmp_path / "progress")
    lines: list[str] = []
    again = distil_long(arch, opts, 0, lines.append, tmp_path / "progress")
    assert first.metrics["loss"] > 0 and again.metrics == first.metrics and again.steps == first.steps
    assert not any(line.startswith("stage") for line in lines)
