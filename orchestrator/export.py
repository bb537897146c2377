"""Export the knee of a study's Pareto front as a deployable model (`<study dir>/export/`).

The knee is the front member closest to the ideal point once every objective is scaled to [0, 1]
over the front (in "minimise everything" form, so 0 is the best value seen on each axis), among
the members better than the objectives' reference values when there are any: the
most balanced trade-off, with no weights to choose. For a `weight_sharing` study its sub-network
is cut out of the trained super-network (structural-pruning-via-nas.txt §3.2.2: the searched
sub-networks are the final models) and saved with `trainers/supernet/export.py`: a standard
`BertForSequenceClassification` folder when every kept layer has heads and FFN units (SMALL),
else the compact format with ONNX. `selection.json` records the trial, its configuration and metrics.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from orchestrator.errors import ResultsError
from orchestrator.objectives import Objectives
from orchestrator.plugins import build_space, trainer_module
from orchestrator.results import STUDY_FILE, atomic_write_text, load_trials, metric_column, summarise
from orchestrator.study import Study, parse_study
from search_spaces.base import SearchSpace
from trainers.options import build_options

EXPORT_DIR = "export"
SELECTION_FILE = "selection.json"
#: trainers whose trials leave weights a sub-network can be exported from.
EXPORTABLE = ("weight_sharing",)


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
    points = np.column_stack([o.sign * front[metric_column(o.metric)].to_numpy(dtype=float) for o in objectives.items])
    refs = np.array([o.sign * o.ref if o.ref is not None else np.inf for o in objectives.items])
    useful = np.flatnonzero((points < refs).all(axis=1))
    rows = useful if len(useful) else np.arange(len(points))
    return front.iloc[rows[knee_index(points[rows])]]


def saved_study(directory: Path) -> Study:
    path = directory / STUDY_FILE
    if not path.is_file():
        raise ResultsError(f"{str(directory)!r} is not a study directory: {STUDY_FILE} is missing")
    return parse_study(yaml.safe_load(path.read_text(encoding="utf-8")), check_plugins=False)


def row_config(row: pd.Series, space: SearchSpace) -> dict[str, Any]:
    """The trial's configuration from its `config.*` columns, as plain Python values."""
    def plain(v: Any) -> Any:
        v = v.item() if isinstance(v, np.generic) else v
        return int(v) if isinstance(v, float) and math.isfinite(v) and v.is_integer() else v

    return space.normalise({d.name: plain(row[f"config.{d.name}"]) for d in space.dims})


def export_knee(directory: str | Path, trial_id: str | None = None) -> Path:
    """Export the knee of the study in `directory` (or trial `trial_id`) to `<directory>/export/`."""
    from trainers.data import load_tokenizer
    from trainers.supernet.cache import SupernetConfig, checkpoint_dir, is_complete, load_supernet
    from trainers.supernet.export import export_compact, export_standard
    from search_spaces.sub_network import IllegalSubNetworkError

    directory = Path(directory).absolute()
    study = saved_study(directory)
    if study.trainer.name not in EXPORTABLE:
        raise ResultsError(f"trainer {study.trainer.name!r} keeps no weights to export; export works for "
                           f"{', '.join(EXPORTABLE)} studies")
    space = build_space(study)
    trials = load_trials(directory)
    if trial_id is None:
        row = knee_row(summarise(trials, study.objectives, study.constraints).front, study.objectives)
    else:
        rows = trials[trials["trial_id"] == trial_id]
        if len(rows) == 0:
            raise ResultsError(f"no trial {trial_id!r} in {directory}; see `lmnas status {directory}`")
        row = rows.iloc[0]
    config = row_config(row, space)
    options = SupernetConfig.of(build_options(trainer_module(study).OPTIONS, study.trainer.options))
    checkpoint = checkpoint_dir(options, space, study.seed)
    if not is_complete(checkpoint):
        raise ResultsError(f"the study's super-network {checkpoint} is gone; rerun `lmnas supernet train` on the study file")
    model = load_supernet(checkpoint).extract_sub_network(space.architecture(config))  # type: ignore[attr-defined]
    out = directory / EXPORT_DIR
    shutil.rmtree(out, ignore_errors=True)
    tokenizer = load_tokenizer(options.model)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one export: a shard-writing bar is noise in the run's log
    try:
        export_standard(model, out, tokenizer)
        form = "BertForSequenceClassification"
    except IllegalSubNetworkError:
        shutil.rmtree(out, ignore_errors=True)
        export_compact(model, out, tokenizer)
        form = "compact_bert (modeling_compact_bert.py, model.onnx)"
    metrics = {m: float(row[metric_column(m)]) for m in study.objectives.metrics}
    selection = {"trial_id": str(row["trial_id"]), "rule": "knee" if trial_id is None else "chosen", "format": form,
                 "config": config, "objectives": metrics, "supernet": str(checkpoint)}
    atomic_write_text(out / SELECTION_FILE, json.dumps(selection, indent=1) + "\n")
    return out
