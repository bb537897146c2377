"""Shared option groups: a trainer that times its model takes the latency options from
`LatencyMeasureOptions`, one that distils on a corpus takes the teacher and corpus from
`DistillCorpusOptions` (one spelling, default and check), not from fields of its own."""
from __future__ import annotations

import dataclasses

import pytest

from orchestrator import registry
from trainers.efficiency import LatencyOptions
from trainers.options import DistillCorpusOptions, LatencyMeasureOptions, build_options

GROUPS = (LatencyMeasureOptions, DistillCorpusOptions)


@pytest.mark.parametrize("name", registry.trainers.names())
def test_shared_option_groups_are_inherited_not_copied(name: str) -> None:
    options = registry.trainers.load(name).OPTIONS
    own = {f.name for f in dataclasses.fields(options)}
    for group in GROUPS:
        shared = own & {f.name for f in dataclasses.fields(group)}
        if shared:
            assert issubclass(options, group), f"{name} copies {sorted(shared)} instead of inheriting {group.__name__}"


@pytest.mark.parametrize("name", ["flash_distill", "elm_subnet"])
def test_the_corpus_options_are_checked_alike(name: str) -> None:
    options_cls = registry.trainers.load(name).OPTIONS
    assert issubclass(options_cls, DistillCorpusOptions)
    with pytest.raises(ValueError, match="option 'seq_len' must be >= 8, got 4"):
        build_options(options_cls, {"seq_len": 4})
    with pytest.raises(ValueError, match="option 'corpus_blocks' must be >= 1, got 0"):
        build_options(options_cls, {"corpus_blocks": 0})


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
