"""`inplace_kd`: the full network on the labels, a random sub-network distilled from it in place.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.1 (Eq. 2) and §4.1.3
("inplace-kd"), after Yu et al. (2019, "Universally Slimmable Networks"): the full network is
trained with cross-entropy; its logits, free from that forward, are the soft targets of a random
sub-network, whose loss is KL(softmax(z_full / T) || softmax(z_sub / T)) * T^2 plus cross-entropy.
Appendix A uses T = 10.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_spaces.pruning import PruningSpace
from trainers.strategies.base import Batch, Losses, Strategy, check_temperature, random_sub_network, train_sub_network
from trainers.precision import FP32, MixedPrecision
from trainers.supernet.model import SuperNetwork


@dataclass(frozen=True)
class InplaceKD(Strategy):
    name = "inplace_kd"
    temperature: float = 10.0

    def __post_init__(self) -> None:
        check_temperature(self.temperature)

    def step(self, supernet: SuperNetwork, batch: Batch, space: PruningSpace, rng: np.random.Generator,
             progress: float = 0.0, amp: MixedPrecision = FP32) -> Losses:
        loss, teacher = train_sub_network(supernet, space.architecture(space.largest()), batch, amp=amp)
        kd, _ = train_sub_network(supernet, random_sub_network(space, rng), batch, teacher, self.temperature, amp=amp)
        return {"largest": loss, "random_0": kd}
