"""`standard`: plain fine-tuning of all weights (the full network only).

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §4.1.3 ("standard"):
the baseline every weight-sharing strategy is compared with; sub-networks are never trained.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_spaces.pruning import PruningSpace
from trainers.strategies.base import Batch, Losses, Strategy, train_sub_network
from trainers.precision import FP32, MixedPrecision
from trainers.supernet.model import SuperNetwork


@dataclass(frozen=True)
class Standard(Strategy):
    name = "standard"

    def step(self, supernet: SuperNetwork, batch: Batch, space: PruningSpace, rng: np.random.Generator,
             progress: float = 0.0, amp: MixedPrecision = FP32) -> Losses:
        loss, _ = train_sub_network(supernet, space.architecture(space.largest()), batch, amp=amp)
        return {"largest": loss}
