"""SMALL with a coarse FFN grid (`unit_step`): the enumerable space of the frozen sub-network table."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from orchestrator.errors import StudyError
from orchestrator.plugins import construct
from search_spaces.base import InvalidArchitectureError
from search_spaces.pruning import SmallSpace

TINY = dict(num_layers=2, num_heads=4, intermediate_size=64, hidden_size=32, vocab_size=120, max_position=40, type_vocab=2, num_labels=3)


def test_units_are_multiples_of_the_step() -> None:
    space = SmallSpace(**TINY, unit_step=16)
    units = next(d for d in space.dims if d.name == "num_units")
    assert units.values == [16, 32, 48, 64]
    assert space.smallest()["num_units"] == 16 and space.largest()["num_units"] == 64
    rng = np.random.default_rng(0)
    assert all(space.sample(rng)["num_units"] % 16 == 0 for _ in range(50))
    assert all(n["num_units"] % 16 == 0 for n in space.neighbours({"num_layers": 1, "num_heads": 2, "num_units": 32}))


def test_the_minilm_grid_has_1008_members() -> None:
    space = SmallSpace(unit_step=128)
    grid = list(itertools.product(*(d.values for d in space.dims)))
    assert len(grid) == 7 * 12 * 12
    assert all(space.is_valid(dict(zip([d.name for d in space.dims], g))) for g in grid[::37])


def test_off_grid_units_are_refused() -> None:
    with pytest.raises(InvalidArchitectureError, match="num_units=20 is outside integers 16..64 in steps of 16"):
        SmallSpace(**TINY, unit_step=16).check({"num_layers": 1, "num_heads": 1, "num_units": 20})


def test_options_rebuild_the_space_and_the_default_keeps_its_old_options() -> None:
    coarse = SmallSpace(**TINY, unit_step=16)
    assert SmallSpace(**coarse.options()) == coarse and coarse != SmallSpace(**TINY)
    assert "unit_step" not in SmallSpace(**TINY).options()


@pytest.mark.parametrize("step", [0, 7, True, 2.0])
def test_a_step_that_does_not_divide_the_width_is_one_line(step: object) -> None:
    with pytest.raises(StudyError, match="search_space.options: small: option 'unit_step' must be a positive divisor of intermediate_size \\(64\\)"):
        construct(SmallSpace, {**TINY, "unit_step": step}, "search_space.options")
