"""Knowledge-distillation losses, one function each.

- `logit_kl`: the soft-target KL of Hinton et al. (2015), scaled by T^2 so gradients keep their
  size across temperatures.
- `attention_kl`: AutoDistill's MHA transfer (autodistill.txt §3.3.1, Eq. 1), KL(teacher || student)
  per attention row, averaged over heads and query positions. `align_heads` makes head counts meet.
- `feature_mse`: AutoDistill's feature-map transfer (Eq. 2), mean squared error per token and feature;
  `relative_feature_mse` divides it by the teacher features' mean square (see there why).
- `pearson_class_loss`, `pearson_feature_loss`: ELM's relational, scale-and-shift invariant losses
  (elm-elastic-architecture-search.txt §III-C, Eq. 4 and Eq. 5, after DIST). `pearson_feature_loss`
  takes a channel mask, so an attention row is correlated over its real keys only.
- `pearson_intra_class_loss`, `relational_class_loss`: Eq. 4 plus the intra-class term of DIST
  (Huang et al. 2022, "Knowledge Distillation from A Stronger Teacher", ELM's reference [6]), the
  class loss of the ELM trainer (option `intra_class_weight`, default 1).

Why the intra-class term. Eq. 4 correlates each example's C class scores (DIST's inter-class
relation). With C = 2 the centred scores are +-(y_0 - y_1) / 2, so rho is +-1 for every example: the
loss is a step function of the sign and its gradient is zero, apart from what the 1e-8 in the
denominator leaves near ties. A binary task's head then never learns. DIST adds a second relation,
each class's column correlated across the batch; it is kept here as DIST defines it, on the softmax
probabilities (temperature 1). On logits it is shift-invariant per class, which leaves each class's
offset, hence a two-class decision threshold, free; on probabilities the softmax's curvature fixes it.
Measured by `benchmarks/elm_class_loss.py` (benchmarks/results/elm_class_loss.txt; random linear
teacher over 32 features, fresh head, batch 16, 5 seeds, 500 AdamW steps):

    loss                max|grad| on a fresh head   agreement with the teacher, head trained on it alone
                        C = 2       C = 6           C = 2                   C = 5
    Eq. 4               1.6e-04     1.6             0.595 (0.554-0.656)     1.000
    Eq. 4 + intra       5.2         2.6             0.987 (0.977-0.996)     0.987 (0.984-0.990)
    Eq. 4 + intra/logit 4.0         2.5             0.939 (0.857-0.985)     1.000
    Eq. 1 (KL)          0.24        0.21            0.999                   0.994

The intra term costs a little on five classes at 500 steps (0.987 against 1.000; 0.997 at 1,500
steps, where two classes reach 0.998); weights 0.25-2 give 0.966-0.994 on two classes, 0.987-0.992
on five, so 1 (the two relations weighted equally) is kept. On the study's task (`--real`: the
studies/elm.yaml super-network fine-tuned on movie reviews, 300 SPOS steps, no gold labels, 3 seeds)
Eq. 4 alone leaves a constant predictor on every path (0.428), Eq. 4 + intra reaches 0.657 on the
all-BERT path (0.580-0.740; the teacher's probe: 0.760).

Masks are (B, S) with 1 for real tokens and 0 for padding; padded positions do not count.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

# Probabilities are clamped here before the log: a student row that underflows to exactly 0 where the
# teacher is positive would otherwise give an infinite loss and NaN gradients.
_MIN_PROB = 1e-12


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of `values` (B, S) over the positions where `mask` (B, S) is 1 (all when None)."""
    if mask is None:
        return values.mean()
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def logit_kl(teacher_logits: Tensor, student_logits: Tensor, temperature: float = 1.0,
             mask: Tensor | None = None) -> Tensor:
    """KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over rows.

    Logits are (..., C); `mask`, when given, has the leading shape (...) and selects the rows.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    check_same_shape(teacher_logits, student_logits)
    log_p_t = torch.log_softmax(teacher_logits / temperature, dim=-1)
    log_p_s = torch.log_softmax(student_logits / temperature, dim=-1)
    per_row = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)  # (...)
    return masked_mean(per_row, mask) * temperature**2


def attention_kl(teacher_probs: Tensor, student_probs: Tensor, mask: Tensor | None = None) -> Tensor:
    """Eq. 1: (1 / SH) sum_s sum_h KL(a_T[s, h] || a_S[s, h]), averaged over the batch.

    Both are attention probabilities (B, H, S, S), rows over keys summing to 1; use `align_heads`
    first when the head counts differ. Only real query positions (mask == 1) are averaged.
    """
    check_same_shape(teacher_probs, student_probs)
    p_t = teacher_probs
    p_s = student_probs.clamp_min(_MIN_PROB)
    # xlogy(0, .) = 0: keys the teacher ignores (padding) add nothing.
    per_row = (torch.xlogy(p_t, p_t) - torch.xlogy(p_t, p_s)).sum(-1).mean(1)  # (B, S): mean over heads
    return masked_mean(per_row, mask)


def merge_heads(probs: Tensor, groups: int) -> Tensor:
    """(B, H, S, S) -> (B, groups, S, S): the mean of each run of H / groups adjacent heads.

    A mean of attention distributions is still a distribution, so KL stays well defined.
    """
    bsz, heads, q, k = probs.shape
    if groups < 1 or heads % groups:
        raise ValueError(f"groups must divide the {heads} heads, got {groups}")
    return probs.view(bsz, groups, heads // groups, q, k).mean(2)


def align_heads(teacher_probs: Tensor, student_probs: Tensor) -> tuple[Tensor, Tensor]:
    """Both attention maps with gcd(H_teacher, H_student) heads, so they can be compared head by head.

    A student whose head count divides the teacher's keeps its heads and sees the teacher's heads
    averaged in groups; otherwise both sides are merged to the common divisor.
    """
    groups = math.gcd(teacher_probs.shape[1], student_probs.shape[1])
    return merge_heads(teacher_probs, groups), merge_heads(student_probs, groups)


def feature_mse(teacher_features: Tensor, student_features: Tensor, mask: Tensor | None = None) -> Tensor:
    """Eq. 2: (1 / SN) sum_s sum_i (f_T[s, i] - f_S[s, i])^2, averaged over the batch.

    Features are (B, S, N) — project the student to the teacher's width N first.
    """
    check_same_shape(teacher_features, student_features)
    per_token = (teacher_features - student_features).pow(2).mean(-1)  # (B, S)
    return masked_mean(per_token, mask)


def relative_feature_mse(teacher_features: Tensor, student_features: Tensor, mask: Tensor | None = None) -> Tensor:
    """Eq. 2 divided by the mean square of the teacher's features: 1 for a student that outputs zeros.

    The divisor does not depend on the student, so the minimiser is Eq. 2's; what changes is the
    weight against the other losses. Teacher layers differ in scale (MiniLM-L6's last layer holds a
    quarter of the energy of the others), and plain Eq. 2 would let such a layer barely count.
    """
    energy = masked_mean(teacher_features.pow(2).mean(-1), mask).clamp_min(1e-12)  # a constant, no gradient
    return feature_mse(teacher_features, student_features, mask) / energy.detach()


def pearson_correlation(a: Tensor, b: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Pearson's rho between a and b along the last axis: (..., C) x (..., C) -> (...).

    `mask`, broadcastable to (..., C), is 1 for the entries that count: the others are left out of
    both means and both norms, so a row's rho is that of its selected entries alone.
    """
    check_same_shape(a, b)
    if mask is None:
        a = a - a.mean(-1, keepdim=True)
        b = b - b.mean(-1, keepdim=True)
    else:
        weights = mask.to(a.dtype).expand_as(a)
        count = weights.sum(-1, keepdim=True).clamp_min(1.0)
        # Centre on the selected entries' mean, then zero the others so they add to no sum below.
        a = (a - (a * weights).sum(-1, keepdim=True) / count) * weights
        b = (b - (b * weights).sum(-1, keepdim=True) / count) * weights
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)


def pearson_class_loss(teacher_logits: Tensor, student_logits: Tensor) -> Tensor:
    """ELM Eq. 4 (DIST's inter-class relation): (1 / B) sum_i [1 - rho(Y_T[i], Y_S[i])] over (B, C) logits.

    On two classes rho is +-1 for every example, so this term has no gradient (see the module docstring).
    """
    check_logits(teacher_logits)
    return (1.0 - pearson_correlation(teacher_logits, student_logits)).mean()


def pearson_intra_class_loss(teacher_logits: Tensor, student_logits: Tensor) -> Tensor:
    """DIST's intra-class relation: (1 / C) sum_j [1 - rho(P_T[:, j], P_S[:, j])], each class's column
    of the softmax probabilities P (temperature 1) correlated across the B examples of the batch."""
    check_logits(teacher_logits)
    p_t, p_s = torch.softmax(teacher_logits, -1), torch.softmax(student_logits, -1)  # (B, C)
    return (1.0 - pearson_correlation(p_t.T, p_s.T)).mean()


def relational_class_loss(teacher_logits: Tensor, student_logits: Tensor, intra_weight: float) -> Tensor:
    """Eq. 4 plus `intra_weight` times DIST's intra-class term; `intra_weight` 0 is Eq. 4 as written."""
    loss = pearson_class_loss(teacher_logits, student_logits)
    if intra_weight:
        loss = loss + intra_weight * pearson_intra_class_loss(teacher_logits, student_logits)
    return loss


def pearson_feature_loss(teacher_features: Tensor, student_features: Tensor, mask: Tensor | None = None,
                         channel_mask: Tensor | None = None) -> Tensor:
    """ELM Eq. 5 for one layer: the mean over the B x N tokens of 1 - rho across the C channels.

    Features are (B, N, C) attention or FFN outputs at equal width. Eq. 5 averages this over the
    L distilled layers; with equal B x N per layer that is the mean of the per-layer values.
    `mask` (B, N) selects the tokens averaged; `channel_mask` (broadcastable to (B, N, C)) the
    channels each token's rho is taken over (the real keys, when the rows are attention rows).
    """
    if teacher_features.dim() != 3:
        raise ValueError(f"features must be (B, N, C), got shape {tuple(teacher_features.shape)}")
    per_token = 1.0 - pearson_correlation(teacher_features, student_features, channel_mask)  # (B, N)
    return masked_mean(per_token, mask)


def check_logits(logits: Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, C), got shape {tuple(logits.shape)}")


def check_same_shape(teacher: Tensor, student: Tensor) -> None:
    if teacher.shape != student.shape:
        raise ValueError(f"teacher and student shapes must match, got {tuple(teacher.shape)} and {tuple(student.shape)}")
