"""SMALL, LAYER, MEDIUM and LARGE structural-pruning spaces of a BERT-like encoder.

Klein et al., "Structural Pruning of Pre-Trained Language Models via Neural Architecture
Search", §3.3 (search spaces) and Appendix B (masks). Each space maps its flat configuration to a
`SubNetwork` (`space.architecture(config)`); heads and units are always the first k of a layer
except in LARGE, where every head and FFN unit has its own binary. LAYER and LARGE sample
uniformly over the parameter count (§3.3: pick a size, then that many random entries), SMALL and
MEDIUM uniformly per dimension as in the paper.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict
from typing import Any, Iterator, Mapping, Sequence, overload

import numpy as np

from search_spaces.base import Config, SearchSpace
from search_spaces.dims import Dim, IntDim
from search_spaces.sub_network import EncoderShape, SubNetwork, count_params


class PruningSpace(SearchSpace):
    """A space of sub-networks of one encoder; defaults are MiniLM-L6 (all-MiniLM-L6-v2)."""

    def __init__(
        self,
        num_layers: int = 6,
        num_heads: int = 12,
        intermediate_size: int = 1536,
        hidden_size: int = 384,
        vocab_size: int = 30522,
        max_position: int = 512,
        type_vocab: int = 2,
        num_labels: int = 2,
        embedding_size: int = 0,
        relative_buckets: int = 0,
        position_offset: int = 0,
    ) -> None:
        self.shape = EncoderShape(
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_size=intermediate_size,
            hidden_size=hidden_size,
            vocab_size=vocab_size,
            max_position=max_position,
            type_vocab=type_vocab,
            num_labels=num_labels,
            embedding_size=embedding_size,
            relative_buckets=relative_buckets,
            position_offset=position_offset,
        )
        self._dims = self._make_dims()

    @property
    def dims(self) -> tuple[Dim, ...]:
        return self._dims

    def options(self) -> dict[str, Any]:
        # The family sizes only when set, so a BERT space's options (and the super-network
        # checkpoint keys hashed from them) are what they were before them.
        return {k: v for k, v in asdict(self.shape).items() if v or k not in ("embedding_size", "relative_buckets", "position_offset")}

    @abstractmethod
    def _make_dims(self) -> tuple[Dim, ...]: ...

    @abstractmethod
    def _architecture(self, config: Mapping[str, Any]) -> SubNetwork:
        """The sub-network of a configuration already checked."""

    def architecture(self, config: Mapping[str, Any]) -> SubNetwork:
        """The typed sub-network a configuration selects (after checking it)."""
        self.check(config)
        return self._architecture(config)

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        return dict(count_params(self.shape, self.architecture(config)))

    def network_key(self, config: Mapping[str, Any]) -> str:
        """The kept heads and units: SMALL's 0 layers with any heads and units, or MEDIUM's layer
        with 0 heads in either order of its dims, are one network."""
        return repr(self.architecture(config))


class SmallSpace(PruningSpace):
    """SMALL: the first `num_layers` layers, each with its first `num_heads` heads and `num_units` units.

    `unit_step` coarsens the FFN dimension to multiples of it (e.g. 128: 12 widths of MiniLM-L6),
    so the whole space can be enumerated (`benchmarks/make_subnet_table.py`).
    """

    name = "small"

    def __init__(
        self,
        num_layers: int = 6,
        num_heads: int = 12,
        intermediate_size: int = 1536,
        hidden_size: int = 384,
        vocab_size: int = 30522,
        max_position: int = 512,
        type_vocab: int = 2,
        num_labels: int = 2,
        unit_step: int = 1,
        embedding_size: int = 0,
        relative_buckets: int = 0,
        position_offset: int = 0,
    ) -> None:
        if not isinstance(unit_step, int) or isinstance(unit_step, bool) or unit_step < 1 or intermediate_size % unit_step:
            raise ValueError(f"small: option 'unit_step' must be a positive divisor of intermediate_size "
                             f"({intermediate_size}), got {unit_step!r}")
        self.unit_step = unit_step
        super().__init__(num_layers, num_heads, intermediate_size, hidden_size, vocab_size, max_position, type_vocab, num_labels,
                         embedding_size, relative_buckets, position_offset)

    def options(self) -> dict[str, Any]:
        # Only a non-default step is spelled, so the options (and the super-network checkpoint
        # keys hashed from them) of a plain SMALL space are what they were before the option.
        return super().options() | ({"unit_step": self.unit_step} if self.unit_step != 1 else {})

    def _make_dims(self) -> tuple[Dim, ...]:
        s, step = self.shape, self.unit_step
        # At least one head and unit, so every member is a standard BERT (a layer count of 0
        # already gives the smallest network).
        return (IntDim("num_layers", 0, s.num_layers), IntDim("num_heads", 1, s.num_heads),
                IntDim("num_units", step, s.intermediate_size, step=step))

    def _architecture(self, config: Mapping[str, Any]) -> SubNetwork:
        n, rest = config["num_layers"], self.shape.num_layers - config["num_layers"]
        return SubNetwork.first([config["num_heads"]] * n + [0] * rest, [config["num_units"]] * n + [0] * rest)


class LayerSpace(PruningSpace):
    """LAYER: one binary per layer; a removed layer drops its attention and FFN blocks."""

    name = "layer"

    def _make_dims(self) -> tuple[Dim, ...]:
        return tuple(IntDim(f"layer_{i}", 0, 1) for i in range(self.shape.num_layers))

    def _architecture(self, config: Mapping[str, Any]) -> SubNetwork:
        keep = [config[d.name] for d in self.dims]
        return SubNetwork.first([self.shape.num_heads * k for k in keep], [self.shape.intermediate_size * k for k in keep])

    def sample(self, rng: np.random.Generator) -> Config:
        # Every layer has the same size, so a uniform number of kept layers is uniform in params.
        return uniform_bits([d.name for d in self.dims], int(rng.integers(0, len(self.dims) + 1)), rng)


class MediumSpace(PruningSpace):
    """MEDIUM: per layer, the first `heads_i` heads and first `units_i` FFN units (0 skips the block)."""

    name = "medium"

    def _make_dims(self) -> tuple[Dim, ...]:
        s = self.shape
        heads = tuple(IntDim(f"heads_{i}", 0, s.num_heads) for i in range(s.num_layers))
        units = tuple(IntDim(f"units_{i}", 0, s.intermediate_size) for i in range(s.num_layers))
        return heads + units

    def _architecture(self, config: Mapping[str, Any]) -> SubNetwork:
        layers = range(self.shape.num_layers)
        return SubNetwork.first([config[f"heads_{i}"] for i in layers], [config[f"units_{i}"] for i in layers])


class LargeSpace(PruningSpace):
    """LARGE: one binary for every head (`head_<layer>_<head>`) and FFN unit (`unit_<layer>_<unit>`)."""

    name = "large"

    def _make_dims(self) -> tuple[Dim, ...]:
        s = self.shape
        heads = [IntDim(f"head_{i}_{h}", 0, 1) for i in range(s.num_layers) for h in range(s.num_heads)]
        units = [IntDim(f"unit_{i}_{u}", 0, 1) for i in range(s.num_layers) for u in range(s.intermediate_size)]
        return tuple(heads + units)

    def _architecture(self, config: Mapping[str, Any]) -> SubNetwork:
        s = self.shape
        heads = tuple(tuple(h for h in range(s.num_heads) if config[f"head_{i}_{h}"]) for i in range(s.num_layers))
        units = tuple(tuple(u for u in range(s.intermediate_size) if config[f"unit_{i}_{u}"]) for i in range(s.num_layers))
        return SubNetwork(heads, units)

    def sample(self, rng: np.random.Generator) -> Config:
        """Uniform over the parameter count: draw a target size, then switch on random entries
        until it is reached (the paper's "sample k, set k random entries", weighted by size so
        that heads and units, which differ ~100x in size, count for what they cost)."""
        s = self.shape
        head_cost = 4 * s.head_size * s.hidden_size + 3 * s.head_size
        unit_cost = 2 * s.hidden_size + 1
        names = [d.name for d in self.dims]
        cost = np.where(np.char.startswith(np.array(names), "head_"), head_cost, unit_cost)
        order = rng.permutation(len(names))
        target = rng.uniform(0.0, float(cost.sum()))
        k = int(np.searchsorted(np.cumsum(cost[order]), target, side="right"))
        return uniform_bits(names, k, rng, order)

    def neighbours(self, config: Mapping[str, Any]) -> Sequence[Config]:  # type: ignore[override]
        """All single-bit flips, built on access: MiniLM-L6 has 9,288 of them, each a 9,288-key config."""
        self.check(config)
        return BitFlips(dict(config), [d.name for d in self.dims])


def uniform_bits(names: list[str], k: int, rng: np.random.Generator, order: np.ndarray | None = None) -> Config:
    """A binary configuration with exactly `k` ones, at `order[:k]` (a random order by default)."""
    order = rng.permutation(len(names)) if order is None else order
    config = dict.fromkeys(names, 0)
    for i in order[:k]:
        config[names[int(i)]] = 1
    return config


class BitFlips(Sequence[Config]):
    """The configurations one bit away from `config`, in dimension order, made on demand."""

    def __init__(self, config: Config, names: list[str]) -> None:
        self._config, self._names = config, names

    def __len__(self) -> int:
        return len(self._names)

    @overload
    def __getitem__(self, i: int) -> Config: ...
    @overload
    def __getitem__(self, i: slice) -> list[Config]: ...
    def __getitem__(self, i: int | slice) -> Config | list[Config]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        name = self._names[i]
        return {**self._config, name: 1 - self._config[name]}

    def __iter__(self) -> Iterator[Config]:
        return (self[i] for i in range(len(self)))
