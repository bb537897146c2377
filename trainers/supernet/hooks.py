"""The stages of a weight-sharing study around its trials (structural-pruning-via-nas.txt §3.2).

Before the trials (`prepare`): weight-sharing NAS first fine-tunes the super-network, then only
evaluates sub-networks. The training runs as one task (a Ray task on a GPU worker under `lmnas`)
and is skipped when the checkpoint of this config is already cached (a rerun or a resumed study).

Export (`export`): the searched sub-networks are the final models (§3.2.2), so a trial's model is
its sub-network cut out of the trained super-network, saved with `trainers/supernet/export.py`: a
standard folder of the model's family (e.g. `BertForSequenceClassification`) when every kept layer has heads and FFN units
(SMALL), else the compact format with ONNX.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from trainers.contract import FinishedTrial, Prepared, StageContext, TrainerError
from trainers.supernet.cache import SupernetConfig, checkpoint_dir, is_complete, load_supernet
from search_spaces.pruning import PruningSpace
from trainers.supernet.checks import pruning_space
from trainers.supernet.train import ensure_supernet


def prepare_supernet(ctx: StageContext, config: SupernetConfig, trainer: str) -> Prepared:
    """The trained super-network of (config, space, seed): found in the cache, or trained as one task."""
    space = pruning_space(ctx, trainer)
    directory = checkpoint_dir(config, space, ctx.seed)
    if is_complete(directory):
        ctx.log(f"supernet: using the cached checkpoint {directory}")
    else:
        directory = Path(ctx.run_task(ensure_supernet, (config, space, ctx.seed), "the super-network stage"))
    return Prepared(ctx.space, ctx.options, str(directory))


def trained_supernet(ctx: StageContext, config: SupernetConfig, trainer: str) -> tuple[PruningSpace, Path]:
    """The study's space and its trained super-network's checkpoint (a one-line error when it is gone)."""
    space = pruning_space(ctx, trainer)
    checkpoint = checkpoint_dir(config, space, ctx.seed)
    if not is_complete(checkpoint):
        raise TrainerError(f"the study's super-network {checkpoint} is gone; rerun `lmnas supernet train` on the "
                           "study file")
    return space, checkpoint


def export_sub_network(ctx: StageContext, trial: FinishedTrial, out: Path, config: SupernetConfig,
                       trainer: str) -> dict[str, Any]:
    """The trial's sub-network, cut out of the study's super-network, as a model folder `out`."""
    from search_spaces.sub_network import IllegalSubNetworkError
    from transformers.utils import logging as hf_logging

    from trainers.data import load_tokenizer
    from trainers.supernet.export import export_compact, export_standard

    space, checkpoint = trained_supernet(ctx, config, trainer)
    model = load_supernet(checkpoint).extract_sub_network(space.architecture(space.normalise(trial.config)))
    tokenizer = load_tokenizer(config.model)
    hf_logging.disable_progress_bar()  # one export: a shard-writing bar is noise in the run's log
    try:
        export_standard(model, out, tokenizer)
        form = json.loads((out / "config.json").read_text())["architectures"][0]  # the family's own class
    except IllegalSubNetworkError:
        shutil.rmtree(out, ignore_errors=True)
        export_compact(model, out, tokenizer)
        form = "compact_bert (modeling_compact_bert.py, model.onnx)"
    return {"format": form, "supernet": str(checkpoint)}
