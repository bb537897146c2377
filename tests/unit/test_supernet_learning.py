"""Sub-networks of a trained super-network learn (issue 11): on a separable toy task a tiny
super-network trained with `full` for a few steps gives its smallest sub-network that reads the input
an accuracy above the majority-class rate; the in-place distillation term of `full` is part of its
update (sandwich gradients plus the KL's), so dropping it fails."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from search_spaces.pruning import SmallSpace
from search_spaces.sub_network import IllegalSubNetworkError
from tests.unit.tiny_teacher import SENTENCES, make_tiny_teacher
from trainers.distill.losses import logit_kl
from trainers.strategies import make_strategy
from trainers.strategies.base import lower_bound, random_sub_network, reads_input
from trainers.strategies.sandwich import sandwich_members
from trainers.supernet.cache import SupernetConfig, load_supernet
from trainers.supernet.fit import lr_factor, param_groups
from trainers.supernet.measure import evaluate
from trainers.supernet.model import SuperNetwork
from trainers.supernet.options import FinetuneOptions
from trainers.supernet.splits import SplitSpec, classification_split
from trainers.supernet.train import train_supernet
from trainers.supernet.families import space_for

#: a sentence is positive when it holds one of these words (anywhere: only attention finds it).
KEYWORDS = ("sun", "rain")


def save_keyword_task(directory: Path, seed: int = 0, rows: int = 480, positive: float = 0.35) -> Path:
    """Eight words drawn from the tiny vocabulary; label 1 (a `positive` share) when a keyword is among them."""
    rng = np.random.default_rng(seed)
    words = sorted({w for s in SENTENCES for w in s.split()} - set(KEYWORDS))
    texts, labels = [], []
    for _ in range(rows):
        sentence = list(rng.choice(words, size=8))
        label = int(rng.random() < positive)
        if label:
            sentence[int(rng.integers(0, 8))] = str(rng.choice(KEYWORDS))
        texts.append(" ".join(sentence))
        labels.append(label)
    frame = pd.DataFrame({"text": texts, "label": labels})
    directory.mkdir(parents=True, exist_ok=True)
    frame[: rows * 2 // 3].to_csv(directory / "train.csv", index=False)
    frame[rows * 2 // 3:].to_csv(directory / "validation.csv", index=False)
    return directory


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, SmallSpace]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("toy")
    model = make_tiny_teacher(root / "model")
    space = space_for(SmallSpace, json.loads((model / "config.json").read_text()), num_labels=2)
    return model, save_keyword_task(root / "task"), space


def test_the_smallest_sub_network_that_reads_the_input_learns(toy: tuple[Path, Path, SmallSpace], tmp_path: Path) -> None:
    model, task, space = toy
    config = SupernetConfig(model=str(model), task=str(task), strategy="full", epochs=6, lr=3e-3, batch_size=16,
                            max_length=12, device="cpu", cache_dir=str(tmp_path))
    supernet = load_supernet(train_supernet(config, space, 0, tmp_path / "supernet", log=lambda line: None))
    val, _ = classification_split(SplitSpec(str(task), str(model), "validation", None, 12, 0))
    majority = float(np.bincount(val.labels.numpy()).max() / len(val))
    # The sandwich rule's lower bound, as `full` trains it: it must be able to tell inputs apart.
    (_, smallest), = sandwich_members(space, np.random.default_rng(0), 0)
    for sub in (smallest, space.architecture({"num_layers": 2, "num_heads": 2, "num_units": 32})):
        supernet.set_sub_network(sub)
        accuracy = evaluate(supernet, val)["accuracy"]
        assert accuracy > majority + 0.1, f"{sub.num_heads} heads, {sub.num_units} units: {accuracy:.3f}; majority {majority:.3f}"


def test_sub_networks_without_heads_are_not_trained(toy: tuple[Path, Path, SmallSpace]) -> None:
    _, _, space = toy
    # 0 layers: the classifier sees the [CLS] embedding only, the same for every input.
    assert not reads_input(space.architecture(space.smallest()))
    rng = np.random.default_rng(0)
    assert all(reads_input(random_sub_network(space, rng)) for _ in range(200))
    assert lower_bound(space) == space.architecture({"num_layers": 1, "num_heads": 1, "num_units": 1})


def grads(supernet: SuperNetwork) -> torch.Tensor:
    flat = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in supernet.parameters()])
    supernet.zero_grad(set_to_none=True)
    return flat


def test_full_adds_the_distillation_gradient_to_the_sandwich_update(toy: tuple[Path, Path, SmallSpace]) -> None:
    model, task, space = toy
    supernet = SuperNetwork.from_pretrained(model, num_labels=2, seed=0).eval()  # eval: no dropout, same forwards
    with torch.no_grad():  # a classifier as after some training: sub-networks' logits differ from the teacher's
        supernet.head.classifier.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    split, _ = classification_split(SplitSpec(str(task), str(model), "train", 16, 12, 0))
    batch = next(iter(split.loader(16, shuffle=False)))
    full = make_strategy("full", num_random=1, temperature=3.0)
    full.step(supernet, batch, space, np.random.default_rng(5))
    with_kd = grads(supernet)
    make_strategy("sandwich", num_random=1).step(supernet, batch, space, np.random.default_rng(5))
    without = grads(supernet)
    # The distillation term alone, for the same members (the rng draws them in the same order).
    teacher = supernet(batch["input_ids"], batch["attention_mask"]).detach()
    for _, sub in sandwich_members(space, np.random.default_rng(5), 1):
        supernet.set_sub_network(sub)
        logit_kl(teacher, supernet(batch["input_ids"], batch["attention_mask"]), 3.0).backward()
    supernet.reset_super_network()
    kd = grads(supernet)
    assert kd.norm() > 1e-3 * without.norm()
    assert torch.allclose(with_kd, without + kd, atol=1e-6, rtol=1e-4)


def test_the_head_has_its_own_learning_rate_and_the_schedule_warms_up(toy: tuple[Path, Path, SmallSpace]) -> None:
    model, _, _ = toy
    supernet = SuperNetwork.from_pretrained(model, num_labels=2)
    body, head = param_groups(supernet, FinetuneOptions(lr=1e-4, head_lr=1e-3))
    assert "lr" not in body and head["lr"] == 1e-3
    assert {id(p) for p in head["params"]} == {id(p) for p in supernet.head.parameters()}
    assert len(body["params"]) + len(head["params"]) == len(list(supernet.parameters()))
    assert len(param_groups(supernet, FinetuneOptions())) == 1
    # 10 steps, 20 % warm-up: 1/3, 2/3, then linear decay from 1 to 1/8.
    assert [lr_factor(s, 10, 0.2) for s in range(10)] == pytest.approx([1 / 3, 2 / 3, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    assert [lr_factor(s, 4, 0.0) for s in range(4)] == pytest.approx([1, 3 / 4, 2 / 4, 1 / 4])


def test_a_mean_pooling_head_reads_every_real_token_even_with_no_layer_left(toy: tuple[Path, Path, SmallSpace]) -> None:
    model, task, space = toy
    supernet = SuperNetwork.from_pretrained(model, num_labels=2, seed=0, pooling="mean").eval()
    split, _ = classification_split(SplitSpec(str(task), str(model), "train", 8, 12, 0))
    ids, mask = split.input_ids, split.attention_mask
    nothing = space.architecture(space.smallest())
    supernet.set_sub_network(nothing)
    logits = supernet(ids, mask)
    assert logits.std(0).max() > 1e-4  # 0 layers: a bag of embeddings, not a constant
    # Padding is not pooled: more pad tokens give the same logits.
    padded = torch.cat([ids, torch.zeros_like(ids)], 1), torch.cat([mask, torch.zeros_like(mask)], 1)
    assert torch.allclose(supernet(*padded), logits, atol=1e-5)
    supernet.reset_super_network()
    from trainers.supernet.export import export_standard
    with pytest.raises(IllegalSubNetworkError, match="pools by 'mean'"):
        export_standard(supernet.extract_sub_network(), Path("unused"))
