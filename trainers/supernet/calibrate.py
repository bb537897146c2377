"""Standalone training of one weight-sharing trial, to check the proxy it was ranked by.

structural-pruning-via-nas.txt §3.2.2 ranks sub-networks by their accuracy on the super-network's
shared weights, a proxy for what a user deploys: the sub-network cut out and fine-tuned on its own.
This trains that deployable model with the study's own data and budget (the super-network stage's
fine-tuning options: examples, epochs, learning rate, batch size) starting from the extracted
weights, and scores it on the whole validation split, so `lmnas calibrate` can measure how well the
proxy's ranking holds.

Why the whole split and not the proxy's `eval_examples`: the standalone value is the reference the
proxy is judged against, and a reference as noisy as the proxy hides its ranking. With the
quickstart's 250 sentences one standard error of accuracy is about 0.025, as wide as the spread of
seven of the eight standalone accuracies it ranked (0.79-0.84); movie reviews' 1,112 halve it, for one
more pass of inference per trial. The proxy keeps the value the search saw: its own noise is part of
what is calibrated.
"""
from __future__ import annotations

from typing import Any

from trainers.baselines.common import fine_tune
from trainers.contract import FinishedTrial, StageContext
from trainers.supernet.cache import SupernetConfig, load_supernet
from trainers.supernet.checks import pick_device
from trainers.supernet.hooks import trained_supernet
from trainers.supernet.measure import evaluate
from trainers.supernet.options import MeasureOptions
from trainers.supernet.splits import SplitSpec, classification_split


def train_standalone(ctx: StageContext, trial: FinishedTrial, config: SupernetConfig, measure: MeasureOptions,
                     trainer: str) -> dict[str, Any]:
    """Accuracy and loss of the trial's sub-network after fine-tuning it on its own."""
    space, checkpoint = trained_supernet(ctx, config, trainer)
    device = pick_device(config.device)
    sub = space.architecture(space.normalise(trial.config))
    model = load_supernet(checkpoint, device).extract_sub_network(sub)
    train, _ = classification_split(
        SplitSpec(config.task, config.model, "train", config.max_examples, config.max_length, ctx.seed))
    validation, _ = classification_split(  # None: every example of the split (see the module's docstring)
        SplitSpec(config.task, config.model, "validation", None, config.max_length, ctx.seed))
    ctx.log(f"{trial.trial_id}: fine-tuning {sum(len(h) > 0 for h in sub.heads)} layers standalone "
            f"({config.epochs} epochs of {len(train)} examples)")
    fine_tune(model, train, config, ctx.seed)
    return evaluate(model, validation, measure.eval_batch_size, config.precision)
