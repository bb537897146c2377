"""A compact BERT-like sequence classifier whose layers each have their own head and FFN sizes.

This file depends on torch and safetensors only: export copies it next to the weights as
`modeling_compact_bert.py`, so a user loads a pruned model with

    import modeling_compact_bert as m; model = m.load("exported_dir")

A layer with no heads has no attention block (the hidden state passes through unchanged), a
layer with no FFN units has no FFN block. Module names follow BERT's, shortened; the weights are
those of a BERT checkpoint with rows / columns of pruned heads and units removed. A few switches in
the config cover the other encoder families (`trainers/supernet/families/`): RoBERTa's position ids
that skip padding, DistilBERT's missing token types, ELECTRA's narrower embeddings with a
projection, MPNet's relative position bias shared by all layers, and each family's head activation.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: the `model_type` written to config.json, so a compact export is never mistaken for a plain BERT.
MODEL_TYPE = "compact_bert"
POOLINGS = ("cls", "mean")

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "tanh": torch.tanh,
}
#: MPNet's relative positions farther apart than this share the last bucket (fixed in its code).
RELATIVE_MAX_DISTANCE = 128


@dataclass(frozen=True)
class CompactBertConfig:
    """Sizes of a compact BERT; `heads[i]` / `units[i]` are layer i's head and FFN unit counts.

    `type_vocab` 0: no token-type table (DistilBERT, MPNet)."""

    vocab_size: int
    hidden_size: int
    max_position: int
    type_vocab: int
    num_labels: int
    head_size: int
    heads: tuple[int, ...]
    units: tuple[int, ...]
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    classifier_dropout: float = 0.1
    pad_token_id: int = 0
    id2label: dict[str, str] = field(default_factory=dict)
    #: what the pooler reads: the first token ("cls", BERT's) or the mean over real tokens ("mean",
    #: how sentence-transformers models such as all-MiniLM-L6-v2 were trained; their [CLS] state
    #: below the last layer hardly varies between inputs).
    pooling: str = "cls"
    #: the Hugging Face `model_type` the weights came from (and a standard export goes back to).
    family: str = "bert"
    #: the width of the embedding tables when it differs from hidden_size (ELECTRA); they are
    #: projected to hidden_size after their LayerNorm. 0: hidden_size, no projection.
    embedding_size: int = 0
    #: RoBERTa / XLM-R / MPNet: a token's position counts the real tokens up to it, starting after
    #: pad_token_id (padding itself sits at position pad_token_id), instead of 0, 1, 2, ...
    padding_positions: bool = False
    #: MPNet: buckets of one relative position bias table, shared by every layer, added to the
    #: attention scores. 0: none.
    relative_buckets: int = 0
    #: with `relative_buckets`, which of the original heads (columns of the bias table) layer i's
    #: heads are; empty: the first heads[i] of every layer.
    relative_heads: tuple[tuple[int, ...], ...] = ()
    #: the activation after the head's dense layer: BERT's pooler, RoBERTa's and MPNet's heads use
    #: tanh, DistilBERT's pre_classifier relu, ELECTRA's head gelu.
    pooler_act: str = "tanh"
    #: dropout on the attention output projection before the residual sum (BERT's); DistilBERT has none.
    attention_output_dropout: bool = True
    #: the head's dropout also before its dense layer (RoBERTa, XLM-R, ELECTRA, MPNet), not only after.
    head_input_dropout: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        object.__setattr__(self, "relative_heads", tuple(tuple(int(h) for h in hs) for hs in self.relative_heads))
        for name in ("vocab_size", "hidden_size", "max_position", "num_labels", "head_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("type_vocab", "embedding_size", "relative_buckets"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.relative_heads and [len(h) for h in self.relative_heads] != list(self.heads):
            raise ValueError(f"relative_heads must list heads[i] head indices per layer, got {self.relative_heads} for heads {self.heads}")
        if len(self.heads) != len(self.units):
            raise ValueError(f"heads and units must have one entry per layer, got {len(self.heads)} and {len(self.units)}")
        if any(h < 0 for h in self.heads) or any(u < 0 for u in self.units):
            raise ValueError(f"heads and units must be >= 0, got {self.heads} and {self.units}")
        for name in ("hidden_act", "pooler_act"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f"{name} must be one of {sorted(ACTIVATIONS)}, got {getattr(self, name)!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")

    @property
    def num_heads(self) -> int:
        """The original model's heads per layer (its hidden size is that many heads wide)."""
        return self.hidden_size // self.head_size

    def bias_heads(self, layer: int) -> tuple[int, ...]:
        """The columns of the relative position bias that layer `layer`'s heads read."""
        return self.relative_heads[layer] if self.relative_heads else tuple(range(self.heads[layer]))

    def to_json(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, **asdict(self), "heads": list(self.heads), "units": list(self.units),
                "relative_heads": [list(h) for h in self.relative_heads]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompactBertConfig:
        if data.get("model_type") != MODEL_TYPE:
            raise ValueError(f"model_type must be {MODEL_TYPE!r}, got {data.get('model_type')!r}")
        return cls(**{k: v for k, v in data.items() if k != "model_type"})


@dataclass
class Encoded:
    """Logits and the hidden state after the embeddings and after every layer (for distillation)."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...]


def key_padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(batch, seq) of 1 = token / 0 = padding -> boolean (batch, 1, 1, seq), True = attend."""
    return None if attention_mask is None else attention_mask[:, None, None, :].bool()


def relative_buckets(seq: int, buckets: int, device: torch.device) -> torch.Tensor:
    """MPNet's (and T5's bidirectional) bucket of every (query, key) offset: (seq, seq) long.

    Half the buckets for keys before the query, half after; within each half, exact offsets up to
    a quarter of the buckets, then logarithmically wider ones up to RELATIVE_MAX_DISTANCE."""
    pos = torch.arange(seq, device=device)
    n = pos[:, None] - pos[None, :]  # query - key
    half = buckets // 2
    out = (n < 0).long() * half
    n = n.abs()
    exact = half // 2
    wide = exact + (torch.log(n.float() / exact) / math.log(RELATIVE_MAX_DISTANCE / exact) * (half - exact)).long()
    return out + torch.where(n < exact, n, wide.clamp_max(half - 1))


class RelativeBias(nn.Module):
    """MPNet's relative position bias: one (buckets, heads) table shared by all layers."""

    def __init__(self, buckets: int, heads: int) -> None:
        super().__init__()
        self.table = nn.Embedding(buckets, heads)

    def forward(self, seq: int) -> torch.Tensor:
        """(1, heads, seq, seq) additive attention scores."""
        bucket = relative_buckets(seq, self.table.num_embeddings, self.table.weight.device)
        return self.table(bucket).permute(2, 0, 1)[None]


def head_index(heads: tuple[int, ...]) -> slice | list[int]:
    """`heads` as an index of a head dimension: a slice (a view) when they are the first ones."""
    return slice(0, len(heads)) if heads == tuple(range(len(heads))) else list(heads)


def with_bias(bias: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """An additive attention mask: `bias` (1, heads, S, S) with the dtype's minimum at padded keys
    of `mask` (batch, 1, 1, S; True = attend). Not -inf: a row of padding only then attends
    uniformly (as Hugging Face's MPNet) instead of giving NaN."""
    return bias if mask is None else bias.masked_fill(~mask, torch.finfo(bias.dtype).min)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, head_size: int, dropout: float) -> torch.Tensor:
    """Scaled dot-product attention over heads of `head_size`; q, k, v: (batch, seq, heads * head_size)."""
    batch, seq, _ = q.shape

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(batch, seq, -1, head_size).transpose(1, 2)  # (batch, heads, seq, head_size)

    if mask is not None and mask.is_floating_point():
        # An additive mask (MPNet's relative bias) spelled out: the ONNX exporter fails to
        # decompose scaled_dot_product_attention with a float mask over dynamic shapes.
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(head_size) + mask  # (batch, heads, seq, seq)
        ctx = F.dropout(scores.softmax(-1), dropout) @ split(v)
    else:
        ctx = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask, dropout_p=dropout)
    return ctx.transpose(1, 2).reshape(batch, seq, -1)  # (batch, seq, heads * head_size)


class Embeddings(nn.Module):
    """Word + position (+ token-type) embeddings, LayerNorm, dropout (as BERT), then a projection
    to hidden_size when the tables are narrower (ELECTRA)."""

    def __init__(self, c: CompactBertConfig) -> None:
        super().__init__()
        width = c.embedding_size or c.hidden_size
        self.pad_token_id, self.padding_positions = c.pad_token_id, c.padding_positions
        self.word = nn.Embedding(c.vocab_size, width, padding_idx=c.pad_token_id)
        self.position = nn.Embedding(c.max_position, width)
        self.token_type = nn.Embedding(c.type_vocab, width) if c.type_vocab else None
        self.norm = nn.LayerNorm(width, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout)
        self.project = nn.Linear(width, c.hidden_size) if width != c.hidden_size else None

    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        if not self.padding_positions:
            return torch.arange(input_ids.shape[1], device=input_ids.device)
        real = (input_ids != self.pad_token_id).long()  # (B, S)
        return real.cumsum(1) * real + self.pad_token_id

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        x = self.word(input_ids)
        if self.token_type is not None:
            x = x + self.token_type(torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids)
        x = self.dropout(self.norm(x + self.position(self.positions(input_ids))))  # BERT's order of sums
        return x if self.project is None else self.project(x)


class Attention(nn.Module):
    """Multi-head self-attention with `heads` heads, residual and LayerNorm."""

    def __init__(self, c: CompactBertConfig, heads: int, linear: type[nn.Linear] = nn.Linear) -> None:
        super().__init__()
        width = heads * c.head_size
        self.head_size, self.dropout_p = c.head_size, c.attention_dropout
        self.query, self.key, self.value = (linear(c.hidden_size, width) for _ in range(3))
        self.output = linear(width, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        # Identity, not a rate of 0, so training draws random numbers exactly where the family does.
        self.dropout = nn.Dropout(c.hidden_dropout) if c.attention_output_dropout else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        p = self.dropout_p if self.training else 0.0
        ctx = attend(self.query(x), self.key(x), self.value(x), mask, self.head_size, p)
        return self.norm(x + self.dropout(self.output(ctx)))


class FeedForward(nn.Module):
    """The position-wise FFN with `units` hidden units, residual and LayerNorm."""

    def __init__(self, c: CompactBertConfig, units: int, linear: type[nn.Linear] = nn.Linear) -> None:
        super().__init__()
        self.up = linear(c.hidden_size, units)
        self.down = linear(units, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout)
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.down(self.act(self.up(x)))))


class Layer(nn.Module):
    def __init__(self, c: CompactBertConfig, heads: int, units: int) -> None:
        super().__init__()
        self.attention = Attention(c, heads) if heads else None
        self.ffn = FeedForward(c, units) if units else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.attention is not None:
            x = self.attention(x, mask)
        return x if self.ffn is None else self.ffn(x)


class ClassifierHead(nn.Module):
    """BERT's pooler (dense + tanh on the first token, or on the mean over real tokens when
    `pooling` is "mean") followed by the linear classifier; other families' heads have the same
    shape with another activation (`pooler_act`) and maybe a dropout before the dense layer too
    (`head_input_dropout`)."""

    def __init__(self, c: CompactBertConfig) -> None:
        super().__init__()
        self.pooling = c.pooling
        self.act = ACTIVATIONS[c.pooler_act]
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.classifier_dropout)
        self.input_dropout = self.dropout if c.head_input_dropout else nn.Identity()
        self.classifier = nn.Linear(c.hidden_size, c.num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pooling == "mean":
            weights = torch.ones_like(hidden[..., 0]) if attention_mask is None else attention_mask.to(hidden.dtype)
            pooled = (hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)  # (B, H)
        else:
            pooled = hidden[:, 0]  # (B, H)
        return self.classifier(self.dropout(self.act(self.pooler(self.input_dropout(pooled)))))


class CompactBert(nn.Module):
    """forward(input_ids, attention_mask, token_type_ids) -> logits (batch, num_labels)."""

    def __init__(self, config: CompactBertConfig, layer: Callable[[CompactBertConfig, int, int], nn.Module] = Layer) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(layer(config, h, u) for h, u in zip(config.heads, config.units))
        self.relative_bias = RelativeBias(config.relative_buckets, config.num_heads) if config.relative_buckets else None
        self.head = ClassifierHead(config)

    def bias_heads(self, layer: int) -> slice | list[int]:
        """Index of layer `layer`'s heads into the relative bias table's columns."""
        return head_index(self.config.bias_heads(layer))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None) -> Encoded:
        mask = key_padding_mask(attention_mask)
        bias = None if self.relative_bias is None else self.relative_bias(input_ids.shape[1])  # (1, all heads, S, S)
        states = [self.embeddings(input_ids, token_type_ids)]
        for i, layer in enumerate(self.layers):
            layer_mask = mask if bias is None else with_bias(bias[:, self.bias_heads(i)], mask)
            states.append(layer(states[-1], layer_mask))
        return Encoded(self.head(states[-1], attention_mask), tuple(states))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(input_ids, attention_mask, token_type_ids).logits


def save(model: CompactBert, directory: str | Path) -> Path:
    """Write config.json and model.safetensors."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(json.dumps(model.config.to_json(), indent=2) + "\n")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(out / WEIGHTS_NAME))
    return out


def load(directory: str | Path, device: str = "cpu") -> CompactBert:
    """A CompactBert from a directory written by `save`, in eval mode."""
    from safetensors.torch import load_file

    path = Path(directory)
    config = CompactBertConfig.from_json(json.loads((path / CONFIG_NAME).read_text()))
    model = CompactBert(config)
    model.load_state_dict(load_file(str(path / WEIGHTS_NAME), device=device), strict=True)
    return model.to(device).eval()
