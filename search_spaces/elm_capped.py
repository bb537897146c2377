"""The largest member of an ELM space under a binding parameter cap (ELM Appendix A's ceilings).

Each layer contributes one block size; the member with the most parameters under the cap is an
exact subset-sum over the layers: which totals of "parameters above each layer's smallest block"
the first i layers can reach, then walk back from the largest reachable total to pick the genes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from search_spaces.base import Config

if TYPE_CHECKING:
    from search_spaces.elm import ElmSpace

#: a layer's gene: (block kind, FFN units, heads).
Gene = tuple[str, int, int]


def sized_genes(space: ElmSpace, i: int) -> list[tuple[int, Gene]]:
    """(block parameters, gene) of layer i, one gene per (block, width), with its most heads (one gene
    per block when the space searches blocks only)."""
    from search_spaces.elm import block_params

    best: dict[tuple[str, int], Gene] = {}
    for kind, units, heads in space.layer_options(i):
        if (kind, units) not in best or heads > best[(kind, units)][2]:
            best[(kind, units)] = (kind, units, heads)
    return [(block_params(space.shape, k, u), gene) for (k, u), gene in best.items()]


def largest_under_cap(space: ElmSpace, cap: float, smallest: Config) -> Config:
    """The member of `space` with the most capped parameters that is at most `cap`; `smallest` is the
    space's smallest member, which meets the cap (the space refuses caps below it)."""
    layers = space.shape.num_layers
    genes = [sized_genes(space, i) for i in range(layers)]
    lows = [min(size for size, _ in layer) for layer in genes]
    span = int(cap) - space.capped_size(smallest)
    # reach[i][s]: the first i layers can spend exactly s parameters above their smallest blocks.
    reach = [np.zeros(span + 1, dtype=bool)]
    reach[0][0] = True
    for layer, low in zip(genes, lows):
        prev, nxt = reach[-1], np.zeros(span + 1, dtype=bool)
        for extra in {size - low for size, _ in layer}:
            if extra <= span:
                nxt[extra:] |= prev[: span + 1 - extra]
        reach.append(nxt)
    budget = int(np.flatnonzero(reach[-1])[-1])
    config: Config = {}
    for i in reversed(range(layers)):
        size, gene = next((size, gene) for size, gene in genes[i]
                          if size - lows[i] <= budget and reach[i][budget - (size - lows[i])])
        config.update(space.gene_config(i, gene))
        budget -= size - lows[i]
    return {d.name: config[d.name] for d in space.dims}
