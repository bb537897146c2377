"""The results store's cached summary equals a summary computed from scratch, event after event."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.objectives import Objective, Objectives
from orchestrator.results import COMPLETED, FAILED, ResultsStore, summarise


@pytest.mark.parametrize("ref", [(1.1, 11.0), (None, None)], ids=["fixed-ref", "ref-from-data"])
def test_cached_summary_matches_a_fresh_one(tmp_path: Path, ref: tuple) -> None:
    objs = Objectives((Objective("f1", "min", ref[0]), Objective("f2", "max", None if ref[1] is None else -ref[1])))
    store = ResultsStore(tmp_path, objs, flush_interval_s=0)
    rng = np.random.default_rng(0)
    for i in range(40):
        x = rng.random(2)
        store.trial_started(f"t{i}", {"x": float(x[0])})
        metrics = {"f1": float(x[0]), "f2": -float(1 + 9 * x[1] - np.sqrt(x[0]))}
        store.trial_reported(f"t{i}", metrics)
        if i == 7:  # a duplicate of a finished trial's point, and a failure
            metrics = dict(store.trials["t3"].metrics)
        store.trial_finished(f"t{i}", FAILED if i % 9 == 8 else COMPLETED, metrics)
        cached, fresh = store.summary(), summarise(store.trials_frame(), objs)
        assert cached.counts == fresh.counts
        assert cached.front.equals(fresh.front)
        assert cached.hypervolume_trace == pytest.approx(fresh.hypervolume_trace, rel=1e-12)
        assert cached.ref_point == fresh.ref_point
    assert len(store.summary().front) > 1
    # A reloaded store (a resumed study) starts its cache afresh and agrees too.
    again = ResultsStore(tmp_path, objs)
    assert again.summary().hypervolume_trace == pytest.approx(store.summary().hypervolume_trace, rel=1e-12)
