"""After `flash_distill` trials: regular distillation of students picked from the front.

autodistill.txt §3.1 (Fig. 1): "the search engine returns the models on the Pareto curve and they
are passed to Regular Distillation for more thorough pre-training". A front can hold more members
than are worth distilling for long, so the first `regular_students` of the front in its well-spread
order are taken (`StageContext.front`: the best on the first objective, then each time the member
farthest from those taken), or the trials the user named (`lmnas distill --trials`). Each student is
distilled as one task (a Ray task on a GPU worker under `lmnas`; `trainers/autodistill/regular.py`),
then fine-tuned, tested and exported under `<study>/distilled/<trial>/`; one row per student and task
is added to `<study>/regular_distillation.parquet` as soon as the student is done.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pandas as pd

from search_spaces.autodistill import AutoDistillSpace, StudentArch
from trainers.autodistill.regular import RegularOptions, regular_distill
from trainers.autodistill.trainer import FlashDistillOptions
from trainers.contract import FinishedTrial, StageContext, TrainerError
from trainers.tables import append_rows

REGULAR_FILE = "regular_distillation.parquet"
DISTILLED_DIR = "distilled"
#: trial metrics copied next to the regular-distillation results (as flash_<name> where both exist).
TRIAL_METRICS = ("params", "params_non_embedding", "latency_ms", "agreement", "mlm_accuracy", "mlm_heldout_loss", "accuracy")


def students(ctx: StageContext, count: int) -> tuple[FinishedTrial, ...]:
    """The chosen trials, or the first `count` front members in its well-spread order."""
    return ctx.chosen or ctx.front[:count]


def distil_students(ctx: StageContext, opts: FlashDistillOptions) -> Path | None:
    """Distil the selected students; returns the results table (None when there is nothing to distil)."""
    if not isinstance(ctx.space, AutoDistillSpace):
        raise TrainerError(f"the flash_distill trainer needs the 'autodistill' search space, got {ctx.space.name!r}")
    count = RegularOptions.of(opts).students
    if not ctx.chosen and count == 0:
        ctx.log("regular distillation off (regular_students: 0)")
        return None
    chosen = students(ctx, count)
    if not chosen:
        ctx.log("regular distillation skipped: the study has no finished trial with every objective, so no front")
        return None
    path = ctx.directory / REGULAR_FILE
    for trial in chosen:
        config = ctx.space.normalise(trial.config)
        ctx.log(f"regular distillation of {trial.trial_id} {config}")
        out = ctx.directory / DISTILLED_DIR / trial.trial_id
        results = ctx.run_task(distil_one, (ctx.space.architecture(config), opts, ctx.seed, str(out), trial.trial_id),
                               "regular distillation")
        flash = {f"flash_{m}" if m in results[0] else m: trial.metrics[m] for m in TRIAL_METRICS if m in trial.metrics}
        frame = pd.DataFrame([{"trial_id": trial.trial_id, **{f"config.{k}": v for k, v in config.items()}, **flash, **r}
                              for r in results])
        append_rows(path, frame, ("trial_id", "task"))
    ctx.log(f"regular distillation results: {path}")
    return path


def distil_one(arch: StudentArch, opts: FlashDistillOptions, seed: int, out_dir: str, trial_id: str,
               log: Callable[[str], None]) -> list[dict[str, Any]]:
    """One student's regular distillation (the task's body), its log lines marked with its trial."""
    return regular_distill(arch, opts, seed, out_dir, lambda line: log(f"{trial_id} {line}"))
