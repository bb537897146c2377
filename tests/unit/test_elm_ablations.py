"""benchmarks/elm_ablations.py: the size band that makes the variants' found models comparable, and the
summary's reading of the paired differences (nothing is trained here)."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.objectives import Constraint, Objective, Objectives
from orchestrator.searchers.ga import GASearcher
from search_spaces.elm import BLOCK_KINDS, ElmSpace
from tests.module_file import load_module

ROOT = Path(__file__).resolve().parents[2]


def bench() -> Any:
    return load_module(ROOT / "benchmarks" / "elm_ablations.py")


def test_the_ga_proposes_only_candidates_inside_the_size_band() -> None:
    cap = 250_000
    space = ElmSpace(num_layers=4, hidden_size=128, num_heads=8, max_params=cap, cap_metric="params_non_embedding")
    objectives = Objectives((Objective("accuracy", "max"),))
    band = Constraint.parse(f"params_non_embedding >= {0.95 * cap:.0f}")
    searcher = GASearcher(space, objectives, [band], seed=0, population=4, generations=2)
    sizes = [space.metrics(searcher.propose(f"t{i}"))["params_non_embedding"] for i in range(4)]
    assert all(0.95 * cap <= s <= cap for s in sizes), sizes


def test_the_size_floor_drops_only_as_far_as_the_search_needs() -> None:
    space = ElmSpace(num_layers=4, hidden_size=128, num_heads=8, max_params=150_000, cap_metric="params_non_embedding")
    # 216 block choices lie between 0.95 x and 1 x this cap: the band stands.
    assert bench().size_floor(space, 150_000, 0.95, 48) == 0.95 * 150_000
    # At 250k only 12 do: the floor drops to the 48th largest size under the cap.
    floor = bench().size_floor(space, 250_000, 0.95, 48)
    assert floor < 0.95 * 250_000
    sizes = [space.capped_size({f"block_{i}": k for i, k in enumerate(kinds)})
             for kinds in itertools.product(BLOCK_KINDS, repeat=4)]
    assert sum(floor <= s <= 250_000 for s in sizes) >= 48


def points(task: str, elm: list[float], other: list[float], variant: str) -> list[dict[str, Any]]:
    return [{"task": task, "seed": s, "variant": v, "accuracy": a, "teacher_accuracy": 0.8, "params": 1.0,
             "similarity": 0.5}
            for s, (x, y) in enumerate(zip(elm, other)) for v, a in (("pearson", x), (variant, y))]


def test_the_reading_says_ahead_only_when_every_seed_agrees_beyond_the_spread() -> None:
    rows = (points("a", [0.80, 0.82, 0.81], [0.70, 0.71, 0.69], "classic")  # ahead in every seed, by far
            + points("b", [0.80, 0.70, 0.81], [0.75, 0.76, 0.74], "classic")  # one seed disagrees
            + points("c", [0.70, 0.71, 0.69], [0.80, 0.82, 0.81], "fixed"))  # behind in every seed
    text = bench().summary(pd.DataFrame(rows), "header")
    by_task = dict(zip("abc", text.split("\n\n")[1:]))
    assert "ELM ahead beyond the spread" in by_task["a"]
    assert "within the spread" in by_task["b"] and "beyond" not in by_task["b"]
    assert "ELM behind beyond the spread" in by_task["c"]
