"""The ELM search space (Elastic Architecture Search for Efficient Language Models, §III-A, §III-B).

Every layer picks one of six blocks — a BERT block or a MobileBERT (bottleneck) block, each with no
weight sharing, query = value shared, or key = value shared in its attention. By default the genes are
these block choices only (`block_i`), the paper's space: the super-network grows each block's FFN
during training (PCA-guided, `trainers/elm/pca_growth.py`) and SPOS trains every block at its grown
width with all heads, so a candidate uses exactly that (`ffn_widths`, or `checkpoint` to read them
from a saved super-network); head counts are set after the search by CKA (Algorithm 1,
`trainers/elm/cka_heads.py`), starting from all heads. Scoring a width or head count the
super-network never ran would rank configurations by weights that were not trained for them.

`elastic` adds per-layer genes the search may vary besides the block: "ffn" (`ffn_i`, the first
units of the chosen block, in steps of `ffn_step`, up to its grown width) and "heads" (`heads_i`, a
count from `head_counts` that divides the block's attention width; it moves no parameters). Both
need a super-network that sampled them during its SPOS training: `lmnas run` trains it so when the
space asks for them, and a space read from a checkpoint trained without them is refused. An
optional parameter cap (`max_params`) bounds every member, as the paper's evolutionary
search does (Appendix A: 15.7M / 10M / 5M for ELM-Small / Tiny / Micro); `cap_metric` says whether it
counts every parameter or all but the embedding tables (a 30522 x 528 table alone is 16.1M, so the
paper's caps cannot include it).

The architectures themselves and their exact parameter counts are in `search_spaces/elm_arch.py`.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from search_spaces.base import Config, InvalidArchitectureError, SearchSpace, to_python
from search_spaces.dims import ChoiceDim, Dim, IntDim
# The architectures and their sizes, also named through the space by its callers.
from search_spaces.elm_arch import (  # noqa: F401
    BLOCK_KINDS, ElmArch, ElmShape, LayerChoice, block_params, count_params, is_mobile)
from search_spaces.elm_capped import Gene, largest_under_cap

#: the name of the file in a super-network checkpoint folder that holds its shape and widths.
CHECKPOINT_META = "elm.json"
#: the per-layer sizes a search may vary besides the block (option `elastic`).
ELASTIC_DIMS: tuple[str, ...] = ("ffn", "heads")


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The shape and widths a super-network checkpoint folder records (see trainers/elm/checkpoint.py)."""
    meta = Path(path) / CHECKPOINT_META
    if not meta.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is not an ELM super-network folder (no {CHECKPOINT_META})")
    return json.loads(meta.read_text())


def trained_elastic(meta: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """(the elastic sizes a checkpoint's SPOS training sampled, the head counts it sampled or None)."""
    counts = meta.get("head_counts")
    return tuple(meta.get("elastic", ())), (tuple(counts) if counts is not None else None)


class ElmSpace(SearchSpace):
    """Per layer `block_i` (one of BLOCK_KINDS); with `elastic` also `ffn_i` (multiples of `ffn_step`)
    and `heads_i`.

    `ffn_widths[i][k]` is the current FFN width of layer i's block k in the super-network (default:
    every block at `ffn_step`, the width training starts from): the width a layer on that block uses,
    or with elastic "ffn" the most `ffn_i` may be. `head_counts` lists the head counts elastic "heads"
    allows (default: every count up to `num_heads` that divides some block's attention width); without
    it every layer uses all `num_heads`.
    """

    name = "elm"

    def __init__(
        self,
        num_layers: int = 6,
        hidden_size: int = 192,
        num_heads: int = 12,
        inner_size: int | None = None,
        vocab_size: int = 30522,
        max_positions: int = 512,
        type_vocab_size: int = 2,
        ffn_step: int | None = None,
        ffn_widths: Sequence[Sequence[int]] | None = None,
        head_counts: Sequence[int] | None = None,
        max_params: float | None = None,
        cap_metric: str = "params",
        checkpoint: str | None = None,
        elastic: Sequence[str] = (),
    ) -> None:
        self.checkpoint = checkpoint
        self.elastic = self._elastic(elastic)
        trained_counts: tuple[int, ...] | None = None
        if checkpoint is not None:
            meta = read_checkpoint_meta(checkpoint)
            trained, trained_counts = trained_elastic(meta)
            untrained = [d for d in self.elastic if d not in trained]
            if untrained:
                raise ValueError(f"elastic {untrained} needs a super-network that sampled them in SPOS training; "
                                 f"{checkpoint} was trained with elastic {list(trained)}: drop them or train one with "
                                 f"this space (leave the trainer's checkpoint empty)")
            num_layers, hidden_size, num_heads = meta["num_layers"], meta["hidden_size"], meta["num_heads"]
            inner_size, vocab_size = meta["inner_size"], meta["vocab_size"]
            max_positions, type_vocab_size = meta["max_positions"], meta["type_vocab_size"]
            ffn_step, ffn_widths = meta["ffn_step"], meta["ffn_widths"]
        inner = inner_size if inner_size is not None else max(1, hidden_size // 4)
        try:
            self.shape = ElmShape(num_layers, hidden_size, num_heads, inner, vocab_size, max_positions, type_vocab_size)
        except InvalidArchitectureError as e:
            raise ValueError(str(e).removeprefix("elm: ")) from None
        self.ffn_step = ffn_step if ffn_step is not None else max(1, hidden_size // 4)
        if not isinstance(self.ffn_step, int) or self.ffn_step < 1:
            raise ValueError(f"ffn_step must be a positive integer, got {self.ffn_step!r}")
        self.ffn_widths = self._widths(ffn_widths)
        if head_counts is None and "heads" in self.elastic and trained_counts is not None:
            head_counts = trained_counts
        self.head_counts = self._head_counts(head_counts)
        if trained_counts is not None and "heads" in self.elastic and not set(self.head_counts) <= set(trained_counts):
            raise ValueError(f"head_counts {list(self.head_counts)} go beyond the {list(trained_counts)} the "
                             f"super-network {checkpoint} sampled in training")
        if "heads" not in self.elastic:
            widths = sorted({self.shape.attention_width(k) for k in BLOCK_KINDS})
            if any(w % self.shape.num_heads for w in widths):
                raise ValueError(f"num_heads={self.shape.num_heads} must divide every attention width {widths} "
                                 f"(every layer uses all heads unless elastic includes 'heads')")
        if max_params is not None and (isinstance(max_params, bool) or not isinstance(max_params, (int, float))
                                       or max_params <= 0):
            raise ValueError(f"max_params must be a positive number or null, got {max_params!r}")
        self.max_params = max_params
        if cap_metric not in ("params", "params_non_embedding"):
            raise ValueError(f"cap_metric must be 'params' or 'params_non_embedding', got {cap_metric!r}")
        self.cap_metric = cap_metric
        self._dims = self._make_dims()
        if max_params is not None:
            least = self.capped_size(self._extreme(smallest=True))
            if least > max_params:
                raise ValueError(f"max_params={max_params:g} is below the smallest architecture of this space "
                                 f"({least} {cap_metric}): raise the cap or shrink the space")

    # ---- construction -----------------------------------------------------------------------
    @staticmethod
    def _elastic(given: Sequence[str]) -> tuple[str, ...]:
        names = [given] if isinstance(given, str) else list(given) if isinstance(given, (list, tuple)) else None
        if names is None or any(n not in ELASTIC_DIMS for n in names):
            raise ValueError(f"elastic must be a list drawn from {list(ELASTIC_DIMS)} (or empty: blocks only), "
                             f"got {given!r}")
        return tuple(d for d in ELASTIC_DIMS if d in names)

    def _widths(self, given: Sequence[Sequence[int]] | None) -> tuple[tuple[int, ...], ...]:
        n, step = self.shape.num_layers, self.ffn_step
        if given is None:
            return tuple((step,) * len(BLOCK_KINDS) for _ in range(n))
        rows = [list(r) for r in given] if isinstance(given, (list, tuple)) else []
        if len(rows) != n or any(len(r) != len(BLOCK_KINDS) for r in rows):
            raise ValueError(f"ffn_widths must be {n} lists (one per layer) of {len(BLOCK_KINDS)} widths "
                             f"(one per block, in the order {list(BLOCK_KINDS)})")
        for i, row in enumerate(rows):
            for kind, w in zip(BLOCK_KINDS, row):
                if not isinstance(w, int) or isinstance(w, bool) or w < step or w % step:
                    raise ValueError(f"ffn_widths[{i}] {kind}={w!r} must be a positive multiple of ffn_step={step}")
        return tuple(tuple(r) for r in rows)

    def _head_counts(self, given: Sequence[int] | None) -> tuple[int, ...]:
        widths = {self.shape.attention_width(k) for k in BLOCK_KINDS}
        usable = [h for h in range(1, self.shape.num_heads + 1) if any(w % h == 0 for w in widths)]
        if given is None:
            return tuple(usable)
        counts = tuple(sorted(set(given))) if isinstance(given, (list, tuple)) else ()
        if not counts or any(h not in usable for h in counts):
            raise ValueError(f"head_counts must be a non-empty list drawn from {usable} (counts up to num_heads that "
                             f"divide an attention width), got {given!r}")
        return counts

    def _make_dims(self) -> tuple[Dim, ...]:
        dims: list[Dim] = []
        for i, row in enumerate(self.ffn_widths):
            dims.append(ChoiceDim(f"block_{i}", BLOCK_KINDS))
            if "ffn" in self.elastic:
                dims.append(IntDim(f"ffn_{i}", self.ffn_step, max(row), self.ffn_step))
            if "heads" in self.elastic:
                dims.append(ChoiceDim(f"heads_{i}", self.head_counts, ordered=True))
        return tuple(dims)

    @property
    def dims(self) -> tuple[Dim, ...]:
        return self._dims

    def options(self) -> dict[str, Any]:
        elastic = {"elastic": list(self.elastic)} if self.elastic else {}
        if self.checkpoint is not None:
            return {"checkpoint": self.checkpoint, **elastic,
                    **({"head_counts": list(self.head_counts)} if self.head_counts != self._head_counts(None) else {}),
                    **({"max_params": self.max_params, "cap_metric": self.cap_metric}
                       if self.max_params is not None else {})}
        s = self.shape
        return {
            "num_layers": s.num_layers, "hidden_size": s.hidden_size, "num_heads": s.num_heads,
            "inner_size": s.inner_size, "vocab_size": s.vocab_size, "max_positions": s.max_positions,
            "type_vocab_size": s.type_vocab_size, "ffn_step": self.ffn_step,
            "ffn_widths": [list(r) for r in self.ffn_widths], "head_counts": list(self.head_counts),
            "max_params": self.max_params, "cap_metric": self.cap_metric, **elastic,
        }

    # ---- architectures ------------------------------------------------------------------------
    def grown_width(self, i: int, kind: str) -> int:
        """The FFN width the super-network trained layer i's block `kind` at."""
        if kind not in BLOCK_KINDS:
            raise InvalidArchitectureError(f"elm: block {kind!r} is not one of {list(BLOCK_KINDS)}")
        return self.ffn_widths[i][BLOCK_KINDS.index(kind)]

    def layer_gene(self, config: Mapping[str, Any], i: int) -> Gene:
        """Layer i's (block, FFN units, heads): the non-elastic ones are the grown width and all heads."""
        kind = to_python(config[f"block_{i}"])
        units = to_python(config[f"ffn_{i}"]) if "ffn" in self.elastic else self.grown_width(i, kind)
        heads = to_python(config[f"heads_{i}"]) if "heads" in self.elastic else self.shape.num_heads
        return kind, units, heads

    def gene_config(self, i: int, gene: Gene) -> Config:
        """The configuration keys of layer i for `gene` (only the searched ones)."""
        config: Config = {f"block_{i}": gene[0]}
        if "ffn" in self.elastic:
            config[f"ffn_{i}"] = gene[1]
        if "heads" in self.elastic:
            config[f"heads_{i}"] = gene[2]
        return config

    def _arch(self, config: Mapping[str, Any]) -> ElmArch:
        layers = tuple(LayerChoice(*self.layer_gene(config, i)) for i in range(self.shape.num_layers))
        return ElmArch(self.shape, layers)

    def architecture(self, config: Mapping[str, Any]) -> ElmArch:
        """The buildable network of a configuration (raises InvalidArchitectureError)."""
        self.check(config)
        return self._arch(config)

    def check(self, config: Mapping[str, Any]) -> None:
        super().check(config)
        arch = self._arch(config)
        for i, (choice, row) in enumerate(zip(arch.layers, self.ffn_widths)):
            limit = row[BLOCK_KINDS.index(choice.kind)]
            if choice.ffn > limit:
                raise InvalidArchitectureError(
                    f"elm: ffn_{i}={choice.ffn} exceeds the {choice.kind} block's current width {limit} in layer {i}"
                )
        if self.max_params is not None:
            params = count_params(arch)[self.cap_metric]
            if params > self.max_params:
                raise InvalidArchitectureError(f"elm: {params} {self.cap_metric} exceed max_params={self.max_params:g}")

    def config_of(self, arch: ElmArch) -> Config:
        """The configuration of an architecture (checked against this space: without elastic sizes
        every layer must be at its block's grown width with all heads)."""
        config: Config = {}
        for i, c in enumerate(arch.layers):
            config.update(self.gene_config(i, (c.kind, c.ffn, c.heads)))
        self.check(config)
        for i, c in enumerate(arch.layers):
            kind, units, heads = self.layer_gene(config, i)
            if (units, heads) != (c.ffn, c.heads):
                raise InvalidArchitectureError(
                    f"elm: layer {i} ({c.kind}/{c.ffn}/{c.heads}h) is not what the super-network trained "
                    f"({kind}/{units}/{heads}h); search widths or heads with the space option elastic")
        return config

    def capped_size(self, config: Mapping[str, Any]) -> int:
        """The count the cap applies to (`cap_metric`), for a configuration of this space's keys."""
        return count_params(self._arch(config))[self.cap_metric]

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        return {k: float(v) for k, v in count_params(self.architecture(config)).items()}

    # ---- sampling and moves: per-layer genes, repaired to the block's width and the cap ---------
    def block_sizes(self, i: int, kind: str) -> tuple[list[int], list[int]]:
        """(FFN widths, head counts) layer i's block `kind` may take in this space, smallest first."""
        limit = self.grown_width(i, kind)
        widths = list(range(self.ffn_step, limit + 1, self.ffn_step)) if "ffn" in self.elastic else [limit]
        heads = ([h for h in self.head_counts if self.shape.attention_width(kind) % h == 0]
                 if "heads" in self.elastic else [self.shape.num_heads])
        return widths, heads

    def layer_options(self, i: int) -> list[Gene]:
        """Every valid (block, ffn, heads) of layer i, ignoring the cap."""
        return [(kind, units, heads) for kind in BLOCK_KINDS
                for units, heads in itertools.product(*self.block_sizes(i, kind))]

    def sample(self, rng: np.random.Generator) -> Config:
        """Per layer a uniform block (as SPOS samples paths), then a uniform width and head count for
        it where they are elastic; then fitted under the cap."""
        config: Config = {}
        for i in range(self.shape.num_layers):
            config.update(self.gene_config(i, self.random_gene(i, rng)))
        return self.fit_cap(config, rng)

    def random_gene(self, i: int, rng: np.random.Generator) -> Gene:
        kind = BLOCK_KINDS[int(rng.integers(len(BLOCK_KINDS)))]
        widths, heads = self.block_sizes(i, kind)
        return kind, int(rng.choice(widths)), int(rng.choice(heads))

    def mutate(self, config: Mapping[str, Any], rng: np.random.Generator, rate: float | None = None) -> Config:
        """Resample each layer's gene with probability `rate` (default 1/#layers), at least one changed."""
        n = self.shape.num_layers
        p = rate if rate is not None else 1.0 / n
        for _ in range(100):
            chosen = [i for i in range(n) if rng.random() < p] or [int(rng.integers(n))]
            cand = dict(config)
            for i in chosen:
                cand.update(self.gene_config(i, self.random_gene(i, rng)))
            cand = self.fit_cap(cand, rng)
            if cand != dict(config):
                return cand
        return self.sample(rng)

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: np.random.Generator) -> Config:
        """Uniform crossover of whole layers (a layer's block, width and heads travel together)."""
        for _ in range(100):
            child: Config = {}
            for i in range(self.shape.num_layers):
                parent = a if rng.random() < 0.5 else b
                child.update(self.gene_config(i, self.layer_gene(parent, i)))
            child = {d.name: child[d.name] for d in self.dims}
            if self.is_valid(child):
                return child
        return {d.name: a[d.name] for d in self.dims}

    def fit_cap(self, config: Mapping[str, Any], rng: np.random.Generator) -> Config:
        """`config` with random layers shrunk (one FFN step where widths are elastic, or a smaller block)
        until it meets the cap."""
        config = {d.name: config[d.name] for d in self.dims}
        if self.max_params is None:
            return config
        while self.capped_size(config) > self.max_params:
            moves = [(i, g) for i in range(self.shape.num_layers) for g in self._smaller_genes(config, i)]
            i, gene = moves[int(rng.integers(len(moves)))]  # never empty: the smallest member meets the cap
            config.update(self.gene_config(i, gene))
        return config

    def _smaller_genes(self, config: Mapping[str, Any], i: int) -> list[Gene]:
        """Layer i one FFN step narrower, or on another block at its narrowest allowed width, when smaller."""
        kind, units, heads = self.layer_gene(config, i)
        size = block_params(self.shape, kind, units)
        out: list[Gene] = []
        for other in BLOCK_KINDS:
            widths, fits = self.block_sizes(i, other)
            narrower = [w for w in widths if w < units] if other == kind else widths[:1]
            if narrower and block_params(self.shape, other, narrower[-1]) < size:
                out.append((other, narrower[-1], heads if heads in fits else fits[-1]))
        return out

    # ---- extremes -------------------------------------------------------------------------------
    def smallest(self) -> Config:
        config = self._extreme(smallest=True)
        self.check(config)
        return config

    def largest(self) -> Config:
        """The largest member: every layer at its largest block, or under a binding cap the member
        with the most parameters (an exact subset-sum over the layers' block sizes)."""
        config = self._extreme(smallest=False)
        if self.is_valid(config):
            return config
        assert self.max_params is not None  # without a cap the largest blocks are always valid
        return largest_under_cap(self, self.max_params, self._extreme(smallest=True))

    def _extreme(self, smallest: bool) -> Config:
        config: Config = {}
        for i in range(self.shape.num_layers):
            options = self.layer_options(i)
            size = lambda g: (block_params(self.shape, g[0], g[1]), g[2])  # noqa: E731
            gene = min(options, key=size) if smallest else max(options, key=size)
            config.update(self.gene_config(i, gene))
        return {d.name: config[d.name] for d in self.dims}
