"""Random search: independent samples from the space (pruning paper §4.1.2, baseline RS)."""
from __future__ import annotations

from orchestrator.searchers.base import Finished, Searcher
from search_spaces.base import Config


class RandomSearcher(Searcher):
    """Uniform samples from the space's own sampler, skipping duplicates and analytic-constraint
    violations when the space makes that possible."""

    def propose(self, trial_id: str) -> Config | None | Finished:
        return self.random_fresh()
