"""RoBERTa and XLM-R (the same architecture): BERT's layers, positions counted after the padding
index (a padded batch gives each real token the position it has unpadded), a classification
head of dense + tanh + out_proj on the first token; the pooler of a bare encoder is unused."""
from __future__ import annotations

from typing import Any

from trainers.supernet.families.base import (BERT_ATTENTION, BERT_FFN, CLASSIFIER_HEAD, Family, bert_embeddings,
                                             encoder_names, read_bert_like, write_bert_like)


def read(hf: dict[str, Any]) -> dict[str, Any]:
    return read_bert_like(hf) | {"pad_token_id": hf.get("pad_token_id", 1), "padding_positions": True,
                                 "head_input_dropout": True}


FAMILY = Family(
    model_types=("roberta", "xlm-roberta"),
    prefix="roberta.",
    names=bert_embeddings("roberta.") + encoder_names("roberta.", "encoder.layer.", BERT_ATTENTION, BERT_FFN)
    + CLASSIFIER_HEAD,
    read=read,
    write=write_bert_like,
    ignored=r"^roberta\.pooler\.",
)
