"""ELECTRA (discriminators): BERT's layers; embedding tables of `embedding_size`, projected to
hidden_size when narrower; a classification head of dense + gelu + out_proj on the first token."""
from __future__ import annotations

from typing import Any

from trainers.supernet.families.base import (BERT_ATTENTION, BERT_FFN, CLASSIFIER_HEAD, Family, bert_embeddings,
                                             encoder_names, read_bert_like, write_bert_like)
from trainers.supernet.standalone import CompactBertConfig


def read(hf: dict[str, Any]) -> dict[str, Any]:
    width = hf.get("embedding_size") or hf["hidden_size"]
    return read_bert_like(hf) | {"embedding_size": width if width != hf["hidden_size"] else 0, "pooler_act": "gelu",
                                  "head_input_dropout": True}


def write(c: CompactBertConfig, heads: int, units: int) -> dict[str, Any]:
    return write_bert_like(c, heads, units) | {"embedding_size": c.embedding_size or c.hidden_size}


FAMILY = Family(
    model_types=("electra",),
    prefix="electra.",
    names=bert_embeddings("electra.") + (("embeddings.project.", "electra.embeddings_project."),)
    + encoder_names("electra.", "encoder.layer.", BERT_ATTENTION, BERT_FFN) + CLASSIFIER_HEAD,
    read=read,
    write=write,
    ignored=r"^(discriminator_predictions|generator_predictions|generator_lm_head)\.",
)
