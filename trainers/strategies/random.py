"""`random`: one random sub-network per update.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §4.1.3 ("random"): each
step samples a single sub-network from the search space and trains only it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_spaces.pruning import PruningSpace
from trainers.strategies.base import Batch, Losses, Strategy, random_sub_network, train_sub_network
from trainers.precision import FP32, MixedPrecision
from trainers.supernet.model import SuperNetwork


@dataclass(frozen=True)
class RandomSubNetwork(Strategy):
    name = "random"

    def step(self, supernet: SuperNetwork, batch: Batch, space: PruningSpace, rng: np.random.Generator,
             progress: float = 0.0, amp: MixedPrecision = FP32) -> Losses:
        loss, _ = train_sub_network(supernet, random_sub_network(space, rng), batch, amp=amp)
        return {"random_0": loss}
