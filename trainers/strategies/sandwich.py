"""`sandwich`: the largest, the smallest and `num_random` random sub-networks in every update.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.1 and §4.1.3
("sandwich"), after Yu et al. (2020, BigNAS) and Wang et al. (2021): the upper and lower bounds of
the space and random members between them are trained in each step, gradients summed. Appendix A
uses 2 random sub-networks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_spaces.pruning import PruningSpace
from search_spaces.sub_network import SubNetwork
from trainers.strategies.base import (Batch, Losses, Strategy, check_num_random, lower_bound, random_sub_network,
                                      train_sub_network)
from trainers.precision import FP32, MixedPrecision
from trainers.supernet.model import SuperNetwork


def sandwich_members(space: PruningSpace, rng: np.random.Generator, num_random: int) -> list[tuple[str, SubNetwork]]:
    """The smallest (that reads its input, `lower_bound`), then `num_random` random sub-networks,
    in training order after the largest."""
    members = [("smallest", lower_bound(space))]
    return members + [(f"random_{i}", random_sub_network(space, rng)) for i in range(num_random)]


@dataclass(frozen=True)
class Sandwich(Strategy):
    name = "sandwich"
    num_random: int = 2

    def __post_init__(self) -> None:
        check_num_random(self.num_random)

    def step(self, supernet: SuperNetwork, batch: Batch, space: PruningSpace, rng: np.random.Generator,
             progress: float = 0.0, amp: MixedPrecision = FP32) -> Losses:
        losses = {"largest": train_sub_network(supernet, space.architecture(space.largest()), batch, amp=amp)[0]}
        for role, sub in sandwich_members(space, rng, self.num_random):
            losses[role] = train_sub_network(supernet, sub, batch, amp=amp)[0]
        return losses
