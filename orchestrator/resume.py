"""Continue a study that stopped early: Ctrl-C, SIGKILL of the driver, or a machine restart.

The study directory is the whole truth: trials.parquet (written at every start and end),
searcher_state.json (after every suggestion and every end) and scheduler_state.json. Both
files are replaced atomically, but the process may die between writing one and the other;
`reconcile` brings the searcher back in line with the results so that no trial is lost and
none is run twice:

- finished trials (completed, stopped, failed) are kept; the searcher learns any it missed;
- trials that were running, or suggested but never started, are rerun under their old ids.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.results import FAILED, FINISHED_STATUSES, ResultsStore
from orchestrator.searchers.base import Searcher

SEARCHER_STATE_FILE = "searcher_state.json"
SCHEDULER_STATE_FILE = "scheduler_state.json"


def load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def reconcile(store: ResultsStore, searcher: Searcher) -> list[tuple[str, dict[str, Any]]]:
    """Align `searcher` with the stored results; return the trials to rerun, oldest first."""
    learned = {tid for tid, _, _ in searcher.history}
    replay: list[tuple[str, dict[str, Any]]] = []
    for tid, rec in sorted(store.trials.items(), key=lambda kv: kv[1].started_at):
        if rec.status in FINISHED_STATUSES or rec.status == FAILED:
            if tid not in learned:
                searcher.pending.setdefault(tid, dict(rec.config))
                searcher.on_trial_complete(tid, None if rec.status == FAILED else rec.metrics)
        else:
            searcher.pending.setdefault(tid, dict(rec.config))
            replay.append((tid, dict(rec.config)))
    # Suggested before the crash but never started: the searcher holds them, the results do not.
    replay += [(tid, dict(cfg)) for tid, cfg in searcher.pending.items() if tid not in store.trials]
    return replay


def finished_count(store: ResultsStore) -> int:
    return sum(1 for rec in store.trials.values() if rec.status in FINISHED_STATUSES or rec.status == FAILED)
