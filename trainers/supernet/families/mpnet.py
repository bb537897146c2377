"""MPNet (e.g. all-mpnet-base-v2): no token types, positions counted after the padding index as
RoBERTa's, one relative position bias table shared by all layers (added to every head's attention
scores), its own layer names (attn.q, attn.o), and RoBERTa's classification head."""
from __future__ import annotations

from typing import Any

from trainers.supernet.families.base import (BERT_FFN, CLASSIFIER_HEAD, Family, bert_embeddings, encoder_names,
                                             read_bert_like, write_bert_like)
from trainers.supernet.standalone import CompactBertConfig


def read(hf: dict[str, Any]) -> dict[str, Any]:
    # MPNet's code fixes the padding index at 1 whatever pad_token_id says, and its head's dropout
    # at hidden_dropout_prob whatever classifier_dropout says.
    fields = read_bert_like(hf)
    return fields | {"type_vocab": 0, "pad_token_id": 1, "padding_positions": True, "head_input_dropout": True,
                     "classifier_dropout": fields["hidden_dropout"],
                     "relative_buckets": hf.get("relative_attention_num_buckets", 32)}


def write(c: CompactBertConfig, heads: int, units: int) -> dict[str, Any]:
    out = write_bert_like(c, heads, units) | {"relative_attention_num_buckets": c.relative_buckets}
    del out["type_vocab_size"]
    return out


FAMILY = Family(
    model_types=("mpnet",),
    prefix="mpnet.",
    names=bert_embeddings("mpnet.", token_types=False)
    + encoder_names("mpnet.", "encoder.layer.", ("attention.attn.q", "attention.attn.k", "attention.attn.v",
                                                 "attention.attn.o", "attention.LayerNorm"), BERT_FFN)
    + (("relative_bias.table.", "mpnet.encoder.relative_attention_bias."),) + CLASSIFIER_HEAD,
    read=read,
    write=write,
    ignored=r"^mpnet\.pooler\.",
)
