"""Hugging Face BERT checkpoints <-> the super-network's parameter names.

One table maps names both ways: loading a checkpoint directory (config.json + safetensors,
sharded or not, with or without the `bert.` prefix of task models) and writing a standard
`BertForSequenceClassification` state dict on export.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from search_spaces.sub_network import IllegalSubNetworkError
from trainers.supernet.standalone import CompactBertConfig

#: (ours, Hugging Face BertForSequenceClassification); `{i}` is a layer index.
NAMES: tuple[tuple[str, str], ...] = (
    ("embeddings.word.", "bert.embeddings.word_embeddings."),
    ("embeddings.position.", "bert.embeddings.position_embeddings."),
    ("embeddings.token_type.", "bert.embeddings.token_type_embeddings."),
    ("embeddings.norm.", "bert.embeddings.LayerNorm."),
    ("layers.{i}.attention.query.", "bert.encoder.layer.{i}.attention.self.query."),
    ("layers.{i}.attention.key.", "bert.encoder.layer.{i}.attention.self.key."),
    ("layers.{i}.attention.value.", "bert.encoder.layer.{i}.attention.self.value."),
    ("layers.{i}.attention.output.", "bert.encoder.layer.{i}.attention.output.dense."),
    ("layers.{i}.attention.norm.", "bert.encoder.layer.{i}.attention.output.LayerNorm."),
    ("layers.{i}.ffn.up.", "bert.encoder.layer.{i}.intermediate.dense."),
    ("layers.{i}.ffn.down.", "bert.encoder.layer.{i}.output.dense."),
    ("layers.{i}.ffn.norm.", "bert.encoder.layer.{i}.output.LayerNorm."),
    ("head.pooler.", "bert.pooler.dense."),
    ("head.classifier.", "classifier."),
)
#: checkpoint entries that carry no parameters of ours (buffers, pre-training heads).
IGNORED = re.compile(r"(position_ids|token_type_ids)$|^cls\.|^lm_head\.")
#: TF-era LayerNorm names.
LEGACY = {".gamma": ".weight", ".beta": ".bias"}


class CheckpointError(IllegalSubNetworkError):
    """A checkpoint directory that is missing, not a BERT, or does not match its config."""


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(\d+)"))


_TO_OURS = [(_pattern(hf), ours) for ours, hf in NAMES]
_TO_HF = [(_pattern(ours), hf) for ours, hf in NAMES]


def _rename(name: str, table: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, target in table:
        m = pattern.match(name)
        if m:
            head = target.replace("{i}", m.group(1)) if m.groups() else target
            return head + name[m.end():]
    return None


def to_hf_name(name: str) -> str:
    """Our parameter name as a BertForSequenceClassification one."""
    out = _rename(name, _TO_HF)
    assert out is not None, f"no Hugging Face name for {name}"
    return out


def read_config(directory: str | Path, num_labels: int | None = None) -> CompactBertConfig:
    """The full-size CompactBertConfig of a Hugging Face BERT checkpoint directory."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory}: no config.json; point to a Hugging Face BERT checkpoint directory")
    hf: dict[str, Any] = json.loads(path.read_text())
    if hf.get("model_type") != "bert":
        raise CheckpointError(f"{directory}: model_type is {hf.get('model_type')!r}; the super-network supports 'bert'")
    if hf["hidden_size"] % hf["num_attention_heads"]:
        raise CheckpointError(f"{directory}: hidden_size {hf['hidden_size']} is not a multiple of num_attention_heads {hf['num_attention_heads']}")
    names = {str(k): str(v) for k, v in (hf.get("id2label") or {}).items()}
    labels = num_labels if num_labels is not None else len(names) or 2
    layers = hf["num_hidden_layers"]
    dropout = hf.get("hidden_dropout_prob", 0.1)
    return CompactBertConfig(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        max_position=hf["max_position_embeddings"],
        type_vocab=hf.get("type_vocab_size", 2),
        num_labels=labels,
        head_size=hf["hidden_size"] // hf["num_attention_heads"],
        heads=(hf["num_attention_heads"],) * layers,
        units=(hf["intermediate_size"],) * layers,
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        hidden_act=hf.get("hidden_act", "gelu"),
        hidden_dropout=dropout,
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        classifier_dropout=hf.get("classifier_dropout") if hf.get("classifier_dropout") is not None else dropout,
        pad_token_id=hf.get("pad_token_id") or 0,
        id2label=names if len(names) == labels else {},
    )


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our names (safetensors, single file or sharded)."""
    from safetensors.torch import load_file

    root = Path(directory)
    index = root / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (root / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise CheckpointError(f"{directory}: no model.safetensors; re-save the model with save_pretrained(safe_serialization=True)")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        for name, tensor in load_file(str(root / file)).items():
            for old, new in LEGACY.items():
                name = name[: -len(old)] + new if name.endswith(old) else name
            if IGNORED.search(name):
                continue
            # A bare BertModel (e.g. a sentence encoder) has no `bert.` prefix.
            ours = _rename(name if name.startswith(("bert.", "classifier.")) else f"bert.{name}", _TO_OURS)
            if ours is None:
                raise CheckpointError(f"{directory}: unexpected tensor {name!r} in {file}; is this a BERT checkpoint?")
            state[ours] = tensor
    return state
