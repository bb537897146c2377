"""The stages of an ELM study around its trials (ELM Algorithm 2 as one study), as the trainer's hooks.

Before (`prepare`): the super-network is pre-trained on the corpus and fine-tuned on the task as one
task (a Ray task on a GPU worker under `lmnas`), or found in the cache (`trainers/elm/stage.py`); the
trials then search the `elm` space read from that checkpoint (its FFN widths are the grown ones)
under the study's cap.

After (`finish`): the best finished candidate by accuracy (the highest-accuracy point is always on
the front; every candidate meets the cap), or the trial the user named, goes through head search,
retraining, evaluation on the shipped tasks and export (`trainers/elm/final.py`), again as one task;
the final numbers are written to `<study dir>/elm_final.csv` and `.parquet`, the model to
`<study dir>/export/`.

`calibrate` (for `lmnas calibrate`): one finished candidate retrained standalone as `finish` retrains
the found model (head search, distillation on the corpus, fine-tuning on the search task), scored
as its trial was (`accuracy` and `loss` on the task's validation split), so the ranking by shared
weights can be checked against the ranking after retraining.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from search_spaces.base import SearchSpace
from search_spaces.elm import ElmSpace, read_checkpoint_meta
from trainers.contract import LATENCY_METRICS, space_metrics, FinishedTrial, Prepared, StageContext, TrainerError
from trainers.elm.final import retrain_and_evaluate, retrained_score
from trainers.elm.options import ElmSubnetOptions
from trainers.elm.stage import ensure_supernet
from trainers.options import build_options
from trainers.tables import save_table

FINAL_TABLE = "elm_final"


def METRICS(opts: ElmSubnetOptions, space: SearchSpace) -> tuple[str, ...]:  # noqa: N802  the contract's name
    """On a task-tuned super-network (one with a head) task scores, else held-out distillation scores;
    the space's analytic sizes; the measured latency when `latency_repeats` > 0. A space that searches
    widths or head counts the given super-network did not sample in training is refused here, so
    before anything runs."""
    if opts.checkpoint:
        searched_space(elm_space(space), opts.checkpoint)
    tuned = "task" in read_checkpoint_meta(opts.checkpoint) if opts.checkpoint else opts.task is not None
    scores = ("accuracy", "loss", "agreement") if tuned else ("distill_loss", "agreement")
    latency = LATENCY_METRICS if opts.latency_repeats else ("precision",)
    return ("step", *space_metrics(space), *scores, *latency)


def elm_space(space: SearchSpace) -> ElmSpace:
    if not isinstance(space, ElmSpace):
        raise TrainerError(f"the elm_subnet trainer needs the 'elm' search space, got {space.name!r}")
    return space


def searched_space(space: ElmSpace, checkpoint: str) -> ElmSpace:
    """The study's space with the widths of the trained super-network (its cap, head counts and elastic
    sizes kept; elastic sizes the super-network did not sample are refused)."""
    options: dict[str, Any] = {"checkpoint": checkpoint, "head_counts": list(space.head_counts),
                               "elastic": list(space.elastic)}
    if space.max_params is not None:
        options |= {"max_params": space.max_params, "cap_metric": space.cap_metric}
    try:
        return ElmSpace(**options)
    except ValueError as e:
        raise TrainerError(f"the trained super-network does not fit the study's space: {e}") from None


def prepare(ctx: StageContext) -> Prepared:
    """Train (or find) the super-network; the trials search its space with its checkpoint."""
    space = elm_space(ctx.space)
    opts = build_options(ElmSubnetOptions, ctx.options)
    checkpoint = opts.checkpoint
    if not checkpoint:
        checkpoint = str(ctx.run_task(ensure_supernet, (opts, space, ctx.seed), "the ELM super-network stage"))
    else:
        ctx.log(f"elm: searching the given super-network {checkpoint}")
    return Prepared(searched_space(space, checkpoint), {**ctx.options, "checkpoint": checkpoint}, checkpoint)


def best_candidate(trials: Sequence[FinishedTrial], space: ElmSpace) -> FinishedTrial | None:
    """The finished trial with the highest accuracy under the cap (fewer parameters break ties)."""
    done = [t for t in trials if "accuracy" in t.metrics and space.is_valid(t.config)]
    if not done:
        return None
    return max(done, key=lambda t: (float(t.metrics["accuracy"]), -float(t.metrics.get("params", 0.0))))


def finish(ctx: StageContext) -> Path | None:
    """Head search, retraining, evaluation and export of the best (or the chosen) candidate; the results table."""
    space = elm_space(ctx.space)
    best = ctx.chosen[0] if ctx.chosen else best_candidate(ctx.trials, space)
    if best is None or space.checkpoint is None:
        ctx.log("elm: no finished trial with an accuracy; nothing to retrain")
        return None
    opts = build_options(ElmSubnetOptions, {**ctx.options, "checkpoint": space.checkpoint})
    ctx.log(f"elm: retraining trial {best.trial_id}" + ("" if ctx.chosen else ", the most accurate candidate"))
    rows = ctx.run_task(retrain_and_evaluate, (opts, space.checkpoint, space.architecture(space.normalise(best.config)),
                                               str(ctx.directory / "export"), ctx.seed), "the ELM retraining stage")
    frame = pd.DataFrame([{"trial_id": best.trial_id, **row} for row in rows])
    save_table(frame, ctx.directory / f"{FINAL_TABLE}.parquet")
    path = save_table(frame, ctx.directory / f"{FINAL_TABLE}.csv")
    ctx.log(f"elm: final numbers in {path}")
    return path


def calibrate(ctx: StageContext, trial: FinishedTrial) -> dict[str, float]:
    """The trial's candidate retrained standalone as the found model is (`lmnas calibrate`): the values
    its shared-weight `accuracy` and `loss` predict."""
    space = elm_space(ctx.space)
    if space.checkpoint is None:
        raise TrainerError("calibrate needs the space of a trained super-network (the one `prepare` settles)")
    opts = build_options(ElmSubnetOptions, {**ctx.options, "checkpoint": space.checkpoint})
    arch = space.architecture(space.normalise(trial.config))
    ctx.log(f"elm: {trial.trial_id}: retraining standalone")
    return retrained_score(opts, space.checkpoint, arch, ctx.seed, ctx.log)
