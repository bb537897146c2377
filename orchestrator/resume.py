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
import threading
import time
from pathlib import Path
from typing import Any, Callable

from orchestrator.results import FAILED, FINISHED_STATUSES, ResultsStore, atomic_write_text
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
                searcher.add_pending(tid, dict(rec.config))
                searcher.on_trial_complete(tid, None if rec.status == FAILED else rec.metrics)
        else:
            searcher.add_pending(tid, dict(rec.config))
            replay.append((tid, dict(rec.config)))
    # Suggested before the crash but never started: the searcher holds them, the results do not.
    replay += [(tid, dict(cfg)) for tid, cfg in searcher.pending.items() if tid not in store.trials]
    return replay


def finished_count(store: ResultsStore) -> int:
    return sum(1 for rec in store.trials.values() if rec.status in FINISHED_STATUSES or rec.status == FAILED)


def unfinished_count(store: ResultsStore) -> int:
    """Stored trials that were running (or interrupted) when the study stopped: they rerun."""
    return len(store.trials) - finished_count(store)


class BackgroundSaver:
    """Keeps a JSON snapshot of some state on disk without blocking the caller.

    `request()` returns at once; a daemon thread takes the snapshot and writes it atomically,
    coalescing requests that arrive meanwhile. A snapshot taken while the driver mutates the
    state may be a moment stale or fail with RuntimeError (then it is retried); `reconcile`
    heals staleness on resume, because the results are the truth. The searcher's snapshot can
    take seconds (Ax waits for a suggestion in progress), which is why it stays off the driver.
    """

    def __init__(self, snapshot: Callable[[], dict[str, Any]], path: Path) -> None:
        self.snapshot = snapshot
        self.path = path
        self.latest: str | None = None
        self._wanted = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"save-{path.name}", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _loop(self) -> None:
        while not self._closed:
            if not self._wanted.wait(timeout=0.5):
                continue
            self._wanted.clear()
            self.save_now()

    def save_now(self) -> None:
        for _ in range(20):
            try:
                text = json.dumps(self.snapshot())
                break
            except RuntimeError:  # the state changed size under us: take it again
                time.sleep(0.05)
        else:
            return
        self.latest = text
        atomic_write_text(self.path, text)

    def close(self) -> None:
        """Stop the thread and write a final snapshot from the calling thread."""
        self._closed = True
        self._thread.join(timeout=60)
        self.save_now()
