"""Every encoder family against Hugging Face: a tiny random checkpoint of each, built offline from
its `transformers` config, is a super-network whose full logits are the HF model's, whose extracted
sub-networks compute what the sliced super-network does, and whose exports load back with the
same logits (SMALL members as the family's own HF class, per-layer shapes in the compact format)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoModelForSequenceClassification

from tests.module_file import load_module
from search_spaces.pruning import LargeSpace, MediumSpace, SmallSpace
from search_spaces.sub_network import SubNetwork, count_params as analytic_params
from trainers.contract import TrainerError
from trainers.efficiency import count_params
from trainers.baselines.masked import masked_forward
from trainers.supernet import SuperNetwork
from trainers.supernet.checkpoint import CheckpointError, to_hf_name
from trainers.supernet.checks import check_lengths
from trainers.supernet.export import MODELING_FILE, ONNX_FILE, export_compact, export_standard
from trainers.supernet.families import families, hf_shape

VOCAB, LABELS = 120, 3
BERT_SIZES = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=40, num_labels=LABELS)
#: model_type -> (config class, its keyword arguments, HF task class, whether it reads token types).
FAMILIES: dict[str, tuple[str, dict[str, Any], str, bool]] = {
    "bert": ("BertConfig", BERT_SIZES, "BertForSequenceClassification", True),
    "roberta": ("RobertaConfig", BERT_SIZES | dict(type_vocab_size=1, pad_token_id=1),
                "RobertaForSequenceClassification", False),
    "xlm-roberta": ("XLMRobertaConfig", BERT_SIZES | dict(type_vocab_size=1, pad_token_id=1),
                    "XLMRobertaForSequenceClassification", False),
    "distilbert": ("DistilBertConfig", dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                            max_position_embeddings=40, num_labels=LABELS, activation="gelu"),
                   "DistilBertForSequenceClassification", False),
    "electra": ("ElectraConfig", BERT_SIZES | dict(embedding_size=16), "ElectraForSequenceClassification", True),
    "mpnet": ("MPNetConfig", BERT_SIZES | dict(pad_token_id=1), "MPNetForSequenceClassification", False),
}


def save_tiny(model_type: str, directory: Path) -> torch.nn.Module:
    """A random HF sequence classifier of the family, saved with save_pretrained (safetensors)."""
    config_class, sizes, model_class, _ = FAMILIES[model_type]
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(getattr(transformers, config_class)(**sizes)).eval()
    # Random (not default-initialised) LayerNorms, biases and relative bias, so a wrong slice cannot hide.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias") or "relative" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(directory)
    return model


def batch_for(model_type: str, seed: int = 1, rows: int = 3, seq: int = 12) -> dict[str, torch.Tensor]:
    """Token ids with padding (the pad id, as a tokenizer writes it) on the last row's second half."""
    pad = FAMILIES[model_type][1].get("pad_token_id", 0)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (rows, seq), generator=gen)
    mask = torch.ones(rows, seq, dtype=torch.long)
    mask[-1, seq // 2:] = 0
    batch = {"input_ids": ids.masked_fill(mask == 0, pad), "attention_mask": mask}
    if FAMILIES[model_type][3]:
        batch["token_type_ids"] = (torch.arange(seq) >= seq // 3).long().expand(rows, seq)
    return batch


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, torch.nn.Module, SuperNetwork]:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp(request.param)
    hf = save_tiny(request.param, path)
    return request.param, hf, SuperNetwork.from_pretrained(path)


def test_every_family_of_the_test_is_registered() -> None:
    assert set(FAMILIES) <= set(families())


def test_full_super_network_equals_the_hugging_face_model(tiny: tuple[str, torch.nn.Module, SuperNetwork]) -> None:
    model_type, hf, supernet = tiny
    batch = batch_for(model_type)
    with torch.no_grad():
        expected = hf(**batch).logits
        torch.testing.assert_close(supernet(**batch), expected, atol=1e-5, rtol=0)
    assert supernet.config.family == model_type


def test_every_family_s_config_gives_the_shape_of_its_model(tiny: tuple[str, torch.nn.Module, SuperNetwork]) -> None:
    """From its own config keys (DistilBERT's dim / n_layers, ELECTRA's embedding_size, ...): the
    shape's parameter count is the HF model's, and it is the super-network's shape."""
    model_type, hf, supernet = tiny
    for config in (hf.config, hf.config.to_dict()):
        shape = hf_shape(config)
        assert shape == supernet.shape
        assert analytic_params(shape, SubNetwork.full(shape))["params"] == sum(p.numel() for p in hf.parameters())
    assert hf_shape(hf.config, num_labels=7).num_labels == 7


def test_sequences_longer_than_the_usable_positions_fail_naming_the_limit(tiny: tuple[str, torch.nn.Module, SuperNetwork]) -> None:
    """RoBERTa / XLM-R / MPNet count positions from the padding index + 1: 2 of the 40 rows are no
    token's, and HF's model fails past 38 tokens."""
    model_type, hf, supernet = tiny
    usable = 40 - (2 if model_type in ("roberta", "xlm-roberta", "mpnet") else 0)
    space = SmallSpace(**asdict(supernet.shape))
    check_lengths(space, max_length=usable, latency_seq_len=8)
    with pytest.raises(TrainerError, match=rf"^options 'max_length' must be <= the model's {usable} usable positions, got {usable + 1}$"):
        check_lengths(space, max_length=usable + 1, latency_seq_len=8)
    with torch.no_grad():
        hf(**batch_for(model_type, seq=usable))
        with pytest.raises((IndexError, RuntimeError)):  # out of the position table
            hf(**batch_for(model_type, seq=usable + 1))


def test_in_training_the_super_network_draws_hugging_face_s_dropout(tiny: tuple[str, torch.nn.Module, SuperNetwork]) -> None:
    """Dropout is drawn where and in the order the family's HF model draws it (embeddings, attention
    probabilities, the attention output only where the family has that dropout, FFN, the head's one
    or two): under one seed the full network's logits and every gradient are HF's. On CPU training
    spells attention out; a sliced network still draws what its extracted copy (which keeps
    scaled_dot_product_attention) draws, and a row of padding only is no NaN."""
    model_type, hf, supernet = tiny
    batch = batch_for(model_type)
    hf.train(), supernet.train()
    try:
        torch.manual_seed(7)
        ours = supernet(**batch)
        torch.manual_seed(7)
        expected = hf(**batch).logits
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
        torch.manual_seed(8)
        assert not torch.allclose(supernet(**batch), ours, atol=1e-3), "no dropout was drawn"
        ours.square().sum().backward()
        expected.square().sum().backward()
        for name, p in supernet.named_parameters():
            theirs = hf.get_parameter(to_hf_name(name, model_type)).grad
            torch.testing.assert_close(p.grad, theirs, atol=1e-5, rtol=0, msg=lambda m: f"{name}: {m}")
        supernet.set_sub_network(sub_networks(supernet)[-1])
        extracted = supernet.extract_sub_network()
        with torch.no_grad():
            torch.manual_seed(8)
            sliced = supernet(**batch)
            torch.manual_seed(8)
            torch.testing.assert_close(extracted(**batch), sliced, atol=1e-5, rtol=0)
            padded = dict(batch, attention_mask=batch["attention_mask"].clone())
            padded["attention_mask"][0] = 0
            assert supernet(**padded).isfinite().all()
    finally:
        hf.eval(), supernet.eval(), supernet.reset_super_network()
        hf.zero_grad(set_to_none=True), supernet.zero_grad(set_to_none=True)


def test_mask_based_baselines_compute_the_full_network(tiny: tuple[str, torch.nn.Module, SuperNetwork]) -> None:
    """Head pruning and Fisher pruning score masks on their own forward: with every mask at one it
    is the super-network's (MPNet's relative bias, ELECTRA's projection and mean pooling included)."""
    model_type, _, supernet = tiny
    batch = batch_for(model_type)
    s = supernet.shape
    for pooling in ("cls", "mean"):
        supernet.head.pooling = pooling
        try:
            with torch.no_grad():
                masked = masked_forward(supernet, batch["input_ids"], batch["attention_mask"],
                                        torch.ones(s.num_layers, s.num_heads), torch.ones(s.num_layers, s.intermediate_size))
                full = supernet(batch["input_ids"], batch["attention_mask"])
        finally:
            supernet.head.pooling = "cls"
        torch.testing.assert_close(masked, full, atol=1e-5, rtol=0)


def sub_networks(supernet: SuperNetwork) -> list[SubNetwork]:
    """A SMALL, a MEDIUM and a LARGE member, and scattered heads with a layer without attention."""
    shape, rng = asdict(supernet.shape), np.random.default_rng(3)
    picked = [cls(**shape).architecture(cls(**shape).sample(rng)) for cls in (SmallSpace, MediumSpace, LargeSpace)]
    return picked + [SubNetwork(((1, 3), ()), ((0, 5, 40), tuple(range(0, 64, 3))))]


def test_extracted_sub_networks_equal_their_sliced_evaluation(tiny: tuple[str, torch.nn.Module, SuperNetwork]) -> None:
    model_type, _, supernet = tiny
    batch = batch_for(model_type, seed=2)
    for sub in sub_networks(supernet):
        supernet.set_sub_network(sub)
        extracted = supernet.extract_sub_network(sub)
        with torch.no_grad():
            torch.testing.assert_close(extracted(**batch), supernet(**batch), atol=1e-5, rtol=0)
        # The search space's analytic count is what the extracted model holds (trials assert it).
        assert analytic_params(supernet.shape, sub) == count_params(extracted).as_metrics(), sub
    supernet.reset_super_network()


def test_small_member_exports_as_the_family_s_own_class(tiny: tuple[str, torch.nn.Module, SuperNetwork], tmp_path: Path) -> None:
    model_type, hf, supernet = tiny
    space = SmallSpace(**asdict(supernet.shape))
    arch = space.architecture({"num_layers": 1, "num_heads": 2, "num_units": 17})
    export_standard(supernet.extract_sub_network(arch), tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded).__name__ == type(hf).__name__
    batch = batch_for(model_type, seed=3)
    supernet.set_sub_network(arch)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, supernet(**batch), atol=1e-5, rtol=0)
    supernet.reset_super_network()


def test_per_layer_member_exports_compact_and_loads_with_its_own_file(tiny: tuple[str, torch.nn.Module, SuperNetwork],
                                                                       tmp_path: Path) -> None:
    model_type, _, supernet = tiny
    arch = sub_networks(supernet)[-1]  # scattered heads: a standard export cannot hold them in MPNet
    export_compact(supernet.extract_sub_network(arch), tmp_path, onnx=False)
    modeling = load_module(tmp_path / MODELING_FILE, f"exported_{model_type.replace('-', '_')}")
    loaded = modeling.load(tmp_path)
    batch = batch_for(model_type, seed=4)
    supernet.set_sub_network(arch)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch), supernet(**batch), atol=1e-5, rtol=0)
    supernet.reset_super_network()


def test_an_unsupported_model_type_fails_listing_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(CheckpointError, match=r"model_type 'gpt2' is not supported; the super-network reads bert, "
                                              r"distilbert, electra, mpnet, roberta, xlm-roberta$"):
        SuperNetwork.from_pretrained(tmp_path)


def test_relative_bias_exports_to_onnx(tmp_path: Path) -> None:
    """MPNet's additive bias takes an attention path of its own: onnxruntime gives its logits."""
    import onnxruntime

    save_tiny("mpnet", tmp_path / "checkpoint")
    supernet = SuperNetwork.from_pretrained(tmp_path / "checkpoint")
    model = supernet.extract_sub_network(sub_networks(supernet)[-1])
    export_compact(model, tmp_path / "model")
    session = onnxruntime.InferenceSession(str(tmp_path / "model" / ONNX_FILE), providers=["CPUExecutionProvider"])
    for batch in (batch_for("mpnet", seed=5, rows=1, seq=5), batch_for("mpnet", seed=6, rows=4, seq=30)):
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
        (logits,) = session.run(None, {k: v.numpy() for k, v in batch.items()})
        with torch.no_grad():
            np.testing.assert_allclose(logits, model(**batch).numpy(), atol=1e-5, rtol=0)
