"""The ELM super-network: real weight sharing, uniform SPOS paths, extraction, growth and the two loss kinds."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from search_spaces.base import InvalidArchitectureError
from search_spaces.elm import BLOCK_KINDS, ElmArch, ElmShape, LayerChoice
from trainers.distill.teacher import TeacherOutput
from trainers.elm.blocks import Block
from trainers.elm.distill import Adapters, attention_loss, class_loss, hidden_loss, path_losses
from trainers.elm.supernet import ElmSuperNet
from tests.unit.tiny_bert import tiny_batch

SHAPE = ElmShape(num_layers=2, hidden_size=32, num_heads=4, inner_size=8, vocab_size=120, max_positions=40)
WIDTHS = [[8, 16, 24, 8, 16, 32], [24, 8, 8, 32, 8, 16]]


@pytest.fixture
def supernet() -> ElmSuperNet:
    torch.manual_seed(0)
    return ElmSuperNet(SHAPE, WIDTHS).eval()


def test_sharing_variants_share_one_parameter_object() -> None:
    for kind, same in (("bert", None), ("bert_qv", (0, 2)), ("bert_kv", (1, 2)),
                       ("mobile", None), ("mobile_qv", (0, 2)), ("mobile_kv", (1, 2))):
        q, k, v = Block(SHAPE, kind, 8).attention.projections()
        weights = [q.weight, k.weight, v.weight]
        if same is None:
            assert len({id(w) for w in weights}) == 3
        else:
            assert weights[same[0]] is weights[same[1]] and len({id(w) for w in weights}) == 2


def test_a_shared_projection_gets_the_gradient_of_both_uses() -> None:
    block = Block(SHAPE, "bert_qv", 8)
    x = torch.randn(2, 5, 32)
    block(x, torch.zeros(2, 1, 1, 5)).hidden.sum().backward()
    q, _, v = block.attention.projections()
    assert q.weight.grad is not None and q.weight.grad is v.weight.grad
    assert sum(1 for name, _ in block.named_parameters() if name.startswith("attention.")) == 8  # q, k, out, norm


def test_spos_paths_are_uniform_over_the_six_blocks_at_full_width(supernet: ElmSuperNet) -> None:
    generator = torch.Generator().manual_seed(0)
    counts: list[Counter[str]] = [Counter(), Counter()]
    draws = 3000
    for _ in range(draws):
        path = supernet.sample_path(generator)
        for i, choice in enumerate(path.layers):
            counts[i][choice.kind] += 1
            assert choice.ffn == supernet.block(i, choice.kind).ffn.units and choice.heads == SHAPE.num_heads
    for layer in counts:
        assert set(layer) == set(BLOCK_KINDS)
        # Binomial(3000, 1/6): standard deviation 20; 5 of them is a loose bound.
        assert all(abs(n - draws / 6) < 100 for n in layer.values()), layer


def test_the_extracted_sub_network_computes_what_the_super_network_does(supernet: ElmSuperNet) -> None:
    batch = tiny_batch()
    arch = ElmArch(SHAPE, (LayerChoice("mobile_qv", 8, 2), LayerChoice("bert_kv", 8, 1)))
    supernet.set_sub_network(arch)
    model = supernet.extract_sub_network()
    ours = supernet(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    theirs = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    torch.testing.assert_close(ours.last_hidden_state, theirs.last_hidden_state)
    for a, b in zip(ours.layers, theirs.layers):
        torch.testing.assert_close(a.attention, b.attention)
        assert a.ffn_hidden.shape[-1] == b.ffn_hidden.shape[-1]
    assert ours.layers[0].attention.shape[1] == 2 and ours.layers[1].head_outputs.shape[1] == 1


def test_a_path_wider_than_its_block_is_refused(supernet: ElmSuperNet) -> None:
    too_wide = ElmArch(SHAPE, (LayerChoice("bert", 16, 4), LayerChoice("bert", 8, 4)))
    with pytest.raises(InvalidArchitectureError, match="ffn_0=16 exceeds the bert block's 8 units"):
        supernet.set_sub_network(too_wide)


def test_growth_adds_units_without_changing_the_output(supernet: ElmSuperNet) -> None:
    batch = tiny_batch()
    arch = supernet.full_path("bert")
    before = supernet(batch["input_ids"], batch["attention_mask"], arch=arch).last_hidden_state
    supernet.block(0, "bert").ffn.grow(8)
    grown = supernet.full_path("bert")
    assert grown.layers[0].ffn == 16 and supernet.widths[0][0] == 16
    after = supernet(batch["input_ids"], batch["attention_mask"], arch=grown).last_hidden_state
    torch.testing.assert_close(before, after)


def test_pearson_losses_ignore_scale_and_shift_and_mse_does_not() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(2, 5, 16)
    affine = 3.0 * teacher + 0.5
    assert hidden_loss("pearson", teacher, affine, None).item() == pytest.approx(0.0, abs=1e-6)
    assert hidden_loss("classic", teacher, affine, None).item() > 1.0
    assert hidden_loss("pearson", teacher, -teacher, None).item() == pytest.approx(2.0, abs=1e-6)
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    assert class_loss("pearson", logits, 2 * logits + 1).item() == pytest.approx(0.0, abs=1e-6)
    assert class_loss("classic", logits, 2 * logits + 1).item() > 0.1
    assert class_loss("classic", logits, logits).item() == pytest.approx(0.0, abs=1e-6)


def test_classic_attention_loss_is_the_squared_norm_of_the_difference() -> None:
    t = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])  # (B=1, H=1, S=2, S=2)
    s = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]])
    # Row 1 differs by (1, -1): squared norm 2; row 2 by 0: the mean over rows is 1.
    assert attention_loss("classic", t, s, None).item() == pytest.approx(1.0)
    # Pearson: rho = -1 on row 1 (loss 2) and 0 on the flat row 2 (loss 1).
    assert attention_loss("pearson", t, s, None).item() == pytest.approx(1.5, abs=1e-6)


def test_path_losses_average_layers_and_refuse_an_unknown_kind(supernet: ElmSuperNet) -> None:
    batch = tiny_batch()
    out = supernet(batch["input_ids"], batch["attention_mask"], arch=supernet.full_path("mobile"))
    teacher = TeacherOutput(hidden_states=(torch.zeros(3, 12, 48),) + tuple(torch.randn(3, 12, 48) for _ in range(4)),
                            attentions=tuple(torch.softmax(torch.randn(3, 4, 12, 12), -1) for _ in range(4)))
    adapters = Adapters(2, 32, 48)
    for kind in ("pearson", "classic"):
        losses = path_losses(kind, out, teacher, adapters, batch["attention_mask"])
        assert losses.total.item() > 0 and torch.isfinite(losses.total)
    with pytest.raises(ValueError, match="option 'loss' must be one of pearson, classic"):
        path_losses("cosine", out, teacher, adapters, None)
