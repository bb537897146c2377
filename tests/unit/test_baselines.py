"""Pruning baselines on the tiny BERT: masked forward vs slicing, per-example mask gradients, head
importance, Fisher mask search / rearrangement / tuning, layer-dropping sizes, the result table."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from search_spaces.sub_network import SubNetwork, count_params
from tests.unit.tiny_bert import SIZES, save_tiny_bert, tiny_batch
from trainers.baselines import (BaselineData, FisherPruningOptions, HeadPruningOptions, LayerDroppingOptions, fisher_pruning,
                                head_importance, head_pruning, layer_dropping)
from trainers.baselines.common import COLUMNS, fine_tune, sub_network_of
from trainers.baselines.fisher_pruning import fisher_blocks, mask_gradients, rearrange, search_mask, unit_costs
from trainers.baselines.fisher_tuning import apply_scales, tune_masks
from trainers.baselines.masked import masked_forward, per_example_mask_grads
from trainers.efficiency import count_params as module_params
from trainers.encode import Encoded
from trainers.supernet import SuperNetwork
from trainers.supernet.options import FinetuneOptions

L, H, I = SIZES["num_hidden_layers"], SIZES["num_attention_heads"], SIZES["intermediate_size"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny_bert_baselines")
    save_tiny_bert(path)
    return path


@pytest.fixture()
def supernet(checkpoint: Path) -> SuperNetwork:
    return SuperNetwork.from_pretrained(checkpoint)


def split(n: int, seed: int) -> Encoded:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, SIZES["vocab_size"], (n, 10), generator=gen)
    mask = torch.ones_like(ids)
    mask[::3, 6:] = 0
    return Encoded(ids, mask, ids[:, 1] % SIZES["num_labels"])  # a label the model can read


@pytest.fixture(scope="module")
def data() -> BaselineData:
    return BaselineData(split(24, 0), split(18, 1))


def ones() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ones(L, H), torch.ones(L, I)


def zero_head(model: SuperNetwork, layer: int, head: int) -> None:
    att, d = model.layers[layer].attention, model.layers[layer].attention.head_size
    with torch.no_grad():
        for lin in (att.query, att.key, att.value):
            lin.weight[head * d:(head + 1) * d] = 0
            lin.bias[head * d:(head + 1) * d] = 0
        att.output.weight[:, head * d:(head + 1) * d] = 0


# ---------------------------------------------------------------------------------------------- masked forward
def test_masked_forward_equals_the_sliced_super_network(supernet: SuperNetwork) -> None:
    batch = tiny_batch()
    heads, units = ones()
    with torch.no_grad():
        torch.testing.assert_close(masked_forward(supernet, batch["input_ids"], batch["attention_mask"], heads, units),
                                   supernet(batch["input_ids"], batch["attention_mask"]), atol=1e-5, rtol=0)
        heads[0, 1] = heads[1, 3] = heads[1, 0] = 0
        units[0, :40] = 0
        units[1, 5] = 0
        masked = masked_forward(supernet, batch["input_ids"], batch["attention_mask"], heads, units)
        supernet.set_sub_network(sub_network_of(heads.bool(), units.bool()))
        torch.testing.assert_close(masked, supernet(batch["input_ids"], batch["attention_mask"]), atol=1e-5, rtol=0)


def test_mask_gradients_are_per_example(supernet: SuperNetwork, data: BaselineData) -> None:
    assert data.train.labels is not None
    ids, mask, labels = data.train.input_ids[:4], data.train.attention_mask[:4], data.train.labels[:4]
    g_heads, g_units = per_example_mask_grads(supernet, ids, mask, labels, *ones())
    assert g_heads.shape == (4, L, H) and g_units.shape == (4, L, I)
    for x in range(4):
        one_h, one_u = per_example_mask_grads(supernet, ids[x:x + 1], mask[x:x + 1], labels[x:x + 1], *ones())
        torch.testing.assert_close(g_heads[x], one_h[0], atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(g_units[x], one_u[0], atol=1e-6, rtol=1e-4)
    assert all(p.grad is None for p in supernet.parameters())


# ---------------------------------------------------------------------------------------------- head pruning
def test_a_zeroed_head_has_no_importance(supernet: SuperNetwork, data: BaselineData) -> None:
    zero_head(supernet, 1, 2)
    for normalize in (False, True):
        importance = head_importance(supernet, data.train, torch.ones(L, H), batch_size=8, normalize_layers=normalize)
        assert importance.shape == (L, H)
        others = torch.cat([importance[0], importance[1, :2], importance[1, 3:]])
        assert float(importance[1, 2]) <= 1e-6 * float(others.min()) and float(others.min()) > 0
    normalized = head_importance(supernet, data.train, torch.ones(L, H), batch_size=8)
    torch.testing.assert_close(normalized.norm(dim=1), torch.ones(L))


def test_head_pruning_prunes_the_zeroed_head_first_and_walks_down_to_no_heads(supernet: SuperNetwork, data: BaselineData) -> None:
    zero_head(supernet, 0, 3)
    frame = head_pruning(supernet, data, HeadPruningOptions(step=0.25, importance_examples=16, batch_size=8))
    assert list(frame.columns) == list(COLUMNS)
    kept = sorted(row["heads_kept"] for row in frame["config"])
    assert kept == [0, 2, 4, 6, 8]
    first = frame[[c["heads_kept"] == 6 for c in frame["config"]]]["sub_network"].iloc[0]
    assert 3 not in first.heads[0]
    assert frame["params"].is_monotonic_increasing and frame["accuracy"].between(0, 1).all()
    for sub, params in zip(frame["sub_network"], frame["params_non_embedding"]):
        assert sub.num_units == (I, I) and params == count_params(supernet.shape, sub)["params_non_embedding"]
    assert supernet.sub_network == SubNetwork.full(supernet.shape)


# ---------------------------------------------------------------------------------------------- Fisher pruning
@pytest.mark.parametrize("share", [1.0, 0.8, 0.55, 0.3, 0.12])
def test_fisher_mask_search_respects_the_budget(supernet: SuperNetwork, share: float) -> None:
    s = supernet.shape
    gen = torch.Generator().manual_seed(0)
    fisher_h, fisher_u = torch.rand(L, H, generator=gen), torch.rand(L, I, generator=gen) * 0.05
    full = count_params(s, SubNetwork.full(s))["params_non_embedding"]
    budget = int(share * full)
    heads, units = search_mask(s, fisher_h, fisher_u, budget)
    used = count_params(s, sub_network_of(heads, units))["params_non_embedding"]
    head_cost, unit_cost, fixed = unit_costs(s)
    assert used <= budget
    # Nothing more fits: the budget is spent but for less than one unit.
    assert fixed + int(heads.sum()) * head_cost + int(units.sum()) * unit_cost > budget - unit_cost or bool(units.all())
    # What is kept is the most informative of its kind.
    if heads.any() and not heads.all():
        assert float(fisher_h[heads].min()) >= float(fisher_h[~heads].max())
    if units.any() and not units.all():
        assert float(fisher_u[units].min()) >= float(fisher_u[~units].max())


def test_fisher_mask_search_refuses_a_budget_below_the_unprunable_part(supernet: SuperNetwork) -> None:
    with pytest.raises(ValueError, match="cannot be pruned"):
        search_mask(supernet.shape, torch.rand(L, H), torch.rand(L, I), 10)


def objective(pruned: torch.Tensor, block: torch.Tensor) -> float:
    z = pruned.double()
    return float(z @ block @ z)


def test_rearrangement_keeps_the_count_and_finds_cancelling_gradients() -> None:
    v = torch.tensor([3.0, -1.0, 2.0, 0.5])
    grads = torch.stack([v, -v, 0.1 * torch.ones(4), 2 * v.flip(0)], dim=1)  # (N=4 examples, n=4 entries)
    block = grads.t().double() @ grads.double()
    keep = torch.tensor([False, True, False, True])  # what the diagonal picks: prune entries 2 and 0
    out = rearrange(keep, block)
    assert int(out.sum()) == 2 and not out[0] and not out[1]  # entries 0 and 1 cancel exactly
    assert objective(~out, block) < 1e-12 < objective(~keep, block)


def test_rearrangement_never_worsens_the_block_objective() -> None:
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        grads = torch.randn(12, 7, generator=gen) @ torch.randn(7, 7, generator=gen)
        block = grads.t().double() @ grads.double()
        for pruned_count in range(8):
            order = torch.argsort(torch.diagonal(block))
            keep = torch.ones(7, dtype=torch.bool)
            keep[order[:pruned_count]] = False
            out = rearrange(keep, block)
            assert int((~out).sum()) == pruned_count
            # Each greedy swap may put the newcomer straight back out, so the objective never rises.
            assert objective(~out, block) <= objective(~keep, block) + 1e-9


def test_fisher_blocks_diagonal_is_the_diagonal_fisher(supernet: SuperNetwork, data: BaselineData) -> None:
    grads = mask_gradients(supernet, data.train, batch_size=8)
    fisher_h, fisher_u = grads.fisher_diagonal()
    torch.testing.assert_close(torch.diagonal(fisher_blocks(grads.heads), dim1=1, dim2=2).float(), fisher_h)
    torch.testing.assert_close(torch.diagonal(fisher_blocks(grads.units), dim1=1, dim2=2).float(), fisher_u)


def test_mask_tuning_keeps_the_unpruned_model_and_folds_exactly(supernet: SuperNetwork, data: BaselineData) -> None:
    keep_h, keep_u = torch.ones(L, H, dtype=torch.bool), torch.ones(L, I, dtype=torch.bool)
    heads, units = tune_masks(supernet, data.train, keep_h, keep_u, batch_size=8)
    torch.testing.assert_close(heads, torch.ones(L, H, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(units, torch.ones(L, I, dtype=torch.float64), atol=1e-3, rtol=0)
    gen = torch.Generator().manual_seed(0)
    scale_h, scale_u = torch.rand(L, H, generator=gen) + 0.5, torch.rand(L, I, generator=gen) + 0.5
    batch = tiny_batch()
    with torch.no_grad():
        masked = masked_forward(supernet, batch["input_ids"], batch["attention_mask"], scale_h, scale_u)
        folded = apply_scales(supernet, scale_h, scale_u)(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(masked, folded, atol=1e-5, rtol=0)


def reconstruction_error(model: SuperNetwork, split_: Encoded, heads: torch.Tensor, units: torch.Tensor) -> float:
    with torch.no_grad():
        full, pruned = [], []
        masked_forward(model, split_.input_ids, split_.attention_mask, *ones(), records=full)
        masked_forward(model, split_.input_ids, split_.attention_mask, heads.float(), units.float(), records=pruned)
    return float((full[-1].ffn_out[:, 0] - pruned[-1].ffn_out[:, 0]).pow(2).sum())


def test_mask_tuning_reduces_the_reconstruction_error(supernet: SuperNetwork, data: BaselineData) -> None:
    keep_h = torch.tensor([[True, False, True, True], [False, True, True, False]])
    keep_u = torch.rand(L, I, generator=torch.Generator().manual_seed(1)) < 0.5
    heads, units = tune_masks(supernet, data.train, keep_h, keep_u, batch_size=8)
    assert bool((heads[~keep_h] == 0).all()) and bool((units[~keep_u] == 0).all())
    assert reconstruction_error(supernet, data.train, heads, units) < reconstruction_error(supernet, data.train, keep_h, keep_u)


def test_fisher_pruning_table_respects_every_budget(supernet: SuperNetwork, data: BaselineData) -> None:
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    budgets = (0.9, 0.6, 0.3)
    frame = fisher_pruning(supernet, data, FisherPruningOptions(budgets=budgets, calibration_examples=16, batch_size=8))
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 3
    full = count_params(supernet.shape, SubNetwork.full(supernet.shape))["params_non_embedding"]
    for config, params in zip(frame["config"], frame["params_non_embedding"]):
        assert params <= config["budget"] * full
    assert frame["accuracy"].between(0, 1).all()
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())


# ---------------------------------------------------------------------------------------------- layer dropping
def test_layer_dropping_sizes(supernet: SuperNetwork, data: BaselineData) -> None:
    frame = layer_dropping(supernet, data, LayerDroppingOptions(keep=(0, 1, 2), finetune=FinetuneOptions(batch_size=12)))
    assert [c["layers_kept"] for c in frame["config"]] == [0, 1, 2]
    s = supernet.shape
    for k, sub, params in zip((0, 1, 2), frame["sub_network"], frame["params"]):
        assert sub.layer_mask == tuple(i < k for i in range(L))
        extracted = supernet.extract_sub_network(sub)
        assert len(extracted.layers) == k
        assert params == module_params(extracted).total == count_params(s, sub)["params"]


def test_layer_dropping_refuses_more_layers_than_the_model_has(supernet: SuperNetwork, data: BaselineData) -> None:
    with pytest.raises(ValueError, match="has 2"):
        layer_dropping(supernet, data, LayerDroppingOptions(keep=(3,), finetune=FinetuneOptions()))


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="budgets"):
        FisherPruningOptions(budgets=(1.5,))
    with pytest.raises(ValueError, match="step"):
        HeadPruningOptions(step=0)
    with pytest.raises(ValueError, match="keep"):
        LayerDroppingOptions(keep=(-1,))
    assert math.isclose(FisherPruningOptions().budgets[0], 0.9)


def test_fine_tune_lowers_the_training_loss(supernet: SuperNetwork, data: BaselineData) -> None:
    trace = fine_tune(supernet, data.train, FinetuneOptions(epochs=6, lr=1e-3, batch_size=8), seed=0)
    assert trace[-1]["loss"] < trace[0]["loss"] and not supernet.training
