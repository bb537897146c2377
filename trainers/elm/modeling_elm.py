"""A found ELM model for deployment: torch only, no lmnas code (exported next to its weights).

    from modeling_elm import load
    model = load("export")                       # config.json + model.safetensors in that folder
    logits = model(input_ids, attention_mask)    # (B, S) int64 each -> (B, num_labels)

Each layer is a BERT block (post-norm attention and FFN at the hidden size) or a MobileBERT block
(bottleneck in, attention and FFN at the inner width, bottleneck out with a residual), whose value
projection may be its query's ("qv") or its key's ("kv"); the classifier reads the mean of the last
layer over real tokens. Parameter names match the training code's, so the weights load unchanged.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class Embeddings(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.word = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position = nn.Embedding(c["max_positions"], c["hidden_size"])
        self.token_type = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.norm = nn.LayerNorm(c["hidden_size"])

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.norm(self.word(input_ids) + self.position(positions)[None] + self.token_type(token_type_ids))


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, sharing: str) -> None:
        super().__init__()
        self.heads, self.sharing = heads, sharing
        self.query, self.key = nn.Linear(width, width), nn.Linear(width, width)
        self.value = nn.Linear(width, width) if sharing == "none" else None
        self.output, self.norm = nn.Linear(width, width), nn.LayerNorm(width)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        bsz, seq, width = x.shape
        value = {"none": self.value, "qv": self.query, "kv": self.key}[self.sharing]
        split = lambda t: t.view(bsz, seq, self.heads, width // self.heads).transpose(1, 2)  # noqa: E731 (B, H, S, d)
        q, k, v = split(self.query(x)), split(self.key(x)), split(value(x))  # type: ignore[misc]
        probs = (q @ k.transpose(-1, -2) / math.sqrt(width // self.heads) + bias).softmax(-1)  # (B, H, S, S)
        context = (probs @ v).transpose(1, 2).reshape(bsz, seq, width)  # (B, S, C)
        return self.norm(x + self.output(context))


class FFN(nn.Module):
    def __init__(self, width: int, units: int) -> None:
        super().__init__()
        self.inner, self.outer, self.norm = nn.Linear(width, units), nn.Linear(units, width), nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.outer(F.gelu(self.inner(x))))


class Block(nn.Module):
    def __init__(self, c: dict[str, Any], layer: dict[str, Any]) -> None:
        super().__init__()
        self.mobile = layer["kind"].startswith("mobile")
        width = c["inner_size"] if self.mobile else c["hidden_size"]
        if self.mobile:
            self.bottleneck_in, self.in_norm = nn.Linear(c["hidden_size"], width), nn.LayerNorm(width)
            self.bottleneck_out, self.out_norm = nn.Linear(width, c["hidden_size"]), nn.LayerNorm(c["hidden_size"])
        self.attention = Attention(width, layer["heads"], layer["kind"].partition("_")[2] or "none")
        self.ffn = FFN(width, layer["ffn"])

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        u = self.in_norm(self.bottleneck_in(x)) if self.mobile else x
        u = self.ffn(self.attention(u, bias))
        return self.out_norm(x + self.bottleneck_out(u)) if self.mobile else u


class Encoder(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.embeddings = Embeddings(c)
        self.blocks = nn.ModuleList(Block(c, layer) for layer in c["layers"])

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        x = self.embeddings(input_ids, torch.zeros_like(input_ids))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min  # (B, 1, 1, S)
        for block in self.blocks:
            x = block(x, bias)
        return x  # (B, S, hidden)


class ElmForSequenceClassification(nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.head = nn.Linear(config["hidden_size"], len(config["labels"]))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.encoder(input_ids, attention_mask)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, S, 1)
        return self.head((hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0))  # (B, num_labels)


def load(directory: str | Path, device: str = "cpu") -> ElmForSequenceClassification:
    """The model saved in `directory`, in eval mode."""
    from safetensors.torch import load_file

    directory = Path(directory)
    model = ElmForSequenceClassification(json.loads((directory / CONFIG_NAME).read_text()))
    model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
    return model.to(device).eval()
