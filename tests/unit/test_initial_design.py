"""The Latin hypercube initial design: every dimension's values spread as evenly as the design size
allows, for each kind of dimension."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from orchestrator.searchers.design import latin_hypercube
from search_spaces.pruning import SmallSpace
from tests.unit.mixed_space import MixedSpace


def test_every_value_of_a_short_dimension_appears_as_evenly_as_the_size_allows() -> None:
    space = SmallSpace(unit_step=128)  # 7 layer counts, 12 head counts, 12 FFN widths
    for seed in range(20):
        design = latin_hypercube(space, 8, np.random.default_rng(seed))
        layers = Counter(c["num_layers"] for c in design)
        assert sorted(layers) == list(range(7)) and sorted(layers.values()) == [1] * 6 + [2]
        design = latin_hypercube(space, 24, np.random.default_rng(seed))
        assert set(Counter(c["num_heads"] for c in design).values()) == {2}


def test_a_continuous_dimension_gets_one_value_in_each_of_n_equal_slices() -> None:
    space = MixedSpace()  # dropout in [0, 0.3]; lr in [1e-5, 1e-2] on a log scale; ffn 64..512 in 8 steps
    n = 10
    for seed in range(20):
        design = latin_hypercube(space, n, np.random.default_rng(seed))
        assert all(space.is_valid(c) for c in design)
        dropout = [c["dropout"] / 0.3 for c in design]
        lr = [(math.log(c["lr"]) - math.log(1e-5)) / (math.log(1e-2) - math.log(1e-5)) for c in design]
        for u in (dropout, lr):
            assert sorted(int(x * n) for x in u) == list(range(n))
        assert sorted(Counter(c["ffn"] for c in design).values()) == [1] * 6 + [2] * 2


def test_the_design_is_a_function_of_the_generator() -> None:
    space = MixedSpace()
    a = latin_hypercube(space, 6, np.random.default_rng(3))
    assert a == latin_hypercube(space, 6, np.random.default_rng(3))
    assert a != latin_hypercube(space, 6, np.random.default_rng(4))
