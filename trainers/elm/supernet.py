"""The ELM super-network: single-path one-shot (SPOS, Guo et al. 2020) over six blocks per layer.

ELM §III-A: every layer holds all six candidate blocks (`trainers/elm/blocks.py`); a training step
samples one block per layer uniformly and trains only that path, at the block's grown FFN width with
all heads (what the `elm` space searches by default); `PathSampling` also draws widths and head
counts, for a space with elastic ones. Afterwards any path is evaluated on the shared weights. The super-network contract: `set_sub_network(arch)`,
`reset_super_network()`, `extract_sub_network(arch)` -> a standalone `ElmModel` with copies of the
path's weights (the FFN sliced to the chosen width). Embeddings are shared by every path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from search_spaces.base import InvalidArchitectureError
from search_spaces.elm import BLOCK_KINDS, ElmArch, ElmShape, LayerChoice
from trainers.autodistill.student import padding_bias
from trainers.elm.blocks import Block, BlockOutput, Embeddings


@dataclass(frozen=True)
class PathSampling:
    """What a SPOS step draws per layer besides the block (the `elm` space's option `elastic`).

    The paper draws blocks only: each at its grown width with all heads (the defaults)."""

    #: draw the FFN width uniformly from the multiples of `ffn_step` up to the block's grown width.
    ffn_step: int | None = None
    #: draw the head count uniformly from these (those dividing the block's attention width).
    head_counts: tuple[int, ...] | None = None

    @property
    def elastic(self) -> tuple[str, ...]:
        """The `elm` space's names of what is drawn."""
        return (("ffn",) if self.ffn_step else ()) + (("heads",) if self.head_counts else ())


@dataclass(frozen=True)
class ElmOutput:
    last_hidden_state: Tensor  # (B, S, hidden)
    #: one entry per layer, in order.
    layers: tuple[BlockOutput, ...]

    @property
    def hidden_states(self) -> tuple[Tensor, ...]:
        return tuple(layer.hidden for layer in self.layers)

    @property
    def attentions(self) -> tuple[Tensor, ...]:
        return tuple(layer.attention for layer in self.layers)


def run_layers(embeddings: Embeddings, steps: Sequence[tuple[Block, int | None, int | None]], input_ids: Tensor,
               attention_mask: Tensor | None, token_type_ids: Tensor | None) -> ElmOutput:
    """Embeddings, then each (block, units, heads) in turn."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    x = embeddings(input_ids, token_type_ids)
    bias = padding_bias(attention_mask, x.dtype)
    outputs = []
    for block, units, heads in steps:
        out = block(x, bias, units, heads)
        outputs.append(out)
        x = out.hidden
    return ElmOutput(last_hidden_state=x, layers=tuple(outputs))


class ElmModel(nn.Module):
    """A standalone ELM network: the embeddings and one block per layer at the architecture's sizes."""

    def __init__(self, arch: ElmArch) -> None:
        super().__init__()
        self.arch = arch
        self.embeddings = Embeddings(arch.shape)
        self.blocks = nn.ModuleList(Block(arch.shape, c.kind, c.ffn) for c in arch.layers)
        for block, c in zip(self.blocks, arch.layers):
            block.attention.num_heads = c.heads

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> ElmOutput:
        return run_layers(self.embeddings, [(b, None, None) for b in self.blocks], input_ids, attention_mask,
                          token_type_ids)


class ElmSuperNet(nn.Module):
    """All six blocks of every layer; `widths[i][k]` is the FFN width of layer i's block k."""

    def __init__(self, shape: ElmShape, widths: Sequence[Sequence[int]]) -> None:
        super().__init__()
        if len(widths) != shape.num_layers or any(len(row) != len(BLOCK_KINDS) for row in widths):
            raise ValueError(f"widths must be {shape.num_layers} rows of {len(BLOCK_KINDS)} FFN widths")
        self.shape = shape
        self.embeddings = Embeddings(shape)
        self.layers = nn.ModuleList(
            nn.ModuleList(Block(shape, kind, units) for kind, units in zip(BLOCK_KINDS, row)) for row in widths
        )
        self._active = self.full_path(BLOCK_KINDS[0])

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def widths(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(block.ffn.units for block in row) for row in self.layers)  # type: ignore[union-attr]

    def block(self, layer: int, kind: str) -> Block:
        return self.layers[layer][BLOCK_KINDS.index(kind)]  # type: ignore[index,return-value]

    def full_path(self, kind: str) -> ElmArch:
        """Every layer on block `kind` at its full width and head count."""
        return ElmArch(self.shape, tuple(LayerChoice(kind, self.block(i, kind).ffn.units, self.shape.num_heads)
                                         for i in range(self.shape.num_layers)))

    # ---- SPOS sampling ------------------------------------------------------------------------
    def sample_path(self, generator: torch.Generator, sampling: PathSampling = PathSampling()) -> ElmArch:
        """One block per layer, uniformly (§III-A), at the block's full width and all heads unless
        `sampling` draws them too."""
        kinds = torch.randint(len(BLOCK_KINDS), (self.shape.num_layers,), generator=generator).tolist()
        layers = []
        for i, k in enumerate(kinds):
            kind = BLOCK_KINDS[k]
            units, heads = self.block(i, kind).ffn.units, self.shape.num_heads
            if sampling.ffn_step:
                units = sampling.ffn_step * int(torch.randint(1, units // sampling.ffn_step + 1, (1,),
                                                              generator=generator))
            if sampling.head_counts:
                fits = [h for h in sampling.head_counts if self.shape.attention_width(kind) % h == 0]
                heads = fits[int(torch.randint(len(fits), (1,), generator=generator))]
            layers.append(LayerChoice(kind, units, heads))
        return ElmArch(self.shape, tuple(layers))

    # ---- the super-network contract -------------------------------------------------------------
    @property
    def sub_network(self) -> ElmArch:
        return self._active

    def check(self, arch: ElmArch) -> None:
        """Raise InvalidArchitectureError if `arch` is not a path of this super-network."""
        if not isinstance(arch, ElmArch):
            raise InvalidArchitectureError(f"elm: a sub-network is an ElmArch (space.architecture(config)), "
                                           f"got {type(arch).__name__}")
        if arch.shape != self.shape:
            raise InvalidArchitectureError(f"elm: the architecture's shape {arch.shape} is not the super-network's "
                                           f"{self.shape}")
        for i, c in enumerate(arch.layers):
            units = self.block(i, c.kind).ffn.units
            if c.ffn > units:
                raise InvalidArchitectureError(f"elm: ffn_{i}={c.ffn} exceeds the {c.kind} block's {units} units")

    def set_sub_network(self, arch: ElmArch) -> None:
        self.check(arch)
        self._active = arch

    def reset_super_network(self) -> None:
        self._active = self.full_path(BLOCK_KINDS[0])

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                arch: ElmArch | None = None) -> ElmOutput:
        """Run `arch` (default: the active sub-network) on the shared weights."""
        path = self._active if arch is None else arch
        if arch is not None:
            self.check(arch)
        steps = [(self.block(i, c.kind), c.ffn, c.heads) for i, c in enumerate(path.layers)]
        return run_layers(self.embeddings, steps, input_ids, attention_mask, token_type_ids)

    @torch.no_grad()
    def extract_sub_network(self, arch: ElmArch | None = None) -> ElmModel:
        """A standalone ElmModel holding copies of the path's weights (default: the active one)."""
        arch = self._active if arch is None else arch
        self.check(arch)
        model = ElmModel(arch).to(self.embeddings.word.weight.device)
        model.embeddings.load_state_dict(self.embeddings.state_dict())
        model.blocks = nn.ModuleList(self.block(i, c.kind).extract(c.ffn, c.heads) for i, c in enumerate(arch.layers))
        return model.train(self.training)
