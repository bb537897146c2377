"""Durable study results: every trial and every report, as parquet, written atomically.

Layout of a study directory:
  study.yaml        the resolved study
  trials.parquet    one row per trial: id, status, config.*, final metrics, error, timings, host
  reports.parquet   one row per reported result (intermediate ones too)
  front.csv         the current Pareto front (trials and their objectives)
  summary.json      counts, hypervolume and its trace, reference point

Files are written to a temporary name and renamed, so a crash never leaves a torn file.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from orchestrator.errors import ResultsError
from orchestrator.objectives import Constraint, Objectives, feasible
from orchestrator.pareto import FrontCache, hypervolume_trace, non_dominated_mask

TRIALS_FILE = "trials.parquet"
REPORTS_FILE = "reports.parquet"
FRONT_FILE = "front.csv"
SUMMARY_FILE = "summary.json"
STUDY_FILE = "study.yaml"

RUNNING, COMPLETED, STOPPED, FAILED = "running", "completed", "stopped", "failed"
#: a trial whose run ended (Ctrl-C, time budget, lost driver) before it did; resume reruns it.
INTERRUPTED = "interrupted"
#: statuses whose metrics count towards the front (a stopped trial ran at a lower fidelity).
FINISHED_STATUSES = (COMPLETED, STOPPED)
_RESERVED = {"trial_id", "status", "error", "started_at", "ended_at", "duration_s", "host", "num_reports", "attempt"}


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a torn one; `durable`
    also waits for the disk (fsync) before the rename, so the new file survives a power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    buf = frame.to_parquet(index=False)
    atomic_write_bytes(path, buf)


def metric_column(name: str) -> str:
    """Metric columns use the metric's name unless it collides with a bookkeeping column."""
    return f"metric.{name}" if name in _RESERVED or name.startswith("config.") else name


@dataclass
class TrialRecord:
    trial_id: str
    config: dict[str, Any]
    status: str = RUNNING
    metrics: dict[str, float | str] = field(default_factory=dict)
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    host: str | None = None
    num_reports: int = 0
    attempt: int = 1

    def row(self) -> dict[str, Any]:
        end = self.ended_at
        return {
            "trial_id": self.trial_id,
            "status": self.status,
            **{f"config.{k}": v for k, v in self.config.items()},
            **{metric_column(k): v for k, v in self.metrics.items()},
            "error": self.error,
            "started_at": pd.Timestamp(self.started_at, unit="s", tz="UTC"),
            "ended_at": pd.Timestamp(end, unit="s", tz="UTC") if end else pd.NaT,
            "duration_s": (end - self.started_at) if end else np.nan,
            "host": self.host,
            "num_reports": self.num_reports,
            "attempt": self.attempt,
        }


class ResultsStore:
    """Collects trial events and keeps the study directory's files current.

    Thread-safe: Ray Tune callbacks and a background searcher may call it concurrently.
    Intermediate reports are flushed at most every `flush_interval_s`; starts and ends at once.
    The trials table and the summary are computed once per change and shared by every reader of the
    driver (the files, the progress line, the live page); the front and the hypervolume trace are
    extended, not recomputed, when trials finish (benchmarks/scale.py, part 0: 32-60 ms of CPU per trial
    over a 512-trial study, where recomputing cost 60-313 ms by trial 384).
    """

    def __init__(
        self,
        directory: Path,
        objectives: Objectives,
        constraints: tuple[Constraint, ...] = (),
        flush_interval_s: float = 2.0,
    ) -> None:
        self.directory = Path(directory)
        self.objectives = objectives
        self.constraints = constraints
        self.flush_interval_s = flush_interval_s
        self.trials: dict[str, TrialRecord] = {}
        self.reports: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._last_flush = 0.0
        #: bumped by every change of `trials`: what the cached table and summary were computed from.
        self._version = 0
        self._frame: tuple[int, pd.DataFrame] | None = None
        self._summary: tuple[int, Summary] | None = None
        self._front = FrontCache()
        self._load_existing()

    # Ray Tune pickles its callbacks into its own experiment state: leave the lock behind.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_frame", "_summary")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._frame = self._summary = None

    def _load_existing(self) -> None:
        """Continue an existing study: keep its trials and reports."""
        trials_path = self.directory / TRIALS_FILE
        if trials_path.exists():
            for row in pd.read_parquet(trials_path).to_dict("records"):
                self.trials[row["trial_id"]] = record_from_row(row)
        reports_path = self.directory / REPORTS_FILE
        if reports_path.exists():
            self.reports = [
                {k: v for k, v in r.items() if not _is_missing(v)} for r in pd.read_parquet(reports_path).to_dict("records")
            ]

    # ---- events -------------------------------------------------------------------------------------------
    def trial_started(self, trial_id: str, config: Mapping[str, Any], host: str | None = None) -> None:
        with self._lock:
            previous = self.trials.get(trial_id)
            attempt = previous.attempt + 1 if previous else 1
            self.trials[trial_id] = TrialRecord(trial_id, dict(config), host=host, attempt=attempt)
            self._version += 1
            self.flush()

    def trial_reported(self, trial_id: str, metrics: Mapping[str, float], host: str | None = None) -> None:
        with self._lock:
            rec = self.trials.get(trial_id)
            if rec is None:
                return
            rec.metrics = dict(metrics)
            rec.num_reports += 1
            self._version += 1
            rec.host = host or rec.host
            self.reports.append({"trial_id": trial_id, "time": time.time(), "attempt": rec.attempt, **metrics})
            if time.monotonic() - self._last_flush >= self.flush_interval_s:
                self.flush()

    def trial_finished(
        self, trial_id: str, status: str, metrics: Mapping[str, float] | None = None, error: str | None = None
    ) -> None:
        with self._lock:
            rec = self.trials.get(trial_id)
            if rec is None:
                return
            rec.status = status
            if metrics:
                rec.metrics = dict(metrics)
            rec.error = error
            rec.ended_at = time.time()
            self._version += 1
            self.flush()

    def mark_interrupted(self) -> int:
        """Mark trials still running when the trial loop ended; returns how many there were."""
        with self._lock:
            running = [r for r in self.trials.values() if r.status == RUNNING]
            for rec in running:
                rec.status = INTERRUPTED
            self._version += 1
            self.flush()
            return len(running)

    # ---- views --------------------------------------------------------------------------------------------
    def trials_frame(self) -> pd.DataFrame:
        """One row per trial (a copy: the caller may change it)."""
        with self._lock:
            if self._frame is None or self._frame[0] != self._version:
                rows = [r.row() for r in self.trials.values()]
                frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["trial_id", "status"])
                self._frame = (self._version, frame)
            return self._frame[1].copy()

    def summary(self) -> Summary:
        """`summarise` of the current trials, computed once per change (shared: do not modify it)."""
        with self._lock:
            if self._summary is None or self._summary[0] != self._version:
                summary = summarise(self.trials_frame(), self.objectives, self.constraints, cache=self._front)
                self._summary = (self._version, summary)
            return self._summary[1]

    def flush(self) -> None:
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            trials = self.trials_frame()
            atomic_write_parquet(self.directory / TRIALS_FILE, trials)
            atomic_write_parquet(self.directory / REPORTS_FILE, pd.DataFrame(self.reports))
            summary = self.summary()
            # Derived from the trials, rewritten at the next event: atomic, but not worth two more
            # waits for the disk on every trial start and end (the driver's loop waits meanwhile).
            atomic_write_text(self.directory / FRONT_FILE, summary.front.to_csv(index=False), durable=False)
            atomic_write_text(self.directory / SUMMARY_FILE, json.dumps(summary.to_json(), indent=2), durable=False)
            self._last_flush = time.monotonic()


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT


def record_from_row(row: Mapping[str, Any]) -> TrialRecord:
    config = {k[len("config."):]: _plain(v) for k, v in row.items() if k.startswith("config.") and not _is_missing(v)}
    metrics = {
        (k[len("metric."):] if k.startswith("metric.") else k): (v if isinstance(v, str) else float(v))
        for k, v in row.items()
        if k not in _RESERVED and not k.startswith("config.") and not _is_missing(v)
        and isinstance(v, (int, float, np.number, str))
    }
    started = row.get("started_at")
    ended = row.get("ended_at")
    return TrialRecord(
        trial_id=row["trial_id"],
        config=config,
        status=row["status"],
        metrics=metrics,
        error=None if _is_missing(row.get("error")) else row.get("error"),
        started_at=started.timestamp() if isinstance(started, pd.Timestamp) else time.time(),
        ended_at=ended.timestamp() if isinstance(ended, pd.Timestamp) and not pd.isna(ended) else None,
        host=None if _is_missing(row.get("host")) else row.get("host"),
        num_reports=int(row.get("num_reports") or 0),
        attempt=int(row.get("attempt") or 1),
    )


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class Summary:
    counts: dict[str, int]
    front: pd.DataFrame
    hypervolume: float | None
    hypervolume_trace: list[float]
    ref_point: list[float] | None
    objectives: list[dict[str, Any]]
    #: volume of the box between the best value seen on each objective and the reference point.
    box_volume: float | None = None

    @property
    def hypervolume_fraction(self) -> float | None:
        """The share of the reference box the front covers: 1 when one trial is best on every
        objective, comparable across studies and units (the raw hypervolume is in objective units)."""
        if self.hypervolume is None or not self.box_volume:
            return None
        return self.hypervolume / self.box_volume

    def hypervolume_text(self) -> str:
        """`73.4% of the reference box (raw 1.226e+07)`, or `n/a`."""
        if self.hypervolume is None:
            return "n/a"
        fraction = self.hypervolume_fraction
        return f"{self.hypervolume:.4g}" if fraction is None else \
            f"{fraction:.1%} of the reference box (raw {self.hypervolume:.4g})"

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "front_size": len(self.front),
            "hypervolume": self.hypervolume,
            "hypervolume_fraction": self.hypervolume_fraction,
            "hypervolume_trace": self.hypervolume_trace,
            "ref_point_minimise_form": self.ref_point,
            "objectives": self.objectives,
            "updated_at": time.time(),
        }


def summarise(trials: pd.DataFrame, objectives: Objectives, constraints: tuple[Constraint, ...] = (),
              cache: FrontCache | None = None) -> Summary:
    """Counts, the Pareto front of finished feasible trials, and the hypervolume trace (in end order);
    `cache` carries the front and the trace over from the last call (the results store's)."""
    counts = {s: int((trials["status"] == s).sum()) if len(trials) else 0 for s in (RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED)}
    cols = [metric_column(m) for m in objectives.metrics]
    done = trials[trials["status"].isin(FINISHED_STATUSES)] if len(trials) else trials
    if len(done) and all(c in done.columns for c in cols):
        done = done.sort_values("ended_at", kind="stable")
        rows = [dict(r) | {m: r[c] for m, c in zip(objectives.metrics, cols)} for r in done.to_dict("records")]
        ok = [objectives.has_values(r) and feasible(constraints, _metrics_of(r)) for r in rows]
        done = done[ok]
    else:
        done = done.iloc[0:0]
    meta = [{"metric": o.metric, "mode": o.mode, "ref": o.ref} for o in objectives.items]
    if len(done) == 0:
        return Summary(counts, pd.DataFrame(columns=["trial_id", *cols]), None, [], None, meta)
    points = objectives.columns_to_minimise([done[c] for c in cols])
    mask = cache.front_mask(points) if cache is not None else non_dominated_mask(points)
    config_cols = [c for c in done.columns if c.startswith("config.")]
    shown = mask
    if "reused_from" in done.columns:  # a reused trial repeats its source, which the front already shows
        shown = mask & done["reused_from"].isna().to_numpy()
    front = done.loc[shown, ["trial_id", *cols, *config_cols]].sort_values(cols[0]).reset_index(drop=True)
    ref = objectives.ref_point(points)
    if ref is None:
        trace = np.zeros(len(points))
    else:
        trace = cache.hypervolume_trace(points, ref) if cache is not None else hypervolume_trace(points, ref)
    box = float(np.prod(np.clip(ref - points.min(axis=0), 0.0, None))) if ref is not None else None
    return Summary(counts, front, float(trace[-1]), [float(x) for x in trace], ref.tolist() if ref is not None else None,
                   meta, box)


def _metrics_of(row: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def load_trials(directory: Path) -> pd.DataFrame:
    """The trials table of a study directory (a clear error when there is none)."""
    path = Path(directory) / TRIALS_FILE
    if not path.exists():
        raise ResultsError(f"no results in {str(directory)!r}: expected {TRIALS_FILE}; pass a study directory (<storage>/<name>)")
    return pd.read_parquet(path)
