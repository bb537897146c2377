"""`random_linear`: a random sub-network with a probability that grows linearly, else the full network.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §4.1.3 ("random-linear"),
after Bender et al. (2018), "Understanding and Simplifying One-Shot Architecture Search": each step
trains a random sub-network with probability p and the full network with probability 1 - p, p
rising linearly from `start` to `end` over training, so early steps fine-tune the whole model and
later ones spread the updates over the sub-networks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_spaces.pruning import PruningSpace
from trainers.strategies.base import Batch, Losses, Strategy, random_sub_network, train_sub_network
from trainers.precision import FP32, MixedPrecision
from trainers.supernet.model import SuperNetwork


@dataclass(frozen=True)
class RandomLinear(Strategy):
    name = "random_linear"
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        for field in ("start", "end"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ValueError(f"option '{field}' must be a probability in [0, 1], got {getattr(self, field)}")

    def probability(self, progress: float) -> float:
        """The chance of training a random sub-network when `progress` of training is done."""
        return self.start + (self.end - self.start) * min(max(progress, 0.0), 1.0)

    def step(self, supernet: SuperNetwork, batch: Batch, space: PruningSpace, rng: np.random.Generator,
             progress: float = 0.0, amp: MixedPrecision = FP32) -> Losses:
        if rng.random() < self.probability(progress):
            loss, _ = train_sub_network(supernet, random_sub_network(space, rng), batch, amp=amp)
            return {"random_0": loss}
        loss, _ = train_sub_network(supernet, space.architecture(space.largest()), batch, amp=amp)
        return {"largest": loss}
