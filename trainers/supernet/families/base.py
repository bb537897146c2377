"""What one encoder family (Hugging Face `model_type`s) needs to become a super-network and back.

A family names its checkpoint tensors in our terms (`names`), reads its config.json into the
fields of `CompactBertConfig` (`read`: sizes and the few forward switches that differ from BERT)
and writes them back as its own Hugging Face config (`write`) for a standard export. The
BERT-like helpers below serve the families whose config keys follow BERT's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from trainers.supernet.standalone import CompactBertConfig

#: (ours, Hugging Face task model); `{i}` is a layer index.
Names = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Family:
    """One encoder family; registered by putting a module with a `FAMILY` in this package."""

    #: the config.json `model_type`s it reads (XLM-R is RoBERTa with another name).
    model_types: tuple[str, ...]
    #: the base model's attribute in task models ("roberta."): a bare encoder's tensors lack it.
    prefix: str
    names: Names
    #: config.json (a dict) -> `CompactBertConfig` fields except heads, units, labels and family.
    read: Callable[[dict[str, Any]], dict[str, Any]]
    #: (our config, heads per layer, FFN units per layer) -> keyword arguments of its HF config.
    write: Callable[[CompactBertConfig, int, int], dict[str, Any]]
    #: checkpoint tensors (a regex on the name, prefix included) that carry nothing of ours:
    #: pre-training heads, poolers a family's classifier does not use.
    ignored: str = r"^$"


def encoder_names(prefix: str, layer: str, attention: tuple[str, str, str, str, str],
                  ffn: tuple[str, str, str]) -> Names:
    """A layer's table under `prefix` + `layer` (".{i}." is the index): the five attention names
    (query, key, value, output, norm) and the three FFN names (up, down, norm)."""
    ours = [f"attention.{n}." for n in ("query", "key", "value", "output", "norm")] + [f"ffn.{n}." for n in ("up", "down", "norm")]
    return tuple((f"layers.{{i}}.{o}", f"{prefix}{layer}{{i}}.{hf}.") for o, hf in zip(ours, attention + ffn))


#: BERT's layer (also RoBERTa's and ELECTRA's).
BERT_ATTENTION = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                  "attention.output.LayerNorm")
BERT_FFN = ("intermediate.dense", "output.dense", "output.LayerNorm")


def bert_embeddings(prefix: str, token_types: bool = True) -> Names:
    names = (("embeddings.word.", f"{prefix}embeddings.word_embeddings."),
             ("embeddings.position.", f"{prefix}embeddings.position_embeddings."),
             ("embeddings.norm.", f"{prefix}embeddings.LayerNorm."))
    return names + ((("embeddings.token_type.", f"{prefix}embeddings.token_type_embeddings."),) if token_types else ())


#: the classification head of RoBERTa, ELECTRA and MPNet: dense (our pooler) and out_proj, with
#: dropout before each (their readers set `head_input_dropout`).
CLASSIFIER_HEAD: Names = (("head.pooler.", "classifier.dense."), ("head.classifier.", "classifier.out_proj."))


def read_bert_like(hf: dict[str, Any]) -> dict[str, Any]:
    """The fields of a config.json with BERT's keys."""
    dropout = hf.get("hidden_dropout_prob", 0.1)
    return dict(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_heads=hf["num_attention_heads"],
        num_layers=hf["num_hidden_layers"],
        units=hf["intermediate_size"],
        max_position=hf["max_position_embeddings"],
        type_vocab=hf.get("type_vocab_size", 2),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        hidden_act=hf.get("hidden_act", "gelu"),
        hidden_dropout=dropout,
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        classifier_dropout=hf.get("classifier_dropout") if hf.get("classifier_dropout") is not None else dropout,
        pad_token_id=hf.get("pad_token_id") or 0,
    )


def write_bert_like(c: CompactBertConfig, heads: int, units: int) -> dict[str, Any]:
    """BERT's config keys for `c` with `heads` heads and `units` FFN units in every layer."""
    return dict(
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        num_hidden_layers=len(c.heads),
        num_attention_heads=heads,
        intermediate_size=units,
        hidden_act=c.hidden_act,
        hidden_dropout_prob=c.hidden_dropout,
        attention_probs_dropout_prob=c.attention_dropout,
        classifier_dropout=c.classifier_dropout,
        max_position_embeddings=c.max_position,
        type_vocab_size=c.type_vocab,
        layer_norm_eps=c.layer_norm_eps,
        pad_token_id=c.pad_token_id,
    )
