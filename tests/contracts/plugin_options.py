"""Per-plug-in options for the contract tests: whatever keeps one plug-in's run to seconds
(smaller populations, shrunk inner optimisation loops). A plug-in not listed runs with its
defaults; add a line for a new plug-in when its defaults are too slow for a test."""
from __future__ import annotations

from typing import Any

SEARCHER_OPTIONS: dict[str, dict[str, Any]] = {
    "local": {"patience": 10},
    "morea": {"population_size": 10, "sample_size": 3},
    "nsga2": {"population": 10},
    # Several generations within the contract's 14-60 trials (the paper's 50 would be all random).
    "ga": {"population": 8},
    # Synchronous, so a restored searcher continues identically; a shrunk acquisition optimiser.
    "ax_mobo": {"background": False, "num_restarts": 2, "raw_samples": 32},
    "botorch_mobo": {"num_candidates": 64, "mutations_per_front_point": 4, "mc_samples": 8},
    # A GP suggestion costs ~0.3 s CPU: the model takes over after 30 trials (the 60-trial search
    # test runs 30 of them) and a proposal the rules refuse is asked again only twice.
    "optuna_gp": {"n_startup_trials": 30, "max_repeats": 2},
}

#: the contract's synthetic trainer reports "step" 1..9.
SCHEDULER_OPTIONS: dict[str, dict[str, Any]] = {
    "moasha": {"fidelity": "step", "min_fidelity": 1, "max_fidelity": 9, "reduction_factor": 3},
}

#: constructor options of a search space in the contract tests (defaults when not listed).
SEARCH_SPACE_OPTIONS: dict[str, dict[str, Any]] = {
    # A grown super-network (unequal FFN widths per block) and a cap, so width and cap rules are exercised.
    "elm": {"num_layers": 3, "hidden_size": 64, "num_heads": 4, "vocab_size": 100, "max_positions": 64,
            "ffn_widths": [[16, 32, 48, 16, 64, 32], [48, 16, 16, 32, 16, 128], [16, 16, 16, 16, 16, 16]],
            "max_params": 50000},
}
