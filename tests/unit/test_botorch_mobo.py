"""The BoTorch multi-objective searcher: known objectives are exact (not modelled), constraints on
them hold, failures and options, and the unit-cube decoding round trip."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pytest
import torch
from botorch.models import SingleTaskGP
from botorch.models.deterministic import GenericDeterministicModel

from orchestrator.objectives import Constraint, Objective, Objectives
from orchestrator.searchers.botorch_mobo import BotorchMoboSearcher, from_unit
from search_spaces.dims import FloatDim
from search_spaces.synthetic import SyntheticSpace
from tests.unit.mixed_space import MixedSpace

SMALL = {"num_candidates": 64, "mutations_per_front_point": 4, "mc_samples": 16, "num_initial": 6}


class CountedSpace(SyntheticSpace):
    """A grid space that knows a size without training: params = 1 + the sum of the x."""

    name = "counted"

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        return {"params": 1.0 + float(sum(config[d.name] for d in self.dims))}


def loss(space: CountedSpace, config: Mapping[str, Any]) -> float:
    """A measured objective that falls as the size grows (the trade-off of a pruned network)."""
    x = np.array(space.point(dict(config)))
    return float(1.0 / (1.0 + x.sum()) + 0.1 * np.sin(5 * x[0]))


def run(searcher: BotorchMoboSearcher, space: CountedSpace, n: int) -> list[dict[str, Any]]:
    configs = []
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        searcher.on_trial_complete(f"t{i}", {"loss": loss(space, config)} | space.metrics(config))
        configs.append(config)
    return configs


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_known_objectives_are_computed_and_measured_ones_modelled() -> None:
    space = CountedSpace(num_dims=3, grid=5)
    objectives = Objectives((Objective("loss", ref=2.0), Objective("params", ref=20.0)))
    # Random trials only (num_initial), then the model they give.
    searcher = BotorchMoboSearcher(space, objectives, seed=0, **(SMALL | {"num_initial": 10}))
    run(searcher, space, 10)
    model = searcher.model()
    assert model is not None
    assert [type(m) for m in model.models] == [SingleTaskGP, GenericDeterministicModel]
    rng = np.random.default_rng(1)
    configs = [space.sample(rng) for _ in range(20)]
    X = torch.tensor(np.array([space.to_unit(c) for c in configs]), dtype=torch.float64)
    posterior = model.posterior(X)
    exact = torch.tensor([space.metrics(c)["params"] for c in configs], dtype=torch.float64)
    assert torch.equal(posterior.mean[:, 1], exact)
    assert float(posterior.variance[:, 0].detach().min()) > 0  # the measured loss is uncertain between points

    # The ablation models the parameters with a GP as well: no longer exact.
    modelled = BotorchMoboSearcher(space, objectives, seed=0, model_known=True, **(SMALL | {"num_initial": 10}))
    run(modelled, space, 10)
    assert [type(m) for m in modelled.model().models] == [SingleTaskGP, SingleTaskGP]
    assert not torch.equal(modelled.model().posterior(X).mean[:, 1], exact)


def test_a_constraint_on_a_known_objective_holds_for_every_suggestion() -> None:
    space = CountedSpace(num_dims=3, grid=5)
    objectives = Objectives((Objective("loss"), Objective("params")))
    cap = Constraint.parse("params <= 5")  # 1 + sum(x) with x in 0..4: 35 of 125 configurations
    searcher = BotorchMoboSearcher(space, objectives, [cap], seed=3, **SMALL)
    configs = run(searcher, space, 12)
    assert len({repr(sorted(c.items())) for c in configs}) == 12
    assert max(space.metrics(c)["params"] for c in configs) <= 5


def test_failures_do_not_reach_the_model_and_options_are_checked() -> None:
    space = CountedSpace(num_dims=2, grid=4)
    objectives = Objectives((Objective("loss"), Objective("params")))
    searcher = BotorchMoboSearcher(space, objectives, seed=0, **SMALL)
    for i in range(8):
        config = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", None if i % 2 else {"loss": loss(space, config)} | space.metrics(config))
    assert len(searcher.measured) == 4
    with pytest.raises(ValueError, match="unknown botorch_mobo options \\['restarts'\\]"):
        BotorchMoboSearcher(space, objectives, restarts=3)
    with pytest.raises(ValueError, match="'mc_samples' must be an integer >= 1"):
        BotorchMoboSearcher(space, objectives, mc_samples=0)


def test_unit_cube_decoding_inverts_the_encoding() -> None:
    space = MixedSpace()
    rng = np.random.default_rng(0)
    for _ in range(50):
        config = space.normalise(space.sample(rng))
        decoded = from_unit(space, space.to_unit(config))
        for d in space.dims:  # floats come back to rounding error, everything else exactly
            assert decoded[d.name] == (pytest.approx(config[d.name]) if isinstance(d, FloatDim) else config[d.name])


def test_the_initial_design_is_counted_in_suggestions_and_covers_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    space = CountedSpace(num_dims=3, grid=7)
    objectives = Objectives((Objective("loss"), Objective("params")))
    searcher = BotorchMoboSearcher(space, objectives, seed=0, **(SMALL | {"num_initial": 7}))
    fits: list[int] = []
    model = searcher.model
    monkeypatch.setattr(searcher, "model", lambda: fits.append(len(searcher.measured)) or model())
    # Four workers: the design is handed out while no result is in yet.
    design = [searcher.suggest(f"t{i}") for i in range(4)]
    for i in range(4, 7):
        done = f"t{i - 4}"
        searcher.on_trial_complete(done, {"loss": loss(space, design[i - 4])} | space.metrics(design[i - 4]))
        design.append(searcher.suggest(f"t{i}"))
    for d in space.dims:  # a Latin hypercube: each of the 7 values once per dimension
        assert sorted(c[d.name] for c in design) == list(range(7))
    assert fits == []
    # With 4 of 7 results in (3 pending), the eighth suggestion comes from the model, not an eighth random one.
    searcher.on_trial_complete("t3", {"loss": loss(space, design[3])} | space.metrics(design[3]))
    assert isinstance(searcher.suggest("t7"), dict)
    assert fits == [4]
