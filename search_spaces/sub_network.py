"""Typed sub-networks of a BERT-like encoder and their exact parameter count.

A pruning search space turns its flat configuration into a `SubNetwork` (which heads and FFN
units each layer keeps); the super-network, extraction and export read only this object, so no
one outside `search_spaces/pruning.py` spells configuration keys.

Semantics (shared by the super-network, the extracted model and the parameter count): a layer
that keeps no head skips its attention block entirely (no output bias, no LayerNorm: the hidden
state passes through unchanged), a layer that keeps no FFN unit skips its FFN block, and a layer
that keeps neither is removed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from search_spaces.base import InvalidArchitectureError


class IllegalSubNetworkError(InvalidArchitectureError):
    """A sub-network that does not fit its encoder (wrong layer count, head or unit out of range)."""


def _positive(name: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class EncoderShape:
    """The sizes of a BERT-like encoder with a sequence-classification head.

    `type_vocab` 0: no token-type table (DistilBERT, MPNet); `embedding_size` > 0: embedding tables
    of that width projected to hidden_size (ELECTRA); `relative_buckets` > 0: a relative position
    bias table of that many buckets per head, shared by the layers (MPNet); `position_offset` > 0:
    the first position a token gets (RoBERTa, XLM-R, MPNet count positions after the padding
    index: pad_token_id + 1), so only max_position - position_offset are usable."""

    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    hidden_size: int = 384
    vocab_size: int = 30522
    max_position: int = 512
    type_vocab: int = 2
    num_labels: int = 2
    embedding_size: int = 0
    relative_buckets: int = 0
    position_offset: int = 0

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_heads", "intermediate_size", "hidden_size", "vocab_size", "max_position", "num_labels"):
            _positive(name, getattr(self, name))
        for name in ("type_vocab", "embedding_size", "relative_buckets", "position_offset"):
            _positive(name, getattr(self, name), minimum=0)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        if self.position_offset >= self.max_position:
            raise ValueError(f"position_offset ({self.position_offset}) must be below max_position ({self.max_position})")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def usable_positions(self) -> int:
        """The longest sequence the position table serves."""
        return self.max_position - self.position_offset


def _indices(field: str, layer: int, values: Iterable[int]) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if any(b <= a for a, b in zip(out, out[1:])) or (out and out[0] < 0):
        raise IllegalSubNetworkError(f"{field}[{layer}] must be distinct non-negative indices in ascending order, got {list(out)[:8]}")
    return out


@dataclass(frozen=True)
class SubNetwork:
    """Per layer, the indices of the attention heads and FFN units kept (ascending)."""

    heads: tuple[tuple[int, ...], ...]
    units: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.heads) != len(self.units):
            raise IllegalSubNetworkError(f"heads and units must list the same number of layers, got {len(self.heads)} and {len(self.units)}")
        object.__setattr__(self, "heads", tuple(_indices("heads", i, h) for i, h in enumerate(self.heads)))
        object.__setattr__(self, "units", tuple(_indices("units", i, u) for i, u in enumerate(self.units)))

    @classmethod
    def first(cls, heads: Sequence[int], units: Sequence[int]) -> SubNetwork:
        """Keep the first `heads[i]` heads and `units[i]` units of layer i (the paper's rule)."""
        return cls(tuple(tuple(range(h)) for h in heads), tuple(tuple(range(u)) for u in units))

    @classmethod
    def full(cls, shape: EncoderShape) -> SubNetwork:
        return cls.first([shape.num_heads] * shape.num_layers, [shape.intermediate_size] * shape.num_layers)

    @property
    def num_layers(self) -> int:
        return len(self.heads)

    @property
    def num_heads(self) -> tuple[int, ...]:
        return tuple(len(h) for h in self.heads)

    @property
    def num_units(self) -> tuple[int, ...]:
        return tuple(len(u) for u in self.units)

    @property
    def layer_mask(self) -> tuple[bool, ...]:
        """True for a layer that computes anything (keeps a head or a unit)."""
        return tuple(bool(h or u) for h, u in zip(self.heads, self.units))

    def fits(self, shape: EncoderShape) -> None:
        """Raise IllegalSubNetworkError unless this sub-network can be cut out of `shape`."""
        if self.num_layers != shape.num_layers:
            raise IllegalSubNetworkError(f"sub-network has {self.num_layers} layers; the encoder has {shape.num_layers}")
        for i, (h, u) in enumerate(zip(self.heads, self.units)):
            if h and h[-1] >= shape.num_heads:
                raise IllegalSubNetworkError(f"layer {i} keeps head {h[-1]}; the encoder has heads 0..{shape.num_heads - 1}")
            if u and u[-1] >= shape.intermediate_size:
                raise IllegalSubNetworkError(f"layer {i} keeps FFN unit {u[-1]}; the encoder has units 0..{shape.intermediate_size - 1}")


def count_params(shape: EncoderShape, sub: SubNetwork) -> dict[str, int]:
    """Exact trainable parameters of the extracted model: total and without the embedding tables.

    The definition of `trainers/efficiency/params.py` (what a measured count gives): embedding =
    the word, position and token-type tables (`nn.Embedding`); non-embedding = everything else,
    the embedding LayerNorm, encoder layers, pooler and classifier included.
    """
    sub.fits(shape)
    d, hid = shape.head_size, shape.hidden_size
    width = shape.embedding_size or hid
    embedding = (shape.vocab_size + shape.max_position + shape.type_vocab) * width + shape.relative_buckets * shape.num_heads
    layers = 2 * width  # the embedding LayerNorm
    if width != hid:
        layers += width * hid + hid  # the embedding projection
    for h, u in zip(sub.num_heads, sub.num_units):
        if h:
            # Q, K, V: (h*d, hid) + bias; output: (hid, h*d) + bias; LayerNorm.
            layers += 3 * (h * d * hid + h * d) + hid * h * d + hid + 2 * hid
        if u:
            # up: (u, hid) + bias; down: (hid, u) + bias; LayerNorm.
            layers += u * hid + u + hid * u + hid + 2 * hid
    head = hid * hid + hid + hid * shape.num_labels + shape.num_labels
    return {"params": embedding + layers + head, "params_non_embedding": layers + head}
