"""The stage after `flash_distill` trials: regular distillation of students picked from the front.

autodistill.txt §3.1 (Fig. 1): "the search engine returns the models on the Pareto curve and they
are passed to Regular Distillation for more thorough pre-training". A front can hold more members
than are worth distilling for long, so `regular_students` of them are taken in a well-spread order
(`nds.epsilon_net_order`: the best on the first objective, then each time the member farthest from
those taken), or the trials named on `lmnas distill --trials`. Each student is distilled as one Ray
task (a GPU when the cluster has one; `trainers/autodistill/regular.py`), then fine-tuned, tested
and exported under `<study>/distilled/<trial>/`; one row per student and task is appended to
`<study>/regular_distillation.parquet` as soon as the student is done.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import numpy as np
import pandas as pd

from orchestrator.errors import ResultsError
from orchestrator.export import row_config
from orchestrator.nds import epsilon_net_order
from orchestrator.plugins import trainer_module
from orchestrator.results import atomic_write_parquet, load_trials, metric_column, summarise
from orchestrator.study import Study
from search_spaces.base import SearchSpace
from trainers.options import build_options

REGULAR_FILE = "regular_distillation.parquet"
DISTILLED_DIR = "distilled"
#: trial metrics copied next to the regular-distillation results (as flash_<name> where both exist).
TRIAL_METRICS = ("params", "params_non_embedding", "latency_ms", "agreement", "mlm_accuracy", "accuracy")


def select_students(study: Study, trials: pd.DataFrame, count: int, trial_ids: Sequence[str] = ()) -> pd.DataFrame:
    """The named trials, or `count` front members in a well-spread order."""
    if trial_ids:
        missing = sorted(set(trial_ids) - set(trials["trial_id"].astype(str)))
        if missing:
            raise ResultsError(f"no trial {missing[0]!r} in this study; see `lmnas status` for the trial ids")
        return trials[trials["trial_id"].astype(str).isin(trial_ids)]
    front = summarise(trials, study.objectives, study.constraints).front
    if len(front) == 0:
        raise ResultsError("the study has no finished trial with every objective; there is no front to distil")
    points = np.column_stack([o.sign * front[metric_column(o.metric)].to_numpy(dtype=float)
                              for o in study.objectives.items])  # (n, m) minimise form
    chosen = front.iloc[epsilon_net_order(points)[:count]]["trial_id"]
    return trials[trials["trial_id"].isin(chosen)]


def regular_stage(study: Study, space: SearchSpace, directory: Path, stream: TextIO = sys.stderr,
                  trial_ids: Sequence[str] = ()) -> Path | None:
    """Distil the selected students; returns the results table (None when the stage is off)."""
    from orchestrator.stages import run_remote
    from trainers.autodistill.regular import RegularOptions

    say: Callable[[str], None] = lambda line: print(f"[{study.name}] {line}", file=stream, flush=True)  # noqa: E731
    opts = build_options(trainer_module(study).OPTIONS, study.trainer.options)
    count = RegularOptions.of(opts).students
    if not trial_ids and count == 0:
        say("regular distillation off (regular_students: 0)")
        return None
    directory = Path(directory)
    trials = load_trials(directory)
    chosen = select_students(study, trials, count, trial_ids)
    path = directory / REGULAR_FILE
    for _, row in chosen.iterrows():
        trial_id = str(row["trial_id"])
        config = row_config(row, space)
        say(f"regular distillation of {trial_id} {config}")
        out = directory / DISTILLED_DIR / trial_id
        results = run_remote(distill_task, (space.arch(config), opts, study.seed, str(out)),  # type: ignore[attr-defined]
                             lambda line: say(f"{trial_id} {line}"), what="regular distillation")
        trial = {f"flash_{m}" if m in results[0] else m: row[metric_column(m)]
                 for m in TRIAL_METRICS if metric_column(m) in row.index}
        frame = pd.DataFrame([{"trial_id": trial_id, **{f"config.{k}": v for k, v in config.items()}, **trial, **r}
                              for r in results])
        append_results(path, frame)
    say(f"regular distillation results: {path}")
    return path


def distill_task(arch: Any, opts: Any, seed: int, out_dir: str, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Runs on the worker: as many torch threads as CPUs the task holds, then the distillation."""
    import ray
    import torch

    from trainers.autodistill.regular import regular_distill

    cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
    torch.set_num_threads(max(cpus, 1))
    return regular_distill(arch, opts, seed, out_dir, log)


def append_results(path: Path, frame: pd.DataFrame) -> None:
    """Add `frame` to the table at `path`, replacing earlier rows of the same trial and task."""
    if path.is_file():
        old = pd.read_parquet(path)
        keep = ~old.set_index(["trial_id", "task"]).index.isin(frame.set_index(["trial_id", "task"]).index)
        frame = pd.concat([old[keep], frame], ignore_index=True)
    atomic_write_parquet(path, frame)
