"""Shared option groups: a trainer that times its model takes the latency options from
`LatencyMeasureOptions` (one spelling, default and check), not from fields of its own."""
from __future__ import annotations

import dataclasses

import pytest

from orchestrator import registry
from trainers.efficiency import LatencyOptions
from trainers.options import LatencyMeasureOptions, build_options

LATENCY_FIELDS = {f.name for f in dataclasses.fields(LatencyMeasureOptions)}


@pytest.mark.parametrize("name", registry.trainers.names())
def test_latency_options_are_inherited_not_copied(name: str) -> None:
    options = registry.trainers.load(name).OPTIONS
    own = {f.name for f in dataclasses.fields(options)}
    if own & LATENCY_FIELDS:
        assert issubclass(options, LatencyMeasureOptions), f"{name} copies {sorted(own & LATENCY_FIELDS)}"


@pytest.mark.parametrize("name", ["weight_sharing", "flash_distill", "elm_subnet", "standard_nas"])
def test_a_trainers_latency_options_reach_the_measurement(name: str) -> None:
    options_cls = registry.trainers.load(name).OPTIONS
    opts = build_options(options_cls, {"latency_batch": 2, "latency_seq_len": 32, "latency_repeats": 5,
                                       "latency_threads": 1})
    assert opts.latency_options() == LatencyOptions(batch=2, seq_len=32, repeats=5, threads=1)
    with pytest.raises(ValueError, match="option 'latency_seq_len' must be >= 1, got 0"):
        build_options(options_cls, {"latency_seq_len": 0})


def test_only_a_trainer_with_optional_latency_takes_zero_repeats() -> None:
    elm = registry.trainers.load("elm_subnet").OPTIONS
    assert elm().latency_repeats == 0  # ELM's search is bounded by its parameter cap; latency is extra
    with pytest.raises(ValueError, match="option 'latency_repeats' must be >= 0, got -1"):
        elm(latency_repeats=-1)
    sharing = registry.trainers.load("weight_sharing").OPTIONS
    with pytest.raises(ValueError, match="option 'latency_repeats' must be >= 1, got 0"):
        sharing(latency_repeats=0)
