"""`full`: the sandwich rule with in-place knowledge distillation — the paper's protocol.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.1 and §4.1.3
("full"): each step trains the largest sub-network on the labels, then the smallest and
`num_random` random ones on the labels plus the KL to the largest's logits at temperature T
(Appendix A: 2 random sub-networks, T = 10).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_spaces.pruning import PruningSpace
from trainers.strategies.base import (
    Batch,
    Losses,
    Strategy,
    check_num_random,
    check_temperature,
    train_sub_network,
)
from trainers.strategies.sandwich import sandwich_members
from trainers.precision import FP32, MixedPrecision
from trainers.supernet.model import SuperNetwork


@dataclass(frozen=True)
class Full(Strategy):
    name = "full"
    num_random: int = 2
    temperature: float = 10.0

    def __post_init__(self) -> None:
        check_num_random(self.num_random)
        check_temperature(self.temperature)

    def step(self, supernet: SuperNetwork, batch: Batch, space: PruningSpace, rng: np.random.Generator,
             progress: float = 0.0, amp: MixedPrecision = FP32) -> Losses:
        loss, teacher = train_sub_network(supernet, space.architecture(space.largest()), batch, amp=amp)
        losses = {"largest": loss}
        for role, sub in sandwich_members(space, rng, self.num_random):
            losses[role] = train_sub_network(supernet, sub, batch, teacher, self.temperature, amp=amp)[0]
        return losses
