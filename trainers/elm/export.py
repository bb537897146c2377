"""Export a found and retrained ELM model: config.json, model.safetensors, `modeling_elm.py` (a torch-only
loader, no lmnas code), the tokenizer and, optionally, an ONNX graph checked by onnxruntime users as
`logits = session.run(None, {"input_ids": ..., "attention_mask": ...})`."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file

from trainers.elm import modeling_elm
from trainers.elm.task import ElmClassifier

ONNX_FILE = "model.onnx"
ONNX_INPUTS = ("input_ids", "attention_mask")


def export_elm(classifier: ElmClassifier, directory: str | Path, label_names: Sequence[str], tokenizer: Any = None,
               onnx: bool = True) -> Path:
    """Save an extracted model with its head so that `modeling_elm.load(directory)` rebuilds it."""
    arch = classifier.encoder.arch  # type: ignore[union-attr]  # an extracted ElmModel
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {**asdict(arch.shape), "labels": list(label_names),
              "layers": [{"kind": c.kind, "ffn": c.ffn, "heads": c.heads} for c in arch.layers]}
    (out / modeling_elm.CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in classifier.state_dict().items()}
    save_file(state, str(out / modeling_elm.WEIGHTS_NAME))
    shutil.copyfile(modeling_elm.__file__, out / "modeling_elm.py")
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    if onnx:
        export_onnx(modeling_elm.load(out), out / ONNX_FILE)
    return out


def export_onnx(model: torch.nn.Module, path: Path, opset: int = 18) -> Path:
    """ONNX graph of the standalone model: int64 (batch, sequence) inputs, (batch, labels) logits."""
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("sequence", max=model.config["max_positions"])  # type: ignore[index]
    shapes = {name: {0: batch, 1: seq} for name in ONNX_INPUTS}
    program = torch.onnx.export(model, example, input_names=list(ONNX_INPUTS), output_names=["logits"],
                                dynamic_shapes=shapes, opset_version=opset, dynamo=True, verbose=False)
    assert program is not None
    program.save(str(path))
    return path
