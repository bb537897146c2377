"""BERT (and BERT-architecture sentence encoders such as all-MiniLM-L6-v2)."""
from __future__ import annotations

from trainers.supernet.families.base import (BERT_ATTENTION, BERT_FFN, Family, bert_embeddings, encoder_names,
                                             read_bert_like, write_bert_like)

FAMILY = Family(
    model_types=("bert",),
    prefix="bert.",
    names=bert_embeddings("bert.") + encoder_names("bert.", "encoder.layer.", BERT_ATTENTION, BERT_FFN)
    + (("head.pooler.", "bert.pooler.dense."), ("head.classifier.", "classifier.")),
    read=read_bert_like,
    write=write_bert_like,
)
