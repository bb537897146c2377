"""What both backends (Ray Tune in `ray_adapters.py`, the in-process loop in `local_backend.py`) do
the same way for one trial: the configuration it runs with, reuse of a network already evaluated,
the metrics it reports, its time limit and the line its failure leaves in the results.

Kept free of Ray so the in-process backend runs without importing it.
"""
from __future__ import annotations

import traceback
from typing import Any, Mapping

from orchestrator.results import COMPLETED, ResultsStore
from search_spaces.base import SearchSpace

#: (trial id of the source, its final metrics): a completed trial that built the same network.
Found = tuple[str, dict[str, float | str]]


class TrialTimeout(Exception):
    """A trial ran past the study's per-trial time limit."""


def timeout_message(trial_timeout_s: float) -> str:
    return f"the trial ran longer than budget.trial_timeout_s = {trial_timeout_s:g} s"


class NetworkReuse:
    """Finds a completed trial that built the network a configuration builds (`space.network_key`:
    e.g. SMALL's 0 layers with any heads), so no network is trained twice; its trial reports the
    stored metrics at once instead (`reused_metrics`), and the searcher still sees an observation."""

    def __init__(self, space: SearchSpace, store: ResultsStore) -> None:
        self.space, self.store = space, store
        self.network_keys: dict[str, str] = {}  # study trial id -> network key, of completed trials

    def evaluated(self, config: Mapping[str, Any]) -> Found | None:
        """(trial id, final metrics) of a completed trial that built the same network, if any."""
        key = self.space.network_key(config)
        for tid, record in list(self.store.trials.items()):
            if record.status != COMPLETED:
                continue
            if tid not in self.network_keys:
                self.network_keys[tid] = self.space.network_key(record.config)
            if self.network_keys[tid] == key:
                return tid, dict(record.metrics)
        return None


def trial_config(study_id: str, arch: Mapping[str, Any], found: Found | None) -> dict[str, Any]:
    """What a trial runs with: its architecture, its study id and, for a network evaluated already, the reuse."""
    config: dict[str, Any] = {"arch": dict(arch), "trial_id": study_id}
    if found is not None:
        config["reuse"] = {"trial_id": found[0], "metrics": found[1]}
    return config


def reused_metrics(reuse: Mapping[str, Any]) -> dict[str, Any]:
    """The one report of a trial whose network was evaluated already: the source's metrics, named."""
    return {**reuse["metrics"], "reused_from": reuse["trial_id"]}


def plain_metrics(result: Mapping[str, Any] | None, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, float | str]:
    """The trainer's metrics as the results keep them: numbers as floats, text labels (the hardware)
    as text; booleans and anything else dropped, as are the keys in `skip`."""
    if not result:
        return {}
    return {
        k: v if isinstance(v, str) else float(v)
        for k, v in result.items()
        if k not in skip and isinstance(v, (int, float, str)) and not isinstance(v, bool)
    }


def error_line(error: BaseException) -> str:
    """The exception and its message, as the last line of its traceback reads (what `error` holds)."""
    lines = [ln.strip() for ln in "".join(traceback.format_exception_only(type(error), error)).splitlines() if ln.strip()]
    return lines[-1] if lines else "the trial failed without an error message"
