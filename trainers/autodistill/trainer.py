"""The `flash_distill` trainer: score one AutoDistill student (autodistill.txt §3, Fig. 1).

For one architecture of the `autodistill` space: build the student, initialise its embeddings from
the teacher (§3.3.2), measure its latency on this worker (§3.4; batch 1 by default, as in §4.1),
Flash-distil it on pre-training text (§3.3) reporting after every stage, then fine-tune it briefly on
a shipped task. Every report carries the analytic parameter counts and the measured latency, so a
multi-objective scheduler can compare students at any stage. Final metrics:

- `agreement`: the share of the teacher's last-layer features the student's last block explains on
  held-out text (1 - relative squared error; `trainers/distill/evaluate.py`);
- `mlm_accuracy`: held-out masked-token accuracy, the paper's task-agnostic pre-training accuracy
  and what the shipped studies search on (§3.5); the teachers have no MLM head, so it is scored
  through the student's own MLM head tied to its embeddings (`trainers/distill/flash.py`);
- `mlm_heldout_loss`: the mean cross-entropy (nats) of the same masked tokens, which still orders
  students whose short distillation left their accuracy tied (objective `mlm_heldout_loss`, `min`);
- `accuracy`: validation accuracy after `finetune_steps` on `task` (absent when `task` is null), a
  downstream probe reported beside it (a study may search on it instead);
- `params`, `params_non_embedding`, `latency_ms`, `latency_p90_ms`, `latency_cv`, and `hardware` (a label).

After the trials, its `finish` hook distils students picked from the front regularly
(`trainers/autodistill/hooks.py`); `calibrate` distils one trial regularly so `lmnas calibrate`
can check the flash ranking (`trainers/autodistill/calibrate.py`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file

from search_spaces.autodistill import AutoDistillSpace, StudentArch
from trainers.autodistill.embedding_init import init_embeddings_from_teacher
from trainers.autodistill.finetune import FinetuneConfig, finetune_on_task
from trainers.autodistill.student import Student
from trainers.home import lmnas_home
from trainers.data import load_data
from trainers.distill.flash import FlashConfig, flash_distill
from trainers.distill.teacher import Teacher, shared_teacher
from trainers.distill.teacher_cache import TeacherTargets, cache_key
from trainers.efficiency import device_for_worker, measure_latency, token_inputs
from trainers.encode import encode
from trainers.options import DistillCorpusOptions, LatencyMeasureOptions, build_options
from trainers.precision import check_device
from trainers.progress import check_save_every_s
from search_spaces.base import SearchSpace
from trainers.contract import (LATENCY_METRICS, FinishedTrial, Metrics, Report, StageContext, TrainerError, TrialContext,
                               space_metrics)
from trainers.supernet.cache import source_name


@dataclass(frozen=True)
class FlashDistillOptions(FlashConfig, DistillCorpusOptions, LatencyMeasureOptions):
    """Flash Distillation settings, the teacher and corpus, and latency measurement (inherited), plus
    the fine-tuning probe and the regular distillation after the search."""

    #: a classification data source for the fine-tuning probe; null skips it.
    task: str | None = "movie-reviews"
    task_max_length: int = 64
    task_train_examples: int = 2000
    task_eval_examples: int = 500
    finetune_steps: int = 100
    finetune_batch_size: int = 32
    finetune_lr: float = 5e-4
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: write the distilled student (safetensors + arch.json) to the trial directory.
    save_student: bool = False
    #: serve the teacher's outputs from a file computed by the study's first trial (`teacher_cache.py`).
    teacher_cache: bool = True
    #: where those files live (null: $LMNAS_HOME/teacher_outputs); on a multi-node cluster a shared folder.
    teacher_cache_dir: str | None = None
    #: regular distillation after the search (`trainers/autodistill/regular.py`): front members
    #: distilled (0: none), step multiple of Flash Distillation, tasks, fine-tuning steps and examples.
    regular_students: int = 3
    regular_step_factor: float = 10.0
    regular_tasks: tuple[str, ...] = ("movie-reviews", "sms-spam")
    regular_finetune_steps: int = 300
    regular_train_examples: int = 4000
    regular_onnx: bool = False
    #: seconds of regular distillation between saves of its state (beside the student's output, as
    #: `<trial>.progress/`), so a distillation whose node or driver died continues; null: no saves.
    save_every_s: float | None = 60.0

    def __post_init__(self) -> None:
        FlashConfig.__post_init__(self)
        DistillCorpusOptions.__post_init__(self)
        LatencyMeasureOptions.__post_init__(self)
        if self.task_max_length < 8:
            raise ValueError(f"option 'task_max_length' must be >= 8, got {self.task_max_length}")
        for name in ("task_train_examples", "task_eval_examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)}")
        self.finetune_config()  # validates the fine-tuning options
        check_save_every_s(self.save_every_s)
        from trainers.autodistill.regular import RegularOptions  # it builds on this module

        RegularOptions.of(self)  # validates the regular-distillation options

    def flash_config(self) -> FlashConfig:
        return FlashConfig(**{f.name: getattr(self, f.name) for f in fields(FlashConfig)})

    def finetune_config(self) -> FinetuneConfig:
        return FinetuneConfig(steps=self.finetune_steps, batch_size=self.finetune_batch_size, lr=self.finetune_lr,
                              weight_decay=self.weight_decay, precision=self.precision)


OPTIONS = FlashDistillOptions


def METRICS(opts: FlashDistillOptions, space: SearchSpace) -> tuple[str, ...]:  # noqa: N802  the contract's name
    """The last Flash Distillation stage's losses and scores, the space's analytic sizes, the measured
    latency, and the probe's `accuracy` when there is a task."""
    last = ("mlm_loss", "hidden_loss", "mlm_accuracy", "mlm_heldout_loss") if opts.pretrain_steps else ("attention_kl", "feature_loss")
    probe = ("accuracy",) if opts.task is not None else ()
    return ("stage", "step", "loss", "agreement", *last, *space_metrics(space), *LATENCY_METRICS, *probe)


def finish(ctx: StageContext) -> Path | None:
    """After the trials: regular distillation of students from the front (or the chosen trials)."""
    from trainers.autodistill.hooks import distil_students  # it builds on this module

    return distil_students(ctx, build_options(FlashDistillOptions, ctx.options))


def calibrate(ctx: StageContext, trial: FinishedTrial) -> dict[str, float]:
    """`lmnas calibrate`: the trial's student after regular distillation, scored as the trial was."""
    from trainers.autodistill.calibrate import distil_trial  # it builds on this module

    return distil_trial(ctx, trial, build_options(FlashDistillOptions, ctx.options))


def train(ctx: TrialContext, report: Report) -> Metrics:
    opts = build_options(FlashDistillOptions, ctx.options)
    if not isinstance(ctx.space, AutoDistillSpace):
        raise TrainerError(f"the flash_distill trainer needs the 'autodistill' search space, got {ctx.space.name!r}")
    arch = ctx.space.architecture(ctx.arch)  # an unbuildable student fails here, before anything is loaded
    device = device_for_worker() if opts.device == "auto" else torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainerError("option 'device' is 'cuda' but this worker has no CUDA device")
    check_device(opts.precision, device)
    torch.manual_seed(ctx.seed)
    teacher = shared_teacher(opts.teacher, str(device))
    check_fits_teacher(arch, teacher, opts)
    student = Student(arch).to(device)
    init_embeddings_from_teacher(student, teacher.embedding_tables())

    static = {**ctx.space.metrics(ctx.arch), **student_latency(student, opts)}
    targets = TeacherTargets(teacher, teacher_cache_file(opts, arch, ctx.seed))
    # Each finished progressive stage is a checkpoint: a rerun of this trial (a lost node) continues after it.
    state_dir = ctx.trial_dir / "flash_state" if ctx.trial_dir is not None else None
    flash = flash_distill(student, teacher, *corpus_blocks(opts, teacher, ctx.seed), opts.flash_config(),
                          lambda m, checkpoint=None: report({**m, **static}, checkpoint=checkpoint),
                          seed=ctx.seed, targets=targets, state_dir=state_dir, restore_dir=ctx.restore_dir)
    targets.save()
    if opts.save_student and ctx.trial_dir is not None:
        ctx.trial_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(ctx.trial_dir / "student.safetensors"))
        (ctx.trial_dir / "arch.json").write_text(json.dumps(asdict(arch), indent=1))
    metrics = {**flash.metrics, **static}
    if opts.task is not None:
        metrics["accuracy"] = probe_accuracy(student, teacher, opts, ctx.seed)
        metrics["stage"] = metrics["stage"] + 1
        metrics["step"] = metrics["step"] + opts.finetune_steps
        report(metrics)
    return metrics


def teacher_cache_file(opts: FlashDistillOptions, arch: StudentArch, seed: int) -> Path | None:
    """The teacher-output file of this batch plan (None when the cache is off).

    The key holds what decides the batches and the teacher's answers; the student's depth is in it
    because it sets the progressive stages' teacher layers and step count.
    """
    if not opts.teacher_cache:
        return None
    fields_ = {
        "teacher": source_name(opts.teacher), "corpus": source_name(opts.corpus), "seed": seed,
        "num_blocks": arch.num_blocks,
        **{k: getattr(opts, k) for k in ("seq_len", "corpus_blocks", "eval_blocks", "steps_per_block",
                                          "pretrain_steps", "batch_size", "mask_prob")},
    }
    root = Path(opts.teacher_cache_dir).expanduser() if opts.teacher_cache_dir else lmnas_home() / "teacher_outputs"
    return root / f"{cache_key(fields_)}.safetensors"


def check_fits_teacher(arch: StudentArch, teacher: Teacher, opts: FlashDistillOptions) -> None:
    """One-line errors for a space that does not match the teacher it distils from."""
    if arch.vocab_size != teacher.vocab_size:
        raise TrainerError(f"the space's vocab_size={arch.vocab_size} must equal teacher {opts.teacher!r}'s "
                           f"{teacher.vocab_size}: set vocab_size in the search space options")
    if max(opts.seq_len, opts.task_max_length, opts.latency_seq_len) > arch.max_positions:
        raise TrainerError(f"seq_len, task_max_length and latency_seq_len must be <= the space's "
                           f"max_positions={arch.max_positions}")


def student_latency(student: Student, opts: FlashDistillOptions) -> dict[str, float | str]:
    """Measured forward latency and the hardware it ran on; it depends on the architecture only, so
    it is taken before training."""
    latency = measure_latency(student, opts.latency_options(), token_inputs(student.arch.vocab_size))
    return latency.report()


def corpus_blocks(opts: FlashDistillOptions, teacher: Teacher, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) token blocks of `seq_len` from the corpus, in the teacher's tokenisation."""
    task = load_data(opts.corpus, seed=seed)
    if task.kind != "language-modeling":
        raise TrainerError(f"option 'corpus' must be unlabelled text, {opts.corpus!r} is a {task.kind} task")
    train_split = encode(task, teacher.tokenizer, max_length=opts.seq_len, max_examples=opts.corpus_blocks,
                         seed=seed, splits=("train",))["train"]
    valid_split = encode(task, teacher.tokenizer, max_length=opts.seq_len, max_examples=opts.eval_blocks,
                         seed=seed, splits=("validation",))["validation"]
    return train_split.input_ids, valid_split.input_ids


def probe_accuracy(student: Student, teacher: Teacher, opts: FlashDistillOptions, seed: int) -> float:
    """Validation accuracy of the student after a short fine-tune on `opts.task`."""
    assert opts.task is not None
    return finetune_on_task(student, teacher.tokenizer, opts.task, opts.finetune_config(), max_length=opts.task_max_length,
                            train_examples=opts.task_train_examples, eval_examples=opts.task_eval_examples,
                            seed=seed).accuracy
