"""Regular distillation of selected students (AutoDistill, Zhang et al. 2022, §3.1, §3.3.4, §4.2).

After the search, the students on the Pareto front are distilled again "with more thorough
pre-training setups": the same teacher and the same stages as Flash Distillation (every block
progressively, then pre-training distillation), `step_factor` times as many steps (the paper:
740k regular against 37k flash steps, 20x). The distilled encoder is then fine-tuned on each
downstream task and scored on the task's test split, and every model is exported
(`trainers/autodistill/export.py`) so it loads without this project.

While it distils, the state is saved every `save_every_s` seconds beside the output folder
(`trainers/progress.py`), so a rerun after a lost node or a killed driver continues from the last
save and ends with the student an uninterrupted run ends with.

Regular distillation reads the live teacher: its batch plan is `step_factor` times longer than
Flash Distillation's, and a table of its teacher outputs would be as many times larger while
serving only the few selected students.
"""
from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch

from search_spaces.autodistill import StudentArch
from trainers.autodistill.embedding_init import init_embeddings_from_teacher
from trainers.autodistill.export import export_student
from trainers.autodistill.finetune import finetune_on_task
from trainers.autodistill.student import Student
from trainers.autodistill.trainer import FlashDistillOptions, check_fits_teacher, corpus_blocks
from trainers.distill.flash import FlashConfig, flash_distill
from trainers.distill.teacher import Teacher, shared_teacher
from trainers.efficiency import device_for_worker
from trainers.progress import ProgressSaves, progress_dir


@dataclass(frozen=True)
class RegularOptions:
    """How the selected students are distilled, fine-tuned and exported (the `regular_*` trainer options)."""

    #: front members distilled after the search (0: no regular distillation).
    students: int = 3
    #: regular steps = this many times the Flash Distillation steps (per block and pre-training).
    step_factor: float = 10.0
    #: classification tasks each distilled student is fine-tuned and tested on.
    tasks: tuple[str, ...] = ("movie-reviews", "sms-spam")
    finetune_steps: int = 300
    #: training examples per task (test examples: the trainer's `task_eval_examples`).
    train_examples: int = 4000
    #: also write model.onnx next to each task model.
    onnx: bool = False

    def __post_init__(self) -> None:
        if self.students < 0:
            raise ValueError(f"option 'regular_students' must be >= 0, got {self.students}")
        if self.step_factor < 1.0:
            raise ValueError(f"option 'regular_step_factor' must be >= 1, got {self.step_factor}")
        for name in ("finetune_steps", "train_examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"option 'regular_{name}' must be >= 1, got {getattr(self, name)}")

    @classmethod
    def of(cls, options: Any) -> RegularOptions:
        """The `regular_*` fields of a larger options object (the flash_distill trainer's)."""
        values = {f.name: getattr(options, f"regular_{f.name}") for f in fields(cls)}
        return cls(**{**values, "tasks": tuple(values["tasks"])})


def regular_config(flash: FlashConfig, factor: float) -> FlashConfig:
    """Flash Distillation's settings with `factor` times the steps (and warm-up); reports only per stage."""
    scale = lambda n: max(1, round(n * factor)) if n else 0  # noqa: E731
    return replace(flash, steps_per_block=scale(flash.steps_per_block), pretrain_steps=scale(flash.pretrain_steps),
                   warmup_steps=scale(flash.warmup_steps), report_every=0)


@dataclass(frozen=True)
class LongDistillation:
    """A student after regular distillation, the teacher it learnt from, and what it took."""

    student: Student
    teacher: Teacher
    #: the last report's metrics (held-out `agreement`, `mlm_accuracy`, the losses).
    metrics: dict[str, float]
    steps: int
    seconds: float


def distil_long(arch: StudentArch, opts: FlashDistillOptions, seed: int,
                log: Callable[[str], None] = print, progress: Path | None = None) -> LongDistillation:
    """Flash Distillation's stages with `regular_step_factor` times the steps, on the live teacher;
    with `progress` (and `opts.save_every_s`), saving its state there and continuing from it."""
    device = device_for_worker() if opts.device == "auto" else torch.device(opts.device)
    teacher = shared_teacher(opts.teacher, str(device))
    check_fits_teacher(arch, teacher, opts)
    torch.manual_seed(seed)
    student = Student(arch).to(device)
    init_embeddings_from_teacher(student, teacher.embedding_tables())
    config = regular_config(opts.flash_config(), RegularOptions.of(opts).step_factor)
    start = time.perf_counter()

    def report(m: dict[str, float]) -> None:
        log(f"stage {m['stage']:.0f} step {m['step']:.0f}: agreement {m['agreement']:.3f} "
            f"({time.perf_counter() - start:.0f} s)")

    saves = None if progress is None or opts.save_every_s is None else ProgressSaves(progress, opts.save_every_s)
    result = flash_distill(student, teacher, *corpus_blocks(opts, teacher, seed), config, report, seed=seed,
                           saves=saves)
    if result.continued_from:
        log(f"continued from the save of step {result.continued_from} (the steps before it did not run again)")
    return LongDistillation(student, teacher, dict(result.metrics), result.global_step, time.perf_counter() - start)


def regular_distill(arch: StudentArch, opts: FlashDistillOptions, seed: int, out_dir: str | Path,
                    log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Distil `arch` for long, fine-tune a copy per task, export all; one result row per task.

    Writes `<out_dir>/encoder/` (the task-agnostic student) and `<out_dir>/<task>/` (task models).
    """
    regular = RegularOptions.of(opts)
    out_dir = Path(out_dir)
    long = distil_long(arch, opts, seed, log, progress_dir(out_dir))
    student, teacher = long.student, long.teacher
    export_student(student, out_dir / "encoder", teacher.tokenizer)
    base = {"distill_steps": long.steps, "distill_seconds": long.seconds,
            "agreement": long.metrics["agreement"], "mlm_accuracy": long.metrics["mlm_accuracy"]}
    rows = []
    finetune = replace(opts.finetune_config(), steps=regular.finetune_steps)
    for task in regular.tasks:
        run = finetune_on_task(copy.deepcopy(student), teacher.tokenizer, task, finetune,
                               max_length=opts.task_max_length, train_examples=regular.train_examples,
                               eval_examples=opts.task_eval_examples, seed=seed, eval_split="test")
        folder = export_student(run.classifier, out_dir / safe_name(task), teacher.tokenizer, run.label_names,
                                onnx=regular.onnx)
        log(f"{task}: test accuracy {run.accuracy:.3f} -> {folder}")
        rows.append({**base, "task": task, "accuracy": run.accuracy, "export": str(folder)})
    # Every model is exported: a rerun now would be a new distillation.
    shutil.rmtree(progress_dir(out_dir), ignore_errors=True)
    return rows


def safe_name(source: str) -> str:
    """A folder name for a task source (an asset name, or the last part of a path)."""
    name = Path(source).name or "task"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
