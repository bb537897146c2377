"""DistilBERT: no token-type embeddings, its own names (q_lin, sa_layer_norm, ffn.lin1, ...) and
config keys (dim, n_heads, hidden_dim), and a pre_classifier + ReLU head on the first token."""
from __future__ import annotations

from typing import Any

from trainers.supernet.families.base import Family, bert_embeddings, encoder_names, read_bert_like, write_bert_like
from trainers.supernet.standalone import CompactBertConfig

#: BERT's config key -> DistilBERT's for the same size or rate.
KEYS = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
        "intermediate_size": "hidden_dim", "hidden_act": "activation", "hidden_dropout_prob": "dropout",
        "attention_probs_dropout_prob": "attention_dropout", "classifier_dropout": "seq_classif_dropout"}


def read(hf: dict[str, Any]) -> dict[str, Any]:
    as_bert = {bert: hf[ours] for bert, ours in KEYS.items() if ours in hf}
    # DistilBERT's code fixes the LayerNorm epsilon; its head's dropout defaults to 0.2.
    return read_bert_like(hf | as_bert | {"classifier_dropout": hf.get("seq_classif_dropout", 0.2)}) | {
        "type_vocab": 0, "layer_norm_eps": 1e-12, "pooler_act": "relu", "attention_output_dropout": False}


def write(c: CompactBertConfig, heads: int, units: int) -> dict[str, Any]:
    bert = write_bert_like(c, heads, units)
    return {KEYS.get(k, k): v for k, v in bert.items() if k not in ("type_vocab_size", "layer_norm_eps")}


FAMILY = Family(
    model_types=("distilbert",),
    prefix="distilbert.",
    names=bert_embeddings("distilbert.", token_types=False)
    + encoder_names("distilbert.", "transformer.layer.",
                    ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "sa_layer_norm"),
                    ("ffn.lin1", "ffn.lin2", "output_layer_norm"))
    + (("head.pooler.", "pre_classifier."), ("head.classifier.", "classifier.")),
    read=read,
    write=write,
    ignored=r"^(vocab_transform|vocab_layer_norm|vocab_projector)\.",
)
