"""ELM architectures (Elastic Architecture Search for Efficient Language Models, §III-A) and their
exact parameter counts.

A network has a fixed shape (`ElmShape`) and one `LayerChoice` per layer: one of six blocks — BERT or
MobileBERT (bottleneck), each with no weight sharing, query = value or key = value shared in its
attention — with an FFN width and a head count. `count_params` counts exactly the parameters
`trainers/elm/blocks.py` creates for an architecture. The search space over them is `search_spaces/elm.py`.
"""
from __future__ import annotations

from dataclasses import dataclass

from search_spaces.base import InvalidArchitectureError

#: the six candidate blocks of a layer, in the paper's order (Fig. 6: 0-2 BERT, 3-5 MobileBERT;
#: modulo 3: no sharing, query = value, key = value).
BLOCK_KINDS: tuple[str, ...] = ("bert", "bert_qv", "bert_kv", "mobile", "mobile_qv", "mobile_kv")


def is_mobile(kind: str) -> bool:
    return kind.startswith("mobile")


def shares_projection(kind: str) -> bool:
    return kind.endswith(("_qv", "_kv"))


@dataclass(frozen=True)
class ElmShape:
    """The fixed sizes of an ELM super-network; every block of every layer has these."""

    num_layers: int = 6
    hidden_size: int = 192
    num_heads: int = 12
    #: the MobileBERT blocks' bottleneck width (the paper: a quarter of the hidden size).
    inner_size: int = 48
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "inner_size", "vocab_size", "max_positions",
                     "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArchitectureError(f"elm: {name} must be a positive integer, got {value!r}")

    def attention_width(self, kind: str) -> int:
        """The width attention runs at: the hidden size in BERT blocks, the bottleneck in MobileBERT ones."""
        return self.inner_size if is_mobile(kind) else self.hidden_size


@dataclass(frozen=True)
class LayerChoice:
    """One layer of a sub-network: its block, FFN width and head count."""

    kind: str
    ffn: int
    heads: int

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise InvalidArchitectureError(f"elm: block {self.kind!r} is not one of {list(BLOCK_KINDS)}")
        for name in ("ffn", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArchitectureError(f"elm: {name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class ElmArch:
    """A buildable ELM network: the shape and one choice per layer."""

    shape: ElmShape
    layers: tuple[LayerChoice, ...]

    def __post_init__(self) -> None:
        if len(self.layers) != self.shape.num_layers:
            raise InvalidArchitectureError(f"elm: needs {self.shape.num_layers} layer choices, got {len(self.layers)}")
        for i, layer in enumerate(self.layers):
            width = self.shape.attention_width(layer.kind)
            if width % layer.heads:
                raise InvalidArchitectureError(
                    f"elm: heads_{i}={layer.heads} must divide the {layer.kind} block's attention width {width}"
                )


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out  # weight + bias


def attention_params(width: int, kind: str) -> int:
    """Query, key, value (one fewer when two share a projection), output projection and LayerNorm."""
    projections = 3 if shares_projection(kind) else 4
    return projections * linear(width, width) + 2 * width


def ffn_params(width: int, units: int) -> int:
    return linear(width, units) + linear(units, width) + 2 * width


def block_params(shape: ElmShape, kind: str, units: int) -> int:
    """Parameters of one block with `units` FFN units."""
    c = shape.attention_width(kind)
    body = attention_params(c, kind) + ffn_params(c, units)
    if not is_mobile(kind):
        return body
    h = shape.hidden_size
    # bottleneck in (+ its LayerNorm) and bottleneck out (+ the residual LayerNorm on the hidden size)
    return linear(h, c) + 2 * c + body + linear(c, h) + 2 * h


def embedding_params(shape: ElmShape) -> tuple[int, int]:
    """(embedding tables, embedding LayerNorm)."""
    tables = (shape.vocab_size + shape.max_positions + shape.type_vocab_size) * shape.hidden_size
    return tables, 2 * shape.hidden_size


def count_params(arch: ElmArch) -> dict[str, int]:
    """Parameters of the encoder (embeddings + blocks); `params_non_embedding` excludes the tables only
    (the project-wide definition, trainers/efficiency/params.py)."""
    tables, norm = embedding_params(arch.shape)
    non_embedding = norm + sum(block_params(arch.shape, c.kind, c.ffn) for c in arch.layers)
    return {"params": tables + non_embedding, "params_non_embedding": non_embedding}
