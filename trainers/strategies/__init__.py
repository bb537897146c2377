"""Super-network training strategies (structural-pruning-via-nas.txt §3.2.1, §4.1.3), by name.

Trainers look strategies up here, not in the orchestrator's registry: `make_strategy("full",
temperature=10.0)`.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

from trainers.strategies.base import Batch, Losses, Strategy
from trainers.strategies.full import Full
from trainers.strategies.inplace_kd import InplaceKD
from trainers.strategies.random import RandomSubNetwork
from trainers.strategies.random_linear import RandomLinear
from trainers.strategies.sandwich import Sandwich
from trainers.strategies.standard import Standard

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Standard, RandomSubNetwork, RandomLinear, Sandwich, InplaceKD, Full)
}


def make_strategy(name: str, **options: Any) -> Strategy:
    """The strategy called `name` with its options; one-line errors for unknown names and options."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"strategy {name!r} has no option {unknown[0]!r}; its options: {sorted(allowed) or 'none'}")
    return cls(**options)


def strategy_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `options` that strategy `name` takes (others, e.g. a temperature for
    `standard`, do not change it)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    allowed = {f.name for f in fields(STRATEGIES[name])}
    return {k: v for k, v in options.items() if k in allowed}


__all__ = ["STRATEGIES", "Batch", "Losses", "Strategy", "make_strategy", "strategy_options"]
