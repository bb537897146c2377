"""Deployable exports of extracted sub-networks (`SuperNetwork.extract_sub_network`).

- `export_standard`: a plain sequence-classification directory of the checkpoint's own family
  (`BertForSequenceClassification`, `RobertaForSequenceClassification`, ...: safetensors, config,
  tokenizer) for `AutoModelForSequenceClassification.from_pretrained`. Standard models have one head
  count and one FFN width for all layers and a head size tied to hidden_size / heads, so layers
  with fewer heads or units are zero-padded to the largest (exact: a zero head attends to nothing
  and a zero unit outputs gelu(0) = 0). SMALL-space members with every head need no padding.
- `export_compact`: config.json + model.safetensors + `modeling_compact_bert.py` (torch only),
  at the real per-layer sizes (MEDIUM / LARGE), plus an ONNX graph (`export_onnx`).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from search_spaces.sub_network import IllegalSubNetworkError
from trainers.supernet import standalone
from trainers.supernet.checkpoint import to_hf_name
from trainers.supernet.families import family_for
from trainers.supernet.standalone import CompactBert

MODELING_FILE = "modeling_compact_bert.py"
ONNX_FILE = "model.onnx"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _pad(t: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """`t` with zeros appended along `dim` up to `size`."""
    shape = list(t.shape)
    shape[dim] = size - t.shape[dim]
    return torch.cat([t, t.new_zeros(shape)], dim=dim)


def standard_state(model: CompactBert, heads: int, units: int) -> dict[str, torch.Tensor]:
    """The model's weights as its family's sequence classifier with `heads` heads and `units` FFN units per layer."""
    width = heads * model.config.head_size
    rows = {"attention.query.", "attention.key.", "attention.value.", "ffn.up."}
    out = {}
    for name, t in model.state_dict().items():
        block = name.split(".", 2)[-1] if name.startswith("layers.") else ""
        full = units if block.startswith("ffn.") else width
        if any(block.startswith(r) for r in rows):
            t = _pad(t, full, 0)  # weight (out, hidden) rows and bias (out,)
        elif block in ("attention.output.weight", "ffn.down.weight"):
            t = _pad(t, full, 1)  # weight (hidden, in): columns
        out[to_hf_name(name, model.config.family)] = t.detach().contiguous()
    return out


def export_standard(model: CompactBert, directory: str | Path, tokenizer: Any = None) -> Path:
    """Save `model` as a standard sequence classifier of its family (safetensors).

    Every kept layer must have at least one head and one unit: standard BERT cannot skip the
    attention or FFN block of a layer (use `export_compact` for those). With a relative position
    bias (MPNet) every layer must keep its first heads, whose columns of the shared table a
    standard model reads.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    c = model.config
    if c.pooling != "cls":
        raise IllegalSubNetworkError(f"the model pools by {c.pooling!r}; a standard BERT pools [CLS] (use export_compact)")
    for i, (h, u) in enumerate(zip(c.heads, c.units)):
        if not h or not u:
            raise IllegalSubNetworkError(f"layer {i} has {h} heads and {u} FFN units; a standard BERT needs both (use export_compact)")
    # Standard BERT's head size is hidden_size / num_attention_heads: keep the original head count.
    num_heads, units = c.hidden_size // c.head_size, max(c.units, default=1)
    if max(c.heads, default=0) > num_heads or c.hidden_size % c.head_size:
        raise IllegalSubNetworkError(f"heads {c.heads} of size {c.head_size} do not fit a BERT of hidden size {c.hidden_size}")
    if any(c.bias_heads(i) != tuple(range(h)) for i, h in enumerate(c.heads)):
        raise IllegalSubNetworkError(f"heads {c.relative_heads} are not each layer's first; a standard {c.family} reads the first "
                                     "columns of its relative position bias (use export_compact)")
    config = AutoConfig.for_model(
        c.family,
        **family_for(c.family).write(c, num_heads, units),
        num_labels=c.num_labels,
        **({"id2label": {int(k): v for k, v in c.id2label.items()}} if c.id2label else {}),
    )
    hf = AutoModelForSequenceClassification.from_config(config)
    hf.load_state_dict(standard_state(model, num_heads, units), strict=True)
    out = Path(directory)
    hf.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def export_compact(model: CompactBert, directory: str | Path, tokenizer: Any = None, onnx: bool = True) -> Path:
    """Save `model` at its per-layer sizes, loadable without this project:
    `modeling_compact_bert.load(directory)` (torch + safetensors) or `model.onnx` (onnxruntime)."""
    out = standalone.save(model, directory)
    shutil.copyfile(standalone.__file__, out / MODELING_FILE)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    if onnx:
        export_onnx(model, out / ONNX_FILE)
    return out


def export_onnx(model: CompactBert, path: str | Path, opset: int = 18) -> Path:
    """An ONNX graph with inputs input_ids / attention_mask / token_type_ids (int64, dynamic
    batch and sequence axes) and output logits (batch, num_labels)."""
    was_training = model.training
    model.eval()
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long), torch.zeros(2, 8, dtype=torch.long))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.config.max_position)
    shapes = {name: {0: batch, 1: seq} for name in ONNX_INPUTS}
    try:
        program = torch.onnx.export(
            model, example, input_names=list(ONNX_INPUTS), output_names=["logits"], dynamic_shapes=shapes, opset_version=opset, dynamo=True, verbose=False
        )
        assert program is not None
        program.save(str(path))
    finally:
        model.train(was_training)
    return Path(path)
