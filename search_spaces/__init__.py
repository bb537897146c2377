"""Search spaces: what can be sampled, encoded, mutated and counted.

A search space owns its configuration keys; nobody else spells them.
"""
from search_spaces.base import InvalidArchitectureError, SearchSpace

__all__ = ["InvalidArchitectureError", "SearchSpace"]
