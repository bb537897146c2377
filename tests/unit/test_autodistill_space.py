"""The AutoDistill space: presets, buildability rules, analytic params equal to the built student's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrator.registry import search_spaces
from search_spaces.autodistill import PRESETS, AutoDistillSpace, StudentArch
from search_spaces.base import InvalidArchitectureError
from trainers.autodistill.student import Student
from trainers.efficiency import count_params

SMALL_TABLES = dict(vocab_size=50, max_positions=24, type_vocab_size=2)


def setup_module() -> None:
    torch.set_num_threads(1)


def test_paper_preset_is_table_1() -> None:
    space = AutoDistillSpace(preset="paper")
    assert [d.name for d in space.dims] == ["hidden_size", "bottleneck_size", "num_heads", "intermediate_size", "num_ffn"]
    assert PRESETS["paper"]["hidden_size"] == (128, 256, 384, 512)
    assert PRESETS["paper"]["num_blocks"] == (24,)
    # The paper counts 576 block designs (§3.2); all of them are buildable.
    sizes = [len(d.choices) for d in space.dims]
    assert int(np.prod(sizes)) == 576
    assert all(space.is_valid(c) for c in (space.smallest(), space.largest()))


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_analytic_params_equal_built_student(preset: str) -> None:
    space = AutoDistillSpace(preset=preset, num_blocks=2, **SMALL_TABLES)
    rng = np.random.default_rng(0)
    configs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(3)]
    for config in configs:
        built = count_params(Student(space.architecture(config))).as_metrics()
        assert space.metrics(config) == built, config


def test_heads_that_do_not_divide_the_bottleneck_are_refused_with_one_line() -> None:
    space = AutoDistillSpace(bottleneck_size=[30, 32], num_heads=[1, 4])
    bad = {"hidden_size": 96, "bottleneck_size": 30, "num_heads": 4, "intermediate_size": 64, "num_ffn": 1}
    with pytest.raises(InvalidArchitectureError, match=r"num_heads=4 must divide bottleneck_size=30") as err:
        space.check(bad)
    assert "\n" not in str(err.value)
    rng = np.random.default_rng(1)
    samples = [space.sample(rng) for _ in range(50)]
    assert all(s["bottleneck_size"] % s["num_heads"] == 0 for s in samples)
    assert all(space.is_valid(n) for n in space.neighbours(samples[0]))
    assert space.largest()["bottleneck_size"] == 32


def test_zero_ffns_are_refused() -> None:
    config = {"hidden_size": 96, "bottleneck_size": 32, "num_heads": 1, "intermediate_size": 64, "num_ffn": 0}
    with pytest.raises(InvalidArchitectureError, match="num_ffn must be an integer >= 1"):
        AutoDistillSpace().check(config)
    with pytest.raises(ValueError, match="num_ffn must be a non-empty list of positive integers"):
        AutoDistillSpace(num_ffn=[0, 1])
    with pytest.raises(InvalidArchitectureError, match="num_ffn"):
        StudentArch(hidden_size=8, bottleneck_size=8, num_heads=1, intermediate_size=8, num_ffn=0, num_blocks=1)


def test_no_buildable_student_is_a_space_error() -> None:
    with pytest.raises(ValueError, match="no num_heads value divides any bottleneck_size"):
        AutoDistillSpace(bottleneck_size=[30], num_heads=[4, 8])


def test_keys_and_ranges_are_checked() -> None:
    space = AutoDistillSpace()
    good = space.smallest()
    with pytest.raises(InvalidArchitectureError, match="missing"):
        space.check({k: v for k, v in good.items() if k != "num_ffn"})
    with pytest.raises(InvalidArchitectureError, match="outside"):
        space.check({**good, "hidden_size": 100})


def test_num_blocks_list_becomes_a_dimension_and_options_rebuild_the_space() -> None:
    space = AutoDistillSpace(preset="cpu", num_blocks=[2, 4], hidden_size=[64, 128], **SMALL_TABLES)
    assert space.dims[-1].name == "num_blocks"
    assert space.architecture({**space.smallest()}).num_blocks == 2
    assert type(space)(**space.options()) == space
    fixed = AutoDistillSpace(num_blocks=3)
    assert fixed.options()["num_blocks"] == 3 and type(fixed)(**fixed.options()) == fixed
    small, large = space.metrics(space.smallest())["params"], space.metrics(space.largest())["params"]
    assert small < large


def test_registered_by_name() -> None:
    assert search_spaces.load("autodistill") is AutoDistillSpace
