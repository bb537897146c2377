"""Super-network training strategies on a tiny BERT: losses fall, the sandwich rule visits the
extremes, random-linear follows its schedule, in-place KD adds the KL term, and every step leaves
the super-network at full size."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from search_spaces.pruning import SmallSpace
from search_spaces.sub_network import SubNetwork
from tests.unit.tiny_bert import save_tiny_bert, tiny_batch
from trainers.strategies import STRATEGIES, make_strategy
from trainers.strategies.base import lower_bound, train_sub_network
from trainers.strategies.random_linear import RandomLinear
from trainers.supernet import SuperNetwork
from trainers.supernet.families import space_for


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny_bert")
    save_tiny_bert(path)
    return path


@pytest.fixture()
def supernet(checkpoint: Path) -> SuperNetwork:
    return SuperNetwork.from_pretrained(checkpoint).train()


@pytest.fixture()
def space(checkpoint: Path) -> SmallSpace:
    return space_for(SmallSpace, json.loads((checkpoint / "config.json").read_text()))


def labelled_batch() -> dict[str, torch.Tensor]:
    return {**tiny_batch(seed=1, batch=6), "labels": torch.tensor([0, 1, 2, 0, 1, 2])}


class Recording(SuperNetwork):
    """A super-network that remembers every sub-network it was set to."""

    seen: list[SubNetwork]

    def set_sub_network(self, sub: SubNetwork) -> None:
        self.__dict__.setdefault("seen", []).append(sub)
        super().set_sub_network(sub)


def recording(checkpoint: Path) -> Recording:
    model = Recording.from_pretrained(checkpoint).train()
    model.seen = []
    return model  # type: ignore[return-value]


@torch.no_grad()
def mean_loss(supernet: SuperNetwork, subs: list[SubNetwork], batch: dict[str, torch.Tensor]) -> float:
    supernet.eval()
    losses = []
    for sub in subs:
        supernet.set_sub_network(sub)
        losses.append(float(F.cross_entropy(supernet(batch["input_ids"], batch["attention_mask"]), batch["labels"])))
    supernet.reset_super_network()
    supernet.train()
    return float(np.mean(losses))


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_lowers_the_loss(name: str, supernet: SuperNetwork, space: SmallSpace) -> None:
    torch.manual_seed(0)
    batch, rng = labelled_batch(), np.random.default_rng(0)
    probe = np.random.default_rng(1)
    subs = [space.architecture(c) for c in [space.largest(), space.smallest()] + [space.sample(probe) for _ in range(3)]]
    # `standard` trains the full network only: judge it on that.
    subs = subs[:1] if name == "standard" else subs
    strategy = make_strategy(name, **({"temperature": 2.0} if name in ("inplace_kd", "full") else {}))
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=3e-3)
    before = mean_loss(supernet, subs, batch)
    for step in range(12):
        optimizer.zero_grad()
        losses = strategy.step(supernet, batch, space, rng, progress=step / 12)
        assert losses and all(np.isfinite(v) for v in losses.values())
        assert supernet.sub_network == SubNetwork.full(supernet.shape)  # reset after every step
        optimizer.step()
    assert mean_loss(supernet, subs, batch) < 0.8 * before


def test_sandwich_visits_largest_smallest_and_random(checkpoint: Path, space: SmallSpace) -> None:
    supernet = recording(checkpoint)
    losses = make_strategy("sandwich", num_random=3).step(supernet, labelled_batch(), space, np.random.default_rng(0))
    assert list(losses) == ["largest", "smallest", "random_0", "random_1", "random_2"]
    trained = supernet.seen[::2]  # every set is followed by the reset to full size
    assert trained[0] == space.architecture(space.largest())
    assert trained[1] == lower_bound(space)  # the smallest that reads its input (1 layer, 1 head)
    assert len(trained) == 5 and len(set(trained[2:])) > 1


def test_full_distils_every_smaller_sub_network_from_the_largest(checkpoint: Path, space: SmallSpace) -> None:
    supernet = recording(checkpoint)
    losses = make_strategy("full", num_random=1).step(supernet, labelled_batch(), space, np.random.default_rng(0))
    assert list(losses) == ["largest", "smallest", "random_0"]
    assert supernet.seen[0] == space.architecture(space.largest())
    assert supernet.seen[2] == lower_bound(space)


def test_random_linear_probability_rises_linearly() -> None:
    schedule = RandomLinear(start=0.2, end=0.8)
    assert [schedule.probability(p) for p in (0.0, 0.5, 1.0, 1.5)] == pytest.approx([0.2, 0.5, 0.8, 0.8])
    with pytest.raises(ValueError, match="'end' must be a probability"):
        RandomLinear(end=1.5)


def test_random_linear_trains_the_full_network_first_and_random_ones_last(supernet: SuperNetwork, space: SmallSpace) -> None:
    strategy, rng, batch = RandomLinear(), np.random.default_rng(0), labelled_batch()
    early = [next(iter(strategy.step(supernet, batch, space, rng, progress=0.0))) for _ in range(5)]
    late = [next(iter(strategy.step(supernet, batch, space, rng, progress=1.0))) for _ in range(5)]
    middle = [next(iter(strategy.step(supernet, batch, space, rng, progress=0.5))) for _ in range(40)]
    assert early == ["largest"] * 5 and late == ["random_0"] * 5
    assert 10 <= middle.count("random_0") <= 30


def test_inplace_distillation_adds_the_kl_to_the_teacher(supernet: SuperNetwork, space: SmallSpace) -> None:
    batch = labelled_batch()
    sub = space.architecture({"num_layers": 1, "num_heads": 2, "num_units": 16})
    supernet.eval()  # no dropout: the three forwards see the same network
    plain, logits = train_sub_network(supernet, sub, batch)
    same, _ = train_sub_network(supernet, sub, batch, teacher=logits, temperature=4.0)
    other, _ = train_sub_network(supernet, sub, batch, teacher=torch.zeros_like(logits).index_fill_(1, torch.tensor([0]), 5.0), temperature=4.0)
    assert same == pytest.approx(plain, abs=1e-6)  # KL to itself is 0
    assert other > plain + 1e-3


def test_unknown_strategies_and_options_fail_in_one_line() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'bogus'; choose one of standard, random"):
        make_strategy("bogus")
    with pytest.raises(ValueError, match="strategy 'standard' has no option 'temperature'"):
        make_strategy("standard", temperature=3.0)
    with pytest.raises(ValueError, match="option 'temperature' must be > 0"):
        make_strategy("full", temperature=0.0)
