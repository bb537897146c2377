"""The interface of a super-network training strategy, and the one update every strategy is made of.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.1: fine-tuning the
pre-trained network as a super-network updates, in each SGD step, one or several sub-networks
rather than all weights jointly, so sub-networks do not co-adapt. A strategy decides which
sub-networks a step trains and with which loss; the training loop (trainers/supernet/train.py)
owns the optimiser. `step` accumulates gradients (one backward per sub-network, so memory stays
that of one forward) and leaves the super-network reset to its full size.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces.pruning import PruningSpace
from search_spaces.sub_network import SubNetwork
from trainers.distill.losses import logit_kl
from trainers.precision import FP32, MixedPrecision
from trainers.supernet.model import SuperNetwork

#: a batch from `trainers.encode.Encoded.loader`: input_ids (B, S), attention_mask (B, S), labels (B,).
Batch = Mapping[str, torch.Tensor]
#: loss values of one step, by sub-network role ("largest", "smallest", "random_0", ...).
Losses = dict[str, float]


@dataclass(frozen=True)
class Strategy(ABC):
    """One super-network update rule; subclasses are frozen dataclasses of their options."""

    #: the name studies use (`strategy: sandwich`).
    name = ""

    @abstractmethod
    def step(self, supernet: SuperNetwork, batch: Batch, space: PruningSpace, rng: np.random.Generator,
             progress: float = 0.0, amp: MixedPrecision = FP32) -> Losses:
        """Accumulate the gradients of one update into `supernet`, in `amp`'s precision; `progress` in
        [0, 1] is the fraction of training done (schedules use it). Returns the loss of each sub-network
        trained."""


def reads_input(sub: SubNetwork) -> bool:
    """Whether `sub` keeps an attention head, the only block that mixes tokens. A head pooling the
    first token ([CLS]) sees the others only through attention: without one the logits are the same
    for every input. A mean-pooling head still sees a bag of embeddings, but in the quickstart that
    network could not follow the distillation targets (its loss rose to 2.2 against 1.5 for one
    layer with one head) and 28 of 33 trials with a layer scored above 0.60 against 32 of 33 when
    it was left out (README, quickstart): it is not trained either."""
    return any(sub.heads)


def random_sub_network(space: PruningSpace, rng: np.random.Generator) -> SubNetwork:
    """A sub-network drawn by the space's own sampler (uniform over parameters for LAYER / LARGE),
    redrawn while it cannot read its input: such a constant network learns only the label prior,
    and its gradients would push the shared classifier towards predicting the prior everywhere."""
    for _ in range(1000):
        sub = space.architecture(space.sample(rng))
        if reads_input(sub):
            return sub
    return lower_bound(space)


def lower_bound(space: PruningSpace) -> SubNetwork:
    """The smallest sub-network that reads its input: the sandwich rule's lower bound.

    The paper's lower bound (§3.2.1) removes every layer; with a [CLS]-pooling head that leaves a
    constant function of the input (`reads_input`), and training it with the others only drags the
    shared classifier towards the label prior. Here the space's smallest configuration gets the
    first dimension whose next step adds a head raised by that step (SMALL: one layer with one
    head and the fewest units; LAYER: the first layer; MEDIUM: one head in the first layer;
    LARGE: the first head of the first layer).
    """
    smallest = space.smallest()
    sub = space.architecture(smallest)
    if reads_input(sub):
        return sub
    for dim in space.dims:
        step = getattr(dim, "step", 1)
        value = smallest[dim.name] + step if isinstance(smallest[dim.name], int) else None
        if value is None or not dim.contains(value):
            continue
        config = {**smallest, dim.name: value}
        if space.is_valid(config) and reads_input(space.architecture(config)):
            return space.architecture(config)
    raise ValueError(f"{space.name}: no sub-network one step above the smallest keeps an attention head")


def train_sub_network(supernet: SuperNetwork, sub: SubNetwork, batch: Batch, teacher: torch.Tensor | None = None,
                      temperature: float = 1.0, amp: MixedPrecision = FP32) -> tuple[float, torch.Tensor]:
    """Forward `sub` on `batch` under `amp`'s autocast, backward its loss; returns (loss, detached logits (B, C)).

    The loss is cross-entropy on the labels, plus, given the super-network's logits `teacher`, the
    in-place distillation term KL(softmax(teacher / T) || softmax(logits / T)) * T^2 (§3.2.1, Eq. 2).
    """
    supernet.set_sub_network(sub)
    try:
        with amp.autocast():
            logits = supernet(batch["input_ids"], batch["attention_mask"])  # (B, C)
            loss = F.cross_entropy(logits, batch["labels"])
            if teacher is not None:
                loss = loss + logit_kl(teacher, logits, temperature)
        amp.backward(loss)
    finally:
        supernet.reset_super_network()
    return float(loss.detach()), logits.detach()


def check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"option 'temperature' must be > 0, got {temperature}")


def check_num_random(num_random: int) -> None:
    if num_random < 0:
        raise ValueError(f"option 'num_random' must be >= 0, got {num_random}")
