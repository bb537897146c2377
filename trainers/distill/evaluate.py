"""Held-out scores of a distilled student: teacher agreement and masked-token accuracy.

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
from trainers.distill.teacher import Teacher
from trainers.distill.transfer import DistillHeads, teacher_layer


@torch.no_grad()
def held_out_agreement(student: Student, heads: DistillHeads, teacher: Teacher, blocks: Tensor, block: int,
                       batch_size: int) -> float:
    """Mean cosine similarity, over held-out tokens, between student `block` (through its adapter)
    and the teacher layer it is distilled from: 1 is perfect agreement, about 0 is none."""
    layer = teacher_layer(block, student.arch.num_blocks, teacher.num_layers)
    was_training = student.training
    student.eval()
    total, count = 0.0, 0
    for ids in blocks.split(batch_size):
        ids = ids.to(teacher.device)
        mask = torch.ones_like(ids)
        target = teacher(ids, mask, num_layers=layer).hidden_states[layer]  # (B, S, D)
        mine = heads.adapters[block - 1](student(ids, mask, num_blocks=block).hidden_states[-1])  # (B, S, D)
        total += float(F.cosine_similarity(mine, target, dim=-1).sum())
        count += ids.numel()
    student.train(was_training)
    return total / count


@torch.no_grad()
def masked_token_accuracy(student: Student, heads: DistillHeads, tokenizer: PreTrainedTokenizerBase,
                          blocks: Tensor, mask_prob: float, seed: int, batch_size: int) -> float:
    """Fraction of BERT-masked held-out tokens the student's MLM head restores (the paper's MLM accuracy)."""
    generator = torch.Generator().manual_seed(seed)
    device = student.embeddings.word.weight.device
    was_training = student.training
    student.eval()
    correct, count = 0, 0
    for ids in blocks.split(batch_size):
        corrupted, labels = mask_tokens(ids, tokenizer, mask_prob, generator)
        corrupted, labels = corrupted.to(device), labels.to(device)
        hidden = student(corrupted, torch.ones_like(corrupted)).last_hidden_state  # (B, S, h)
        chosen = labels != IGNORE
        logits = heads.mlm(hidden[chosen], student.embeddings.word.weight)  # (M, vocab)
        correct += int((logits.argmax(-1) == labels[chosen]).sum())
        count += int(chosen.sum())
    student.train(was_training)
    return correct / count
