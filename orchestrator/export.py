"""Export the knee of a study's Pareto front (or a chosen trial) as a deployable model (`<study dir>/export/`).

The knee is the front member closest to the ideal point once every objective is scaled to [0, 1]
over the front (in "minimise everything" form, so 0 is the best value seen on each axis), among
the members better than the objectives' reference values when there are any: the
most balanced trade-off, with no weights to choose. The model itself is the trainer's business: its
`export` hook writes it (e.g. `trainers/supernet/hooks.py` cuts the sub-network out of a trained
super-network); `selection.json` records the trial, its configuration,
its objectives and what the hook reports about the model.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from orchestrator import hooks
from orchestrator.errors import ResultsError
from orchestrator.objectives import Objectives
from orchestrator.plugins import build_space
from orchestrator.results import ResultsStore, atomic_write_text, load_trials, metric_column, summarise
from orchestrator.study import Study, load_saved_study
from trainers.contract import Prepared

EXPORT_DIR = "export"
SELECTION_FILE = "selection.json"


def knee_index(points: np.ndarray) -> int:
    """Row of `points` (n, m), minimise form, nearest the ideal point in front-normalised space."""
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"points must be a non-empty (n, m) array, got shape {points.shape}")
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)  # an objective equal on the whole front decides nothing
    scaled = (points - low) / span  # (n, m) in [0, 1]; 0 = best on that axis
    return int(np.argmin(np.linalg.norm(scaled, axis=1)))


def knee_row(front: pd.DataFrame, objectives: Objectives) -> pd.Series:
    """The knee member of a front table (as `results.summarise` gives it), among the members better
    than every objective's reference value (e.g. above chance accuracy) when any is."""
    if len(front) == 0:
        raise ResultsError("the study has no finished trial with every objective; there is no front to export from")
    points = objectives.columns_to_minimise([front[metric_column(m)] for m in objectives.metrics])
    useful = np.flatnonzero((points < objectives.ref_bounds()).all(axis=1))
    rows = useful if len(useful) else np.arange(len(points))
    return front.iloc[rows[knee_index(points[rows])]]


def export_trial(study: Study, prepared: Prepared, directory: Path, store: ResultsStore, trial_id: str | None = None,
                 stream: TextIO = sys.stderr, runner: hooks.TaskRunner | None = None) -> Path:
    """Export the knee of the front (or trial `trial_id`) through the trainer's `export` hook to `<directory>/export/`."""
    export = hooks.require(study, "export", "lmnas export")
    rule = "knee" if trial_id is None else "chosen"
    if trial_id is None:
        trial_id = str(knee_row(summarise(store.trials_frame(), study.objectives, study.constraints).front,
                                study.objectives)["trial_id"])
    ctx = hooks.stage_context(study, prepared.space, prepared.trainer_options, directory, hooks.printer(study, stream),
                              store, chosen=[trial_id], runner=runner)
    trial = ctx.chosen[0]
    out = directory / EXPORT_DIR
    shutil.rmtree(out, ignore_errors=True)  # no file of an earlier export may pass for this one's
    details = hooks.call(export, f"the export of trial {trial_id}", ctx, trial, out)
    selection = {"trial_id": trial.trial_id, "rule": rule, **dict(details), "config": dict(trial.config),
                 "objectives": {m: trial.metrics.get(m) for m in study.objectives.metrics}}
    atomic_write_text(out / SELECTION_FILE, json.dumps(selection, indent=1) + "\n")
    return out


def export_after_trials(study: Study, prepared: Prepared, directory: Path, store: ResultsStore,
                        stream: TextIO = sys.stderr, runner: hooks.TaskRunner | None = None) -> Path | None:
    """When the trainer can export a trial, export the knee of the front (nothing when no trial finished)."""
    if hooks.hook(study, "export") is None:
        return None
    try:
        out = export_trial(study, prepared, directory, store, stream=stream, runner=runner)
    except ResultsError as e:
        print(f"[{study.name}] export skipped: {e}", file=stream, flush=True)
        return None
    print(f"[{study.name}] exported the knee of the front to {out}", file=stream, flush=True)
    return out


def export_study(directory: str | Path, trial_id: str | None = None) -> Path:
    """`lmnas export`: the knee (or `trial_id`) of the study in `directory`, with the study's own options."""
    directory = Path(directory).absolute()
    study = load_saved_study(directory)
    store = ResultsStore(directory, study.objectives, study.constraints)
    if not store.trials:
        load_trials(directory)  # the one-line error of a directory without results
    return export_trial(study, Prepared(build_space(study), study.trainer.options), directory, store, trial_id)
