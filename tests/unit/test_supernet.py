"""The slicing super-network: equals the pre-trained model, equals its extracted sub-networks,
computes less when smaller, and refuses illegal sub-networks and mismatched checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel

from search_spaces.base import InvalidArchitectureError
from search_spaces.pruning import LargeSpace, LayerSpace, MediumSpace, PruningSpace, SmallSpace
from tests.asset_fixtures import shipped_assets  # noqa: F401
from tests.unit.tiny_bert import SIZES, save_tiny_bert, tiny_batch
from trainers.supernet import CheckpointError, IllegalSubNetworkError, SubNetwork, SuperNetwork
from trainers.supernet.families import space_for

SPACES: list[type[PruningSpace]] = [SmallSpace, LayerSpace, MediumSpace, LargeSpace]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny_bert")
    save_tiny_bert(path)
    return path


@pytest.fixture()
def supernet(checkpoint: Path) -> SuperNetwork:
    return SuperNetwork.from_pretrained(checkpoint)


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_full_super_network_equals_the_pretrained_model(checkpoint: Path, supernet: SuperNetwork) -> None:
    hf = save_tiny_bert(checkpoint.parent / "again")  # same seed: the same model, kept in memory
    batch = tiny_batch()
    with torch.no_grad():
        expected = hf(**batch, output_hidden_states=True)
        ours = supernet.encode(**batch)
    torch.testing.assert_close(ours.logits, expected.logits, atol=1e-5, rtol=0)
    assert len(ours.hidden_states) == len(expected.hidden_states) == SIZES["num_hidden_layers"] + 1
    for a, b in zip(ours.hidden_states, expected.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert params(supernet) == params(hf)


@pytest.mark.parametrize("cls", SPACES, ids=lambda c: c.name)
def test_extracted_sub_networks_equal_the_restricted_super_network(cls: type[PruningSpace], checkpoint: Path, supernet: SuperNetwork) -> None:
    space = space_for(cls, json.loads((checkpoint / "config.json").read_text()))
    rng = np.random.default_rng(0)
    configs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(4)]
    batch = tiny_batch()
    for config in configs:
        arch = space.architecture(config)
        supernet.set_sub_network(arch)
        with torch.no_grad():
            restricted = supernet(**batch)
            extracted = supernet.extract_sub_network(arch)
            standalone = extracted(**batch)
        torch.testing.assert_close(standalone, restricted, atol=1e-5, rtol=0)
        assert params(extracted) == space.metrics(config)["params"], config
        assert len(extracted.layers) == sum(arch.layer_mask)


def test_zero_head_zero_unit_and_zero_layer_blocks_are_skipped(supernet: SuperNetwork) -> None:
    batch = tiny_batch()
    # layer 0: FFN only; layer 1: attention only.
    arch = SubNetwork.first([0, 2], [5, 0])
    supernet.set_sub_network(arch)
    extracted = supernet.extract_sub_network()
    assert extracted.layers[0].attention is None and extracted.layers[1].ffn is None
    with torch.no_grad():
        torch.testing.assert_close(extracted(**batch), supernet(**batch), atol=1e-5, rtol=0)
        states = supernet.encode(**batch).hidden_states
    # A skipped attention block passes the hidden state through: layer 0 is the FFN alone.
    with torch.no_grad():
        ffn_only = supernet.layers[0].ffn(states[0])
    torch.testing.assert_close(states[1], ffn_only)
    supernet.set_sub_network(SubNetwork.first([0, 0], [0, 0]))
    with torch.no_grad():
        empty = supernet.encode(**batch)
    torch.testing.assert_close(empty.hidden_states[-1], empty.hidden_states[0])
    assert len(supernet.extract_sub_network().layers) == 0


def test_smaller_sub_networks_compute_less(supernet: SuperNetwork) -> None:
    batch = tiny_batch(seq=32)

    def flops(sub: SubNetwork) -> int:
        supernet.set_sub_network(sub)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            supernet(**batch)
        return counter.get_total_flops()

    full = flops(SubNetwork.first([4, 4], [64, 64]))
    half = flops(SubNetwork.first([2, 2], [32, 32]))
    scattered = flops(SubNetwork(((0, 3), (1, 2)), (tuple(range(0, 64, 2)), tuple(range(1, 64, 2)))))
    # Slicing, not masking: half the heads and units cost about half (the pooler and
    # classifier are shared); arbitrary (LARGE) selections as much as prefixes.
    assert half < 0.55 * full and scattered == half


def test_reset_restores_the_full_network(supernet: SuperNetwork) -> None:
    batch = tiny_batch()
    with torch.no_grad():
        full = supernet(**batch)
        supernet.set_sub_network(SubNetwork.first([1, 1], [3, 3]))
        assert not torch.allclose(supernet(**batch), full)
        supernet.reset_super_network()
        torch.testing.assert_close(supernet(**batch), full, atol=0, rtol=0)
    assert supernet.sub_network == SubNetwork.full(supernet.shape)


def test_gradients_reach_only_the_selected_weights(supernet: SuperNetwork) -> None:
    supernet.train()
    supernet.set_sub_network(SubNetwork(((1,), (0, 3)), ((2, 7), ())))
    supernet(**tiny_batch()).sum().backward()
    head_size = SIZES["hidden_size"] // SIZES["num_attention_heads"]
    q0 = supernet.layers[0].attention.query.weight.grad
    rows_with_grad = torch.nonzero(q0.abs().sum(dim=1)).flatten().tolist()
    assert rows_with_grad == list(range(head_size, 2 * head_size))
    up0 = supernet.layers[0].ffn.up.weight.grad
    assert torch.nonzero(up0.abs().sum(dim=1)).flatten().tolist() == [2, 7]
    assert supernet.layers[1].ffn.up.weight.grad is None


@pytest.mark.parametrize(
    "arch,message",
    [
        (SubNetwork.first([4], [64]), "sub-network has 1 layers; the encoder has 2"),
        (SubNetwork.first([5, 4], [64, 64]), "layer 0 keeps head 4; the encoder has heads 0..3"),
        (SubNetwork.first([4, 4], [64, 65]), "layer 1 keeps FFN unit 64; the encoder has units 0..63"),
        ({"num_layers": 2}, "needs a SubNetwork"),
    ],
)
def test_illegal_sub_networks_are_refused(arch: object, message: str, supernet: SuperNetwork) -> None:
    with pytest.raises(IllegalSubNetworkError, match=message):
        supernet.set_sub_network(arch)  # type: ignore[arg-type]
    with pytest.raises(InvalidArchitectureError, match=message):
        supernet.extract_sub_network(arch)  # type: ignore[arg-type]
    assert supernet.sub_network == SubNetwork.full(supernet.shape)


def test_a_bare_encoder_gets_a_seeded_classifier(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = BertConfig(**{k: v for k, v in SIZES.items() if k != "num_labels"})
    encoder = BertModel(cfg).eval()
    encoder.save_pretrained(tmp_path)
    a = SuperNetwork.from_pretrained(tmp_path, num_labels=4, seed=1)
    b = SuperNetwork.from_pretrained(tmp_path, num_labels=4, seed=1)
    batch = tiny_batch()
    with torch.no_grad():
        torch.testing.assert_close(a.encode(**batch).hidden_states[-1], encoder(**batch).last_hidden_state, atol=1e-5, rtol=0)
        assert a(**batch).shape == (3, 4)
    torch.testing.assert_close(a.head.classifier.weight, b.head.classifier.weight, atol=0, rtol=0)


def test_mismatched_checkpoints_are_refused_in_one_line(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no config.json"):
        SuperNetwork.from_pretrained(tmp_path)
    config = json.loads((checkpoint / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="model_type 'gpt2' is not supported; the super-network reads bert, "):
        SuperNetwork.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": 128}))
    save_file(load_file(str(checkpoint / "model.safetensors")), str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"has shape \(64, 32\), config needs \(128, 32\)"):
        SuperNetwork.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(CheckpointError, match="checkpoint lacks 16 tensors"):
        SuperNetwork.from_pretrained(tmp_path)


@pytest.mark.assets
def test_minilm_l6_super_network_equals_the_shipped_encoder(shipped_assets: Path) -> None:  # noqa: F811
    from trainers.data import load_model_dir, load_tokenizer

    torch.set_num_threads(1)
    directory = load_model_dir("minilm-l6")
    supernet = SuperNetwork.from_pretrained(directory, num_labels=2)
    encoder = BertModel.from_pretrained(directory).eval()
    batch = dict(load_tokenizer("minilm-l6")(["a gripping, funny film", "dull"], padding=True, return_tensors="pt"))
    with torch.no_grad():
        ours = supernet.encode(**batch).hidden_states[-1]
        theirs = encoder(**batch).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    space = SmallSpace()
    assert params(supernet) == space.metrics(space.largest())["params"] == 22_713_216 + 2 * 384 + 2

