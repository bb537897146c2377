"""The super-network stage: fine-tune a pre-trained BERT once per config, with a training strategy.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2: stage one
fine-tunes the pre-trained model as a super-network on the downstream task (AdamW, linear decay,
Appendix A: lr 2e-5, 2 random sub-networks, T = 10); stage two only evaluates sub-networks on the
shared weights (`trainers/weight_sharing.py`). The result is cached by the hash of its config
(`trainers/supernet/cache.py`): a second call returns the stored checkpoint without training.
While it trains, the stage saves its progress every `save_every_s` seconds beside that checkpoint
(`trainers/progress.py`), so a rerun after a lost node (the Ray task's retry) or a
killed driver (`lmnas resume`) continues from the last save and ends with the same weights.
`lmnas supernet train STUDY` runs this stage alone.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from search_spaces.pruning import PruningSpace
from trainers.data import load_model_dir
from trainers.efficiency import hardware_label
from trainers.supernet.checks import check_space_fits, pick_device
from trainers.supernet.cache import SupernetConfig, checkpoint_dir, is_complete, key_fields, write_checkpoint
from trainers.supernet.fit import fit, param_groups
from trainers.supernet.model import SuperNetwork
from trainers.precision import MixedPrecision
from trainers.progress import ProgressSaves, progress_dir
from trainers.supernet.splits import SplitSpec, classification_split

Log = Callable[[str], None]


def ensure_supernet(config: SupernetConfig, space: PruningSpace, seed: int = 0, log: Log = print) -> Path:
    """The checkpoint directory of the super-network for (config, space, seed), training it if absent."""
    directory = checkpoint_dir(config, space, seed)
    if is_complete(directory):
        log(f"supernet: using the cached checkpoint {directory}")
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    return train_supernet(config, space, seed, directory, log)


def train_supernet(config: SupernetConfig, space: PruningSpace, seed: int, directory: Path, log: Log = print) -> Path:
    """Fine-tune with `config.strategy` and write the checkpoint to `directory`, continuing from the
    last progress save of an interrupted run (`config.save_every_s`)."""
    device = pick_device(config.device)
    amp = MixedPrecision(config.precision, device)
    split, num_labels = classification_split(
        SplitSpec(config.task, config.model, "train", config.max_examples, config.max_length, seed))
    supernet = SuperNetwork.from_pretrained(load_model_dir(config.model), num_labels=num_labels, seed=seed,
                                           pooling=config.pooling)
    check_space_fits(space, supernet, config.model)
    supernet.to(device).reset_super_network()
    strategy = config.make_strategy()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    loader = split.loader(config.batch_size, shuffle=True, seed=seed)
    log(f"supernet: training {config.model} on {config.task} ({len(split)} examples, {config.max_length} tokens) "
        f"with {config.strategy!r} for {config.epochs * len(loader)} steps on {hardware_label(device)} ({config.precision})")
    # The sub-networks a strategy samples come from `rng`: a continued run picks up its sequence too.
    saves = None if config.save_every_s is None else ProgressSaves(
        progress_dir(directory), config.save_every_s, get_extra=lambda: {"rng": rng.bit_generator.state},
        set_extra=lambda state: setattr(rng.bit_generator, "state", state["rng"]))
    started = time.monotonic()
    supernet.train()
    trace = fit(param_groups(supernet, config), loader, config, device,
                lambda batch, progress: strategy.step(supernet, batch, space, rng, progress, amp),
                log=lambda line: log(f"supernet: {line}"), log_every=config.log_every, saves=saves, amp=amp)
    supernet.to("cpu").eval()
    info = {**key_fields(config, space, seed), "steps": trace[-1]["step"], "seconds": time.monotonic() - started,
            "hardware": hardware_label(device), "trace": trace}
    write_checkpoint(supernet, directory, info)
    if saves is not None:
        saves.clear()
    log(f"supernet: saved {directory}")
    return directory

