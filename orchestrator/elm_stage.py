"""The stages of an ELM study around its trials (ELM Algorithm 2 as one study).

Before: the super-network is pre-trained on the corpus and fine-tuned on the task as one Ray task (a
GPU when the cluster has one), or found in the cache (`trainers/elm/stage.py`); the trials then search
the `elm` space read from that checkpoint (its FFN widths are the grown ones) under the study's cap.

After: the best finished candidate by accuracy (the highest-accuracy point is always on the front;
every candidate meets the cap) goes through head search, retraining, evaluation on the shipped tasks
and export (`trainers/elm/final.py`), again as one Ray task; the final numbers are written to
`<study dir>/elm_final.csv` and `.parquet`, the model to `<study dir>/export/`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, TextIO

import pandas as pd

from orchestrator.results import atomic_write_text
from orchestrator.stages import Prepared, StageError, run_remote
from orchestrator.study import Study
from search_spaces.base import SearchSpace
from search_spaces.elm import ElmSpace
from trainers.elm.options import ElmSubnetOptions
from trainers.options import build_options

FINAL_TABLE = "elm_final"


def printer(study: Study, stream: TextIO) -> Callable[[str], None]:
    return lambda line: print(f"[{study.name}] {line}", file=stream, flush=True)


def elm_space(space: SearchSpace) -> ElmSpace:
    if not isinstance(space, ElmSpace):
        raise StageError(f"the elm_subnet trainer needs the 'elm' search space, got {space.name!r}")
    return space


def searched_space(space: ElmSpace, checkpoint: str) -> ElmSpace:
    """The study's space with the widths of the trained super-network (its cap and head counts kept)."""
    options: dict[str, Any] = {"checkpoint": checkpoint, "head_counts": list(space.head_counts)}
    if space.max_params is not None:
        options |= {"max_params": space.max_params, "cap_metric": space.cap_metric}
    try:
        return ElmSpace(**options)
    except ValueError as e:
        raise StageError(f"the trained super-network does not fit the study's space: {e}") from None


def elm_before(study: Study, space: SearchSpace, stream: TextIO = sys.stderr) -> Prepared:
    """Train (or find) the super-network; the trials search its space with its checkpoint."""
    space = elm_space(space)
    opts = build_options(ElmSubnetOptions, study.trainer.options)
    log = printer(study, stream)
    checkpoint = opts.checkpoint
    if not checkpoint:
        checkpoint = str(run_remote(supernet_task, (opts, space, study.seed), log, "the ELM super-network stage"))
    else:
        log(f"elm: searching the given super-network {checkpoint}")
    return Prepared(searched_space(space, checkpoint), {**study.trainer.options, "checkpoint": checkpoint}, checkpoint)


def supernet_task(opts: ElmSubnetOptions, space: ElmSpace, seed: int, log: Callable[[str], None]) -> str:
    from trainers.elm.stage import ensure_supernet

    threads_for_task()
    return str(ensure_supernet(opts, space, seed, log))


def threads_for_task() -> None:
    """As many torch threads as CPUs the Ray task holds."""
    import ray
    import torch

    torch.set_num_threads(max(int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)), 1))


def best_candidate(study: Study, directory: Path, space: ElmSpace) -> tuple[str, dict[str, Any]] | None:
    """(trial id, configuration) of the finished trial with the highest accuracy under the cap (fewer
    parameters break ties)."""
    from orchestrator.results import COMPLETED, ResultsStore

    store = ResultsStore(directory, study.objectives, study.constraints)
    done = [(tid, rec) for tid, rec in store.trials.items()
            if rec.status == COMPLETED and "accuracy" in rec.metrics and space.is_valid(rec.config)]
    if not done:
        return None
    tid, rec = max(done, key=lambda item: (float(item[1].metrics["accuracy"]), -float(item[1].metrics["params"])))
    return tid, dict(rec.config)


def elm_after(study: Study, space: SearchSpace, directory: Path, stream: TextIO = sys.stderr) -> Path | None:
    """Head search, retraining, evaluation and export of the best candidate; returns the results table."""
    space = elm_space(space)
    log = printer(study, stream)
    best = best_candidate(study, directory, space)
    if best is None or space.checkpoint is None:
        log("elm: no finished trial with an accuracy; nothing to retrain")
        return None
    tid, config = best
    opts = build_options(ElmSubnetOptions, {**study.trainer.options, "checkpoint": space.checkpoint})
    log(f"elm: retraining trial {tid}, the most accurate candidate")
    rows = run_remote(final_task, (opts, space.checkpoint, space.architecture(config), str(directory / "export"),
                                   study.seed), log, "the ELM retraining stage")
    frame = pd.DataFrame([{"trial_id": tid, **row} for row in rows])
    frame.to_parquet(directory / f"{FINAL_TABLE}.parquet", index=False)
    atomic_write_text(directory / f"{FINAL_TABLE}.csv", frame.to_csv(index=False))
    log(f"elm: final numbers in {directory / FINAL_TABLE}.csv")
    return directory / f"{FINAL_TABLE}.csv"


def final_task(opts: ElmSubnetOptions, checkpoint: str, arch: Any, out_dir: str, seed: int,
               log: Callable[[str], None]) -> list[dict[str, Any]]:
    from trainers.elm.final import retrain_and_evaluate

    threads_for_task()
    return retrain_and_evaluate(opts, checkpoint, arch, out_dir, seed, log)
