"""`lmnas calibrate` for `flash_distill`: a searched student distilled regularly, to check Flash
Distillation's ranking (AutoDistill, Zhang et al. 2022, §3.3 and §4.7, Fig. 6).

The search ranks students by their held-out masked-token accuracy after a short Flash Distillation;
what the paper deploys is the student after regular distillation (§3.1: "more thorough
pre-training"). This distils one finished trial's student with the same stages and
`regular_step_factor` times the steps (`regular.distil_long`, the study's regular distillation) and
scores it as the trial was scored: the same held-out blocks and masking seed, and the downstream probe
when the study has a `task`. It returns the trial's metric names, so the calibration ranks both.
"""
from __future__ import annotations

from search_spaces.autodistill import AutoDistillSpace
from trainers.autodistill.regular import distil_long
from trainers.autodistill.trainer import FlashDistillOptions, probe_accuracy
from trainers.contract import FinishedTrial, StageContext, TrainerError

#: the trial metrics a regular distillation scores again.
SCORES = ("mlm_accuracy", "agreement")


def distil_trial(ctx: StageContext, trial: FinishedTrial, opts: FlashDistillOptions) -> dict[str, float]:
    """The trial's student after regular distillation: its masked-token accuracy and agreement (and
    probe accuracy when the study fine-tunes one), under the trial's own metric names."""
    if not isinstance(ctx.space, AutoDistillSpace):
        raise TrainerError(f"the flash_distill trainer needs the 'autodistill' search space, got {ctx.space.name!r}")
    arch = ctx.space.architecture(ctx.space.normalise(trial.config))
    long = distil_long(arch, opts, ctx.seed, lambda line: ctx.log(f"{trial.trial_id} {line}"))
    metrics = {name: long.metrics[name] for name in SCORES if name in long.metrics}
    if opts.task is not None:
        metrics["accuracy"] = probe_accuracy(long.student, long.teacher, opts, ctx.seed)
    return metrics
