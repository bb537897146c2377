"""Distillation losses against hand computations."""
from __future__ import annotations

import math

import pytest
import torch

from trainers.distill.losses import (
    align_heads,
    attention_kl,
    feature_mse,
    logit_kl,
    merge_heads,
    pearson_class_loss,
    pearson_correlation,
    pearson_feature_loss,
    pearson_intra_class_loss,
    relational_class_loss,
    relative_feature_mse,
)


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def test_logit_kl_matches_hand_computation_and_temperature_scaling() -> None:
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # softmax [0.25, 0.75]
    student = torch.zeros(1, 2)  # softmax [0.5, 0.5]
    assert logit_kl(teacher, student).item() == pytest.approx(kl([0.25, 0.75], [0.5, 0.5]), rel=1e-6)
    # At T = 2 the teacher's softmax is [1, sqrt 3] / (1 + sqrt 3); the loss is scaled by T^2 = 4.
    r = math.sqrt(3.0)
    expected = 4 * kl([1 / (1 + r), r / (1 + r)], [0.5, 0.5])
    assert logit_kl(teacher, student, temperature=2.0).item() == pytest.approx(expected, rel=1e-6)
    assert logit_kl(student, student).item() == pytest.approx(0.0, abs=1e-7)


def test_logit_kl_mask_selects_rows() -> None:
    teacher = torch.tensor([[[0.0, math.log(3.0)], [5.0, -5.0]]])  # (B=1, S=2, C=2)
    student = torch.zeros(1, 2, 2)
    only_first = logit_kl(teacher, student, mask=torch.tensor([[1, 0]]))
    assert only_first.item() == pytest.approx(kl([0.25, 0.75], [0.5, 0.5]), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        logit_kl(teacher, student, temperature=0.0)


def test_attention_kl_is_eq_1_averaged_over_heads_and_real_queries() -> None:
    # (B=1, H=2, S=2, S=2); query 2 is padding and must not count.
    teacher = torch.tensor([[[[0.25, 0.75], [1.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]]])
    student = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]], [[0.9, 0.1], [0.5, 0.5]]]])
    mask = torch.tensor([[1, 0]])
    expected = (kl([0.25, 0.75], [0.5, 0.5]) + kl([0.5, 0.5], [0.9, 0.1])) / 2
    assert attention_kl(teacher, student, mask).item() == pytest.approx(expected, rel=1e-5)
    # Teacher zeros (padded keys) add nothing and never produce NaN, even where the student is 0 too.
    zero_keys = torch.tensor([[[[1.0, 0.0]]]])
    assert attention_kl(zero_keys, zero_keys).item() == pytest.approx(0.0, abs=1e-7)
    assert torch.isfinite(attention_kl(teacher, student))


def test_merge_and_align_heads() -> None:
    probs = torch.softmax(torch.randn(2, 12, 3, 3, generator=torch.Generator().manual_seed(0)), -1)
    merged = merge_heads(probs, 4)  # groups of 3 adjacent heads
    assert merged.shape == (2, 4, 3, 3)
    assert torch.allclose(merged[:, 1], probs[:, 3:6].mean(1))
    assert torch.allclose(merged.sum(-1), torch.ones(2, 4, 3))
    student = torch.softmax(torch.randn(2, 8, 3, 3), -1)
    t, s = align_heads(probs, student)
    assert t.shape == s.shape == (2, 4, 3, 3)  # gcd(12, 8) = 4
    t, s = align_heads(probs, student[:, :4])
    assert s.shape[1] == 4 and torch.equal(s, student[:, :4])  # a divisor keeps its heads
    with pytest.raises(ValueError, match="groups must divide"):
        merge_heads(probs, 5)


def test_feature_mse_is_eq_2_over_real_tokens() -> None:
    teacher = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (B=1, S=2, N=2)
    student = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    assert feature_mse(teacher, student).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert feature_mse(teacher, student, torch.tensor([[0, 1]])).item() == pytest.approx((9 + 16) / 2)
    with pytest.raises(ValueError, match="shapes must match"):
        feature_mse(teacher, student[..., :1])


def test_pearson_is_scale_and_shift_invariant() -> None:
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(4, 5, generator=gen)
    assert pearson_class_loss(teacher, 3.0 * teacher + 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert pearson_class_loss(teacher, -teacher).item() == pytest.approx(2.0, abs=1e-6)


def test_pearson_matches_hand_computation() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0]])
    b = torch.tensor([[1.0, 3.0, 2.0]])
    # centred: [-1, 0, 1] and [-1, 1, 0]; rho = 1 / (sqrt 2 * sqrt 2) = 0.5
    assert pearson_correlation(a, b).item() == pytest.approx(0.5, abs=1e-6)
    assert pearson_class_loss(a, b).item() == pytest.approx(0.5, abs=1e-6)


def test_pearson_feature_loss_is_eq_5_per_token() -> None:
    teacher = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]])  # (B=1, N=2, C=3)
    student = torch.tensor([[[1.0, 3.0, 2.0], [3.0, 2.0, 1.0]]])  # rho 0.5 and -1
    assert pearson_feature_loss(teacher, student).item() == pytest.approx((0.5 + 2.0) / 2, abs=1e-6)
    assert pearson_feature_loss(teacher, student, torch.tensor([[1, 0]])).item() == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(B, N, C\)"):
        pearson_feature_loss(teacher[0], student[0])


def test_gradients_are_finite() -> None:
    gen = torch.Generator().manual_seed(1)
    s_logits = torch.randn(3, 4, generator=gen, requires_grad=True)
    s_attn = torch.randn(1, 2, 3, 3, generator=gen, requires_grad=True)
    loss = (logit_kl(torch.randn(3, 4), s_logits, 2.0) + pearson_class_loss(torch.randn(3, 4), s_logits)
            + attention_kl(torch.softmax(torch.randn(1, 2, 3, 3), -1), torch.softmax(s_attn, -1)))
    loss.backward()
    assert torch.isfinite(s_logits.grad).all() and torch.isfinite(s_attn.grad).all()


def test_relative_feature_mse_is_eq_2_over_the_teacher_energy() -> None:
    teacher = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert relative_feature_mse(teacher, torch.zeros_like(teacher)).item() == pytest.approx(1.0)
    assert relative_feature_mse(teacher, teacher / 2).item() == pytest.approx(0.25)
    # scaling the teacher and student together leaves it unchanged
    student = torch.tensor([[[0.5, 1.0], [-1.0, 2.0]]])
    assert relative_feature_mse(10 * teacher, 10 * student).item() == pytest.approx(
        relative_feature_mse(teacher, student).item(), rel=1e-6)


def test_the_intra_class_term_correlates_each_class_across_the_batch() -> None:
    # Two classes, three examples: the teacher's class-1 probabilities are sigmoid(d) for its logit gaps d.
    teacher = torch.tensor([[0.0, -1.0], [0.0, 0.0], [0.0, 2.0]])
    p_t = torch.softmax(teacher, -1)
    student = torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, -2.0]])  # the gaps reversed: rho = -1 per column
    assert pearson_intra_class_loss(teacher, student).item() == pytest.approx(2.0, abs=1e-5)
    assert pearson_intra_class_loss(teacher, teacher + 3.0).item() == pytest.approx(0.0, abs=1e-6)
    # By hand on the class-1 column (class 0's is its mirror, with the same rho).
    expected = 1 - float(pearson_correlation(p_t[:, 1], torch.softmax(student, -1)[:, 1]))
    assert pearson_intra_class_loss(teacher, student).item() == pytest.approx(expected, abs=1e-6)
    # Eq. 4 sees only each example's sign on two classes: 2 where the signs differ, 1 for the tie (rho 0).
    assert pearson_class_loss(teacher, student).item() == pytest.approx(5 / 3, abs=1e-5)
    both = relational_class_loss(teacher, student, 0.5).item()
    assert both == pytest.approx(5 / 3 + 0.5 * 2.0, abs=1e-5)
    assert relational_class_loss(teacher, student, 0.0).item() == pytest.approx(5 / 3, abs=1e-5)


def test_a_two_class_head_gets_a_gradient_from_the_intra_term_and_not_from_eq_4() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(16, 32, generator=gen)
    teacher = features @ torch.randn(32, 2, generator=gen) * 0.35
    head = torch.nn.Linear(32, 2)
    torch.nn.init.normal_(head.weight, std=0.02, generator=gen)
    torch.nn.init.zeros_(head.bias)

    def largest_gradient(loss: torch.Tensor) -> float:
        head.zero_grad()
        loss.backward()
        return float(head.weight.grad.abs().max())

    # Eq. 4's is what its 1e-8 regulariser leaves near ties (here one example whose two logits differ by 7e-4).
    eq4 = largest_gradient(pearson_class_loss(teacher, head(features)))
    with_intra = largest_gradient(relational_class_loss(teacher, head(features), 1.0))
    assert with_intra > 0.5 and eq4 < with_intra / 100, (eq4, with_intra)


def test_masked_correlation_leaves_out_the_masked_entries() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    assert pearson_correlation(a, b, mask).item() == pytest.approx(0.5, abs=1e-6)  # as on the first 3 alone
    assert pearson_correlation(a, b).item() != pytest.approx(0.5, abs=1e-2)
    # A channel mask per row of (B, N, C) features.
    t, s = a.expand(1, 2, 5), b.expand(1, 2, 5)
    assert pearson_feature_loss(t, s, channel_mask=mask[:, None, :]).item() == pytest.approx(0.5, abs=1e-6)
