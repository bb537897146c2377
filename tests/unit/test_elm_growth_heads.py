"""PCA-guided FFN growth and CKA head-number search (ELM §III-B, Algorithm 1)."""
from __future__ import annotations

import pytest
import torch

from search_spaces.elm import BLOCK_KINDS, ElmArch, ElmShape, LayerChoice
from trainers.efficiency import count_params
from trainers.elm.cka_heads import cka_matrix, head_number_search, linear_cka, search_heads
from trainers.elm.pca_growth import GrowthConfig, default_budget, grow_after_epoch, pca_components, plan_growth
from trainers.elm.supernet import ElmModel, ElmSuperNet

SHAPE = ElmShape(num_layers=2, hidden_size=32, num_heads=4, inner_size=8, vocab_size=120, max_positions=40)


def test_pca_components_count_the_directions_the_data_spans() -> None:
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(10, 10, generator=gen))[0][:, :3]  # 3 orthonormal directions in 10-D
    data = torch.randn(200, 3, generator=gen) @ basis.T + 5.0  # rank 3 after centring
    assert pca_components(data, 0.99) == 3
    scaled = data - 5.0
    scaled[:, :] = scaled @ torch.diag(torch.tensor([1.0] * 9 + [0.0]))  # still at most rank 3
    assert pca_components(scaled, 0.99) <= 3
    assert pca_components(torch.ones(5, 4), 0.99) == 0  # no variance at all


def blocks(n: int) -> list[tuple[int, str]]:
    return [(i, BLOCK_KINDS[0]) for i in range(n)]


def test_plan_growth_takes_the_highest_scores_up_to_top_k() -> None:
    ids = blocks(5)
    scores = dict(zip(ids, [3, 9, 1, 7, 9]))
    units, costs = dict.fromkeys(ids, 8), dict.fromkeys(ids, 10)
    assert plan_growth(scores, units, costs, params=0, budget=1e9, top_k=3, step=8, max_units=64) == \
        [ids[1], ids[4], ids[3]]  # 9, 9 (ties: earlier layer first), then 7


def test_plan_growth_stops_at_the_budget_and_at_max_units() -> None:
    ids = blocks(4)
    scores = dict(zip(ids, [4, 3, 2, 1]))
    costs = dict.fromkeys(ids, 10)  # 8 units x 10 = 80 parameters per growth
    units = {ids[0]: 64, ids[1]: 8, ids[2]: 8, ids[3]: 8}  # the best block is already at max_units
    plan = lambda budget: plan_growth(scores, units, costs, params=1000, budget=budget, top_k=4, step=8,  # noqa: E731
                                      max_units=64)
    assert plan(1160) == [ids[1], ids[2]]  # 1000 + 80 + 80 fits exactly; a third would pass the budget
    assert plan(1159) == [ids[1]]
    assert plan(1079) == []


def test_growth_follows_pca_scores_and_never_passes_the_budget() -> None:
    torch.manual_seed(0)
    supernet = ElmSuperNet(SHAPE, [[8] * 6, [8] * 6])
    ids = torch.randint(1, 120, (4, 12))
    mask = torch.ones_like(ids)
    assert default_budget(supernet) == count_params(ElmSuperNet(SHAPE, [[32] * 6, [32] * 6])).total
    first = grow_after_epoch(supernet, ids, mask, GrowthConfig(top_k=3, step=8, budget=1e12))
    ranked = sorted(first.scores, key=lambda b: (-first.scores[b], b[0], BLOCK_KINDS.index(b[1])))
    assert first.grown == tuple(ranked[:3])
    assert all(supernet.block(*b).ffn.units == (16 if b in first.grown else 8) for b in first.scores)

    budget = count_params(supernet).total + 2000
    config = GrowthConfig(top_k=3, step=8, budget=budget)
    for _ in range(6):
        step = grow_after_epoch(supernet, ids, mask, config)
        assert step.params == count_params(supernet).total <= budget
    assert not step.grown  # stopped: even the cheapest growth (a bottleneck FFN) no longer fits
    cheapest = 8 * (2 * SHAPE.inner_size + 1)
    assert budget - step.params < cheapest


def test_linear_cka_is_one_for_the_same_features_up_to_rotation_and_scale() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 6, generator=gen)
    rotation = torch.linalg.qr(torch.randn(6, 6, generator=gen))[0]
    assert linear_cka(x, 3.0 * x @ rotation + 1.0) == pytest.approx(1.0)
    assert linear_cka(x, torch.randn(100, 6, generator=gen)) < 0.3


def test_head_number_search_follows_algorithm_1() -> None:
    q = torch.eye(4, dtype=torch.float64)
    q[0, 1] = q[1, 0] = 0.95  # head 1 repeats head 0
    q[2, 3] = q[3, 2] = 0.92  # head 3 repeats head 2
    assert head_number_search(q, channels=8) == 2
    q[2, 3] = q[3, 2] = 0.9  # not above eta: kept (Algorithm 1 removes on Q > eta)
    assert head_number_search(q, channels=6) == 3
    # 3 heads survive but do not divide 8 channels: lowered to 2.
    assert head_number_search(q, channels=8) == 2
    assert head_number_search(torch.eye(4, dtype=torch.float64), channels=8) == 4
    with pytest.raises(ValueError, match="eta must be in"):
        head_number_search(q, channels=8, eta=1.5)


def test_cka_matrix_finds_duplicated_heads() -> None:
    gen = torch.Generator().manual_seed(1)
    outputs = torch.randn(4, 60, 5, generator=gen)
    outputs[1] = 2.0 * outputs[0]
    q = cka_matrix(outputs)
    assert q[0, 1] == pytest.approx(1.0) and torch.allclose(q, q.T)
    assert head_number_search(q, channels=15) == 3  # head 1 merged; the independent heads stay


def test_search_heads_merges_a_head_that_copies_another() -> None:
    torch.manual_seed(0)
    arch = ElmArch(SHAPE, (LayerChoice("bert", 8, 4), LayerChoice("mobile", 8, 4)))
    model = ElmModel(arch).eval()
    with torch.no_grad():
        for block in model.blocks:
            for proj in block.attention.projections():
                proj.weight.normal_(std=1.0)  # peaked, distinct heads
                width = proj.weight.shape[0] // 4
                proj.weight[width:2 * width] = proj.weight[:width]  # head 1 copies head 0
                proj.bias[width:2 * width] = proj.bias[:width]
    ids = torch.randint(1, 120, (4, 12), generator=torch.Generator().manual_seed(2))
    found = search_heads(model, arch, ids, torch.ones_like(ids))
    # 3 distinct heads remain, and 3 divides neither 32 (BERT) nor 8 (MobileBERT bottleneck): 2 each.
    assert [c.heads for c in found.layers] == [2, 2]
    assert [(c.kind, c.ffn) for c in found.layers] == [(c.kind, c.ffn) for c in arch.layers]
