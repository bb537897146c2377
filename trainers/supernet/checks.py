"""Checks a trial makes before loading anything: the space, the lengths, the device, the fit to the model."""
from __future__ import annotations

import torch

from search_spaces.pruning import PruningSpace
from trainers.efficiency import device_for_worker
from trainers.contract import StageContext, TrainerError, TrialContext
from trainers.supernet.model import SuperNetwork


def pruning_space(ctx: TrialContext | StageContext, trainer: str) -> PruningSpace:
    if not isinstance(ctx.space, PruningSpace):
        raise TrainerError(f"the {trainer} trainer needs a pruning search space (small, layer, medium, large), "
                           f"got {ctx.space.name!r}")
    return ctx.space


def check_lengths(space: PruningSpace, **lengths: int) -> None:
    """One line for sequence-length options longer than the model's usable positions (RoBERTa's
    and MPNet's first position_offset rows of the table are never a token's)."""
    usable = space.shape.usable_positions
    long = {k: v for k, v in lengths.items() if v > usable}
    if long:
        raise TrainerError(f"options {', '.join(repr(k) for k in long)} must be <= the model's {usable} usable "
                           f"positions, got {', '.join(map(str, long.values()))}")


def pick_device(choice: str) -> torch.device:
    """`auto`: this worker's GPU when it has one, else the CPU."""
    if choice == "auto":
        return device_for_worker()
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainerError("option 'device' is 'cuda' but this worker has no CUDA device")
    return torch.device(choice)


def check_space_fits(space: PruningSpace, supernet: SuperNetwork, model: str) -> None:
    """One line naming the search-space options that disagree with the model and task."""
    want, have = supernet.shape, space.shape
    wrong = [f"{k}={getattr(have, k)} (model: {getattr(want, k)})" for k in vars(want) if getattr(want, k) != getattr(have, k)]
    if wrong:
        raise TrainerError(f"the {space.name!r} search space does not fit model {model!r} on this task: "
                           f"{', '.join(wrong)}; set these in search_space.options")
