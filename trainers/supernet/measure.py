"""Scores of one sub-network: validation accuracy and loss in one pass, parameters, FLOPs, latency.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.2: a sub-network of
a trained super-network is scored by a single pass over the validation data; its size is counted on
the extracted model and its latency measured on the worker's own device (Appendix F).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trainers.efficiency import ForwardShape, count_params, encoder_flops, host_busy, measure_latency, token_inputs
from trainers.encode import Encoded
from trainers.precision import autocast, to_device
from trainers.supernet.options import MeasureOptions
from trainers.supernet.standalone import CompactBert


@torch.no_grad()
def evaluate(model: CompactBert, split: Encoded, batch_size: int = 64, precision: str = "fp32") -> dict[str, float]:
    """Accuracy and mean cross-entropy of `model` on a labelled split (eval mode; mode restored), its
    forwards in `precision` (`trainers/precision.py`)."""
    assert split.labels is not None, "evaluate needs a labelled split"
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    try:
        for start in range(0, len(split), batch_size):
            # A neighbour trial times its forwards only between batches (see trainers/efficiency/host_lock.py).
            with host_busy():
                rows = slice(start, start + batch_size)
                with autocast(precision, device):
                    logits = model(to_device(split.input_ids[rows], device),
                                   to_device(split.attention_mask[rows], device)).float()  # (B, C)
                labels = to_device(split.labels[rows], device)
                loss += float(F.cross_entropy(logits, labels, reduction="sum"))
                correct += int((logits.argmax(-1) == labels).sum())
    finally:
        model.train(was_training)
    return {"accuracy": correct / len(split), "loss": loss / len(split)}


def efficiency(model: CompactBert, options: MeasureOptions) -> dict[str, float | str]:
    """Measured parameters, analytic FLOPs at (latency_batch, latency_seq_len), and measured latency
    on the model's device in the options' precision, with the hardware's name and the precision."""
    c = model.config
    shape = ForwardShape(hidden=c.hidden_size, head_dim=c.head_size, heads_per_layer=c.heads, ffn_per_layer=c.units,
                         seq_len=options.latency_seq_len, batch=options.latency_batch, num_labels=c.num_labels)
    latency = measure_latency(model, options.latency_options(), token_inputs(c.vocab_size))
    return {**count_params(model).as_metrics(), "flops": float(encoder_flops(shape).total), **latency.report()}
