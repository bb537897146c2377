"""Every registered search space honours the search-space contract (after syne-tune's
`tst/schedulers/test_schedulers_api.py`): samples are valid, plain-JSON and normalised; moves
(neighbours, mutation, crossover) stay in the space; the sandwich extremes bound the parameter
count; options rebuild the space; bad configurations are refused with InvalidArchitectureError.
Spaces are read from the registry when the tests run, with SEARCH_SPACE_OPTIONS if listed."""
from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
import pytest

from orchestrator import registry
from search_spaces.base import InvalidArchitectureError, SearchSpace
from search_spaces.dims import ChoiceDim, FloatDim, IntDim
from tests.contracts.plugin_options import SEARCH_SPACE_OPTIONS

NAMES = registry.search_spaces.names()
SAMPLES = 5


@pytest.fixture(params=NAMES)
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return registry.search_spaces.load(request.param)(**SEARCH_SPACE_OPTIONS.get(request.param, {}))


def samples(space: SearchSpace, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(SAMPLES)]


def changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return [k for k in a if a[k] != b[k]]


def test_the_registered_name_is_the_space_name(space: SearchSpace) -> None:
    assert space.name in NAMES and registry.search_spaces.load(space.name) is type(space)


def test_samples_are_valid_normalised_json_and_seeded(space: SearchSpace) -> None:
    names = [d.name for d in space.dims]
    for config in samples(space):
        space.check(config)
        assert list(config) == names
        assert space.normalise(config) == config
        assert json.loads(json.dumps(config)) == config
        unit = space.to_unit(config)
        assert unit.shape == (len(names),) and np.all((unit >= 0) & (unit <= 1))
    assert samples(space, seed=7) == samples(space, seed=7)


def test_neighbours_are_one_dimension_away_and_valid(space: SearchSpace) -> None:
    rng = np.random.default_rng(1)
    for config in samples(space):
        near = space.neighbours(config)
        # Check a random handful: a large space has thousands of neighbours.
        for i in rng.choice(len(near), size=min(len(near), 12), replace=False):
            n = near[int(i)]
            assert len(changed(config, n)) == 1 and space.is_valid(n)


def test_mutation_changes_and_stays_valid(space: SearchSpace) -> None:
    rng = np.random.default_rng(2)
    for config in samples(space):
        child = space.mutate(config, rng)
        assert child != config and space.is_valid(child)


def test_crossover_children_are_valid_mixes_of_their_parents(space: SearchSpace) -> None:
    rng = np.random.default_rng(3)
    configs = samples(space)
    for a, b in zip(configs, configs[1:]):
        child = space.crossover(a, b, rng)
        assert space.is_valid(child)
        assert all(child[k] in (a[k], b[k]) for k in child)


def test_smallest_and_largest_bound_the_parameter_count(space: SearchSpace) -> None:
    low, high = space.smallest(), space.largest()
    space.check(low)
    space.check(high)
    if "params" not in space.metrics(high):
        return
    lo, hi = space.metrics(low)["params"], space.metrics(high)["params"]
    assert lo <= hi
    assert all(lo <= space.metrics(c)["params"] <= hi for c in samples(space))


def test_options_rebuild_an_equal_space(space: SearchSpace) -> None:
    options = space.options()
    assert json.loads(json.dumps(options)) == options  # study files carry them
    rebuilt = type(space)(**options)
    assert rebuilt == space and hash(rebuilt) == hash(space) and rebuilt.dims == space.dims


def out_of_range(d: Any) -> Any:
    if isinstance(d, IntDim):
        return d.high + d.step
    if isinstance(d, FloatDim):
        return d.high + 1.0
    assert isinstance(d, ChoiceDim)
    return "not-a-choice"


def test_invalid_configurations_are_refused(space: SearchSpace) -> None:
    config = samples(space)[0]
    first = space.dims[0]
    bad = [
        {k: v for k, v in config.items() if k != first.name},  # a missing key
        {**config, "no_such_dimension": 1},  # an unknown key
        {**config, first.name: out_of_range(first)},
        {**config, space.dims[-1].name: out_of_range(space.dims[-1])},
    ]
    for b in bad:
        assert not space.is_valid(b)
        with pytest.raises(InvalidArchitectureError):
            space.check(b)
        with pytest.raises(InvalidArchitectureError):
            space.normalise(b)


def test_a_network_key_identifies_the_network(space: SearchSpace) -> None:
    """Equal for a configuration and its normalised copy, and the same analytic size under one key
    (configurations with one key are one network; searches reuse one evaluation for them)."""
    by_key: dict[str, dict[str, float]] = {}
    for config in samples(space):
        key = space.network_key(config)
        assert key == space.network_key(space.normalise(dict(reversed(list(config.items())))))
        assert by_key.setdefault(key, space.metrics(config)) == space.metrics(config)
    assert len(by_key) > 1


def test_every_space_builds_what_a_configuration_describes(space: SearchSpace) -> None:
    """`architecture` is on every space (what a trainer builds; the configuration itself where that is
    all there is to build): the same for a configuration and its normalised copy, refused when bad."""
    for config in samples(space):
        assert space.architecture(config) == space.architecture(space.normalise(dict(reversed(list(config.items())))))
    with pytest.raises(InvalidArchitectureError):
        space.architecture({**samples(space)[0], "no_such_dimension": 1})
