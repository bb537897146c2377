"""Held-out scores of a distilled student: teacher agreement, masked-token accuracy and loss.

Both are computed on text the student never trained on, in eval mode, on fixed inputs (a fixed
masking seed), so two students — or two reports of one student — are scored on the same tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from trainers.autodistill.student import Student
from trainers.distill.masking import IGNORE, mask_tokens
from trainers.distill.teacher_cache import TeacherTargets
from trainers.distill.transfer import DistillHeads, teacher_layer


@torch.no_grad()
def held_out_agreement(student: Student, heads: DistillHeads, targets: TeacherTargets, blocks: Tensor, block: int,
                       batch_size: int) -> float:
    """The share of the teacher layer's energy that student `block` (through its adapter) explains on
    held-out text: 1 - sum (t - s)^2 / sum t^2 over tokens and features. 1 is a perfect match, 0 is
    no better than predicting zeros; it is the complement of the training loss, so it is on the same
    footing at every stage whatever the scale of the teacher layer."""
    layer = teacher_layer(block, student.arch.num_blocks, targets.teacher.num_layers)
    was_training = student.training
    student.eval()
    error, energy = 0.0, 0.0
    for ids in blocks.split(batch_size):
        ids = ids.to(targets.device)
        mask = torch.ones_like(ids)
        target, _ = targets.layer(ids, layer, attention=False)  # (B, S, D)
        mine = heads.adapters[block - 1](student(ids, mask, num_blocks=block).hidden_states[-1])  # (B, S, D)
        error += float((target - mine).pow(2).sum())
        energy += float(target.pow(2).sum())
    student.train(was_training)
    return 1.0 - error / max(energy, 1e-12)


@torch.no_grad()
def masked_token_scores(student: Student, heads: DistillHeads, tokenizer: PreTrainedTokenizerBase,
                        blocks: Tensor, mask_prob: float, seed: int, batch_size: int) -> dict[str, float]:
    """How well the student's MLM head restores BERT-masked held-out tokens: `mlm_accuracy`, the
    fraction restored (the paper's MLM accuracy), and `mlm_heldout_loss`, their mean cross-entropy
    in nats. After a short distillation most students restore only the commonest tokens, so the
    accuracy moves in steps of one token and ties; the cross-entropy still orders them."""
    generator = torch.Generator().manual_seed(seed)
    device = student.embeddings.word.weight.device
    was_training = student.training
    student.eval()
    correct, nll, count = 0, 0.0, 0
    for ids in blocks.split(batch_size):
        corrupted, labels = mask_tokens(ids, tokenizer, mask_prob, generator)
        corrupted, labels = corrupted.to(device), labels.to(device)
        hidden = student(corrupted, torch.ones_like(corrupted)).last_hidden_state  # (B, S, h)
        chosen = labels != IGNORE
        logits = heads.mlm(hidden[chosen], student.embeddings.word.weight)  # (M, vocab)
        correct += int((logits.argmax(-1) == labels[chosen]).sum())
        nll += float(F.cross_entropy(logits.float(), labels[chosen], reduction="sum"))
        count += int(chosen.sum())
    student.train(was_training)
    return {"mlm_accuracy": correct / count, "mlm_heldout_loss": nll / count}
