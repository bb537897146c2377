"""A tiny random BERT checkpoint and input batch shared by the super-network and export tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification

SIZES: dict[str, Any] = dict(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=40,
    num_labels=3,
)


def save_tiny_bert(directory: Path, seed: int = 0, **overrides: Any) -> BertForSequenceClassification:
    """A random BertForSequenceClassification saved with save_pretrained (safetensors) to `directory`."""
    torch.manual_seed(seed)
    model = BertForSequenceClassification(BertConfig(**{**SIZES, **overrides})).eval()
    # Random (not default-initialised) LayerNorms and biases, so a wrong slice cannot hide.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(directory)
    return model


def tiny_batch(seed: int = 1, batch: int = 3, seq: int = 12) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask (last row half padding) / token_type_ids for the tiny vocabulary."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, SIZES["vocab_size"], (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq // 2 :] = 0
    types = torch.zeros(batch, seq, dtype=torch.long)
    types[:, seq // 3 :] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
