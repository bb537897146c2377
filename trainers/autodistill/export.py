"""Deployable exports of distilled AutoDistill students.

A folder holds `config.json` (the student's shape, and for a task model its labels),
`model.safetensors`, `modeling_student.py` (a copy of `trainers/autodistill/student.py`, which
needs only torch) and the teacher's tokenizer files, whose vocabulary the student shares:

    import modeling_student
    model = modeling_student.load("<folder>")   # StudentClassifier or the bare Student encoder
    logits = model(input_ids, attention_mask)   # (B, num_labels)

With `onnx=True` a task model also gets `model.onnx` (inputs input_ids / attention_mask, output
logits, dynamic batch and sequence axes).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file

from trainers.autodistill import student as student_module
from trainers.autodistill.student import CONFIG_FILE, WEIGHTS_FILE, Student, StudentClassifier

MODELING_FILE = "modeling_student.py"
ONNX_FILE = "model.onnx"


def export_student(model: Student | StudentClassifier, directory: str | Path, tokenizer: Any = None,
                   label_names: Sequence[str] | None = None, onnx: bool = False) -> Path:
    """Write `model` (an encoder or a task model) to `directory` in the format above; returns it."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    student = model.student if isinstance(model, StudentClassifier) else model
    config: dict[str, Any] = {"model_type": "autodistill_student", "arch": asdict(student.arch), "pooling": "mean"}
    if isinstance(model, StudentClassifier):
        config["num_labels"] = model.head.out_features
        if label_names is not None:
            config["id2label"] = {str(i): name for i, name in enumerate(label_names)}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_FILE))
    shutil.copyfile(student_module.__file__, out / MODELING_FILE)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    if onnx and isinstance(model, StudentClassifier):
        export_onnx(model, out / ONNX_FILE)
    return out


def export_onnx(model: StudentClassifier, path: Path, opset: int = 18) -> Path:
    """The task model as ONNX: int64 input_ids and attention_mask (batch, sequence) -> logits (batch, labels)."""
    was_training = model.training
    model.eval()
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("sequence", max=model.student.arch.max_positions)
    shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    try:
        program = torch.onnx.export(model, example, input_names=["input_ids", "attention_mask"],
                                    output_names=["logits"], dynamic_shapes=shapes, opset_version=opset, dynamo=True,
                                    verbose=False)
        assert program is not None
        program.save(str(path))
    finally:
        model.train(was_training)
    return path
