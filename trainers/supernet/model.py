"""A pre-trained encoder classifier (BERT, RoBERTa, ...: `families/`) as a weight-sharing super-network.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2: the fine-tuned
network holds every sub-network of a pruning space; a sub-network is evaluated on the shared
weights. Unlike the paper's masks, the selected heads / units / layers are sliced out, so a small
sub-network really computes less, and `extract_sub_network` gives it as a standalone dense model.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from search_spaces.sub_network import IllegalSubNetworkError, SubNetwork
from trainers.supernet.checkpoint import CheckpointError, read_config, read_weights
from trainers.supernet.families import encoder_shape
from trainers.supernet.slicing import SlicedLayer
from trainers.supernet.standalone import CompactBert, CompactBertConfig, head_index


class SuperNetwork(CompactBert):
    """forward(input_ids, attention_mask, token_type_ids) -> logits of the active sub-network;
    `encode` adds the hidden states (after the embeddings and each of the L layers; a skipped
    layer repeats its input) for layer-wise distillation."""

    def __init__(self, config: CompactBertConfig) -> None:
        if len(set(config.heads)) > 1 or len(set(config.units)) > 1:
            raise ValueError(f"a super-network needs equal layers, got heads {config.heads} and units {config.units}")
        super().__init__(config, layer=SlicedLayer)
        self.shape = encoder_shape(config)
        self._active = SubNetwork.full(self.shape)

    @classmethod
    def from_pretrained(cls, directory: str | Path, num_labels: int | None = None, seed: int = 0,
                        pooling: str = "cls") -> SuperNetwork:
        """The super-network of a Hugging Face checkpoint directory (safetensors) of a supported family.

        A checkpoint without a classifier (a bare encoder) gets a new one, initialised as BERT
        does (normal(0, 0.02), zero bias) from `seed`; so does one whose label count differs, and
        so does a head's dense layer a bare encoder lacks (RoBERTa's classifier.dense).
        `pooling` is what the pooler reads (`CompactBertConfig.pooling`).
        """
        config = replace(read_config(directory, num_labels), pooling=pooling)
        with torch.device("meta"):
            model = cls(config)
        state = read_weights(directory)
        own = model.state_dict()
        gen = torch.Generator().manual_seed(seed)
        for part in ("head.pooler.", "head.classifier."):
            if any(k not in state or state[k].shape != own[k].shape for k in own if k.startswith(part)):
                state[f"{part}weight"] = torch.randn(own[f"{part}weight"].shape, generator=gen) * 0.02
                state[f"{part}bias"] = torch.zeros(own[f"{part}bias"].shape)
        missing = sorted(set(own) - set(state))
        if missing:
            raise CheckpointError(f"{directory}: checkpoint lacks {len(missing)} tensors the config needs, e.g. {missing[0]!r}")
        wrong = [k for k in own if state[k].shape != own[k].shape]
        if wrong:
            raise CheckpointError(f"{directory}: {wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}, config needs {tuple(own[wrong[0]].shape)}")
        model.load_state_dict({k: state[k].float() for k in own}, assign=True)
        model.reset_super_network()
        return model.eval()

    # ---- the super-network contract ---------------------------------------------------------
    @property
    def sub_network(self) -> SubNetwork:
        """The active sub-network."""
        return self._active

    def set_sub_network(self, sub: SubNetwork) -> None:
        """Compute with `sub` from now on; raises IllegalSubNetworkError if it does not fit."""
        if not isinstance(sub, SubNetwork):
            raise IllegalSubNetworkError(f"set_sub_network needs a SubNetwork (space.architecture(config)), got {type(sub).__name__}")
        sub.fits(self.shape)
        for layer, heads, units in zip(self.layers, sub.heads, sub.units):
            layer.select(heads, units)
        self._active = sub

    def bias_heads(self, layer: int) -> slice | list[int]:
        """The active heads of layer `layer` as columns of the relative position bias."""
        return head_index(self._active.heads[layer])

    def reset_super_network(self) -> None:
        """Compute with every head, unit and layer again."""
        self.set_sub_network(SubNetwork.full(self.shape))

    def extract_sub_network(self, sub: SubNetwork | None = None) -> CompactBert:
        """A standalone dense model holding copies of `sub`'s weights (default: the active one).

        Layers that keep neither heads nor units are dropped; the model is in the super-network's
        train / eval mode.
        """
        sub = self._active if sub is None else sub
        if not isinstance(sub, SubNetwork):
            raise IllegalSubNetworkError(f"extract_sub_network needs a SubNetwork, got {type(sub).__name__}")
        sub.fits(self.shape)
        kept = [i for i, on in enumerate(sub.layer_mask) if on]
        config = replace(self.config, heads=tuple(sub.num_heads[i] for i in kept), units=tuple(sub.num_units[i] for i in kept),
                         relative_heads=tuple(sub.heads[i] for i in kept) if self.config.relative_buckets else ())
        state = {f"{k}": v.detach().clone() for k, v in self.state_dict().items() if not k.startswith("layers.")}
        for j, i in enumerate(kept):
            layer = self.layers[i]
            if sub.heads[i]:
                state |= layer.attention.sliced_state(f"layers.{j}.attention.", sub.heads[i])
            if sub.units[i]:
                state |= layer.ffn.sliced_state(f"layers.{j}.ffn.", sub.units[i])
        with torch.device("meta"):
            model = CompactBert(config)
        model.load_state_dict(state, strict=True, assign=True)
        return model.train(self.training)
