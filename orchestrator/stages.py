"""Stages a study runs once around its trials: for `weight_sharing`, the super-network fine-tuning
before and the export of the knee model after; for `flash_distill`, the regular distillation of
students from the front after (orchestrator/regular_stage.py); for `elm_subnet`, the super-network's
pre-training and fine-tuning before (it also settles the space the trials search, `Prepared`) and
the retraining of the best candidate after (orchestrator/elm_stage.py).

structural-pruning-via-nas.txt §3.2: weight-sharing NAS first fine-tunes the super-network, then
only evaluates sub-networks. The stage runs as a Ray task that asks for a GPU when the cluster has
one, so it lands on a GPU worker; it prints the training's progress lines here as they come, and
is skipped when the checkpoint of this config is already cached (a rerun or a resumed study).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from orchestrator.errors import LmnasError
from orchestrator.plugins import trainer_module
from orchestrator.study import Study
from search_spaces.base import SearchSpace
from trainers.options import build_options
from trainers.report import TrainerError


class StageError(LmnasError):
    """A stage before the trials failed for a reason the user can fix (data, model, options)."""


def supernet_stage(study: Study, space: SearchSpace, stream: TextIO = sys.stderr) -> Path:
    """The study's trained super-network checkpoint, trained now (on a GPU worker if any) when absent."""
    from trainers.supernet.cache import SupernetConfig, checkpoint_dir, is_complete

    config = SupernetConfig.of(build_options(trainer_module(study).OPTIONS, study.trainer.options))
    directory = checkpoint_dir(config, space, study.seed)
    if is_complete(directory):
        print(f"[{study.name}] supernet: using the cached checkpoint {directory}", file=stream, flush=True)
        return directory
    return Path(run_remote(train_task, (config, space, study.seed), lambda line: print(f"[{study.name}] {line}", file=stream, flush=True)))


def train_task(config: Any, space: SearchSpace, seed: int, log: Callable[[str], None]) -> str:
    """Runs on the worker: as many torch threads as CPUs the task holds, then the training."""
    import ray
    import torch

    from trainers.supernet.train import ensure_supernet

    cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))
    torch.set_num_threads(max(cpus, 1))
    return str(ensure_supernet(config, space, seed, log))


def run_remote(fn: Callable[..., Any], args: tuple[Any, ...], log: Callable[[str], None],
               what: str = "the super-network stage") -> Any:
    """`fn(*args, log)` as one Ray task: a whole GPU when the cluster has one, else the CPUs of the
    largest node; `log` lines reach this process through a queue while it runs."""
    import ray
    from ray.util.queue import Queue

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    gpus = 1 if any(r.get("GPU", 0) >= 1 for r in nodes) else 0
    cpus = 1 if gpus else max(int(r.get("CPU", 1)) for r in nodes)
    queue = Queue(actor_options={"num_cpus": 0})

    def task(*task_args: Any) -> Any:
        return fn(*task_args, queue.put)

    ref = ray.remote(num_gpus=gpus, num_cpus=cpus, max_retries=0)(task).remote(*args)
    try:
        while True:
            done, _ = ray.wait([ref], timeout=0.5)
            for line in queue.get_nowait_batch(queue.qsize()):
                log(line)
            if done:
                return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        # A user error (missing data, a space that does not fit the model) is one line; a bug keeps its traceback.
        if isinstance(e.cause, (TrainerError, ValueError)):
            raise StageError(f"{what} failed: {one_line(e.cause)}") from None
        raise
    finally:
        queue.shutdown()


def one_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


def export_stage(study: Study, space: SearchSpace, directory: Path, stream: TextIO = sys.stderr) -> Path | None:
    """Export the knee of the front to `<directory>/export/` (nothing when no trial finished)."""
    from orchestrator.errors import ResultsError
    from orchestrator.export import export_knee

    try:
        out = export_knee(directory)
    except ResultsError as e:
        print(f"[{study.name}] export skipped: {e}", file=stream, flush=True)
        return None
    print(f"[{study.name}] exported the knee of the front to {out}", file=stream, flush=True)
    return out


def regular_distillation_stage(study: Study, space: SearchSpace, directory: Path, stream: TextIO = sys.stderr) -> Any:
    """Regular distillation of students from the front of a flash_distill study (orchestrator/regular_stage.py)."""
    from orchestrator.errors import ResultsError
    from orchestrator.regular_stage import regular_stage

    try:
        return regular_stage(study, space, directory, stream)
    except ResultsError as e:  # no finished trial (an interrupted study): nothing to distil yet
        print(f"[{study.name}] regular distillation skipped: {e}", file=stream, flush=True)
        return None


def elm_before(study: Study, space: SearchSpace, stream: TextIO = sys.stderr) -> Prepared:
    """Pre-train and fine-tune the ELM super-network; its space and checkpoint for the trials (orchestrator/elm_stage.py)."""
    from orchestrator.elm_stage import elm_before as stage

    return stage(study, space, stream)


def elm_after(study: Study, space: SearchSpace, directory: Path, stream: TextIO = sys.stderr) -> Any:
    """Head search, retraining, evaluation and export of the best ELM candidate (orchestrator/elm_stage.py)."""
    from orchestrator.elm_stage import elm_after as stage

    return stage(study, space, directory, stream)


#: trainer name -> what runs before its trials, and after them.
BEFORE: dict[str, Callable[[Study, SearchSpace, TextIO], Any]] = {"weight_sharing": supernet_stage,
                                                                   "elm_subnet": elm_before}
AFTER: dict[str, Callable[[Study, SearchSpace, Path, TextIO], Any]] = {
    "weight_sharing": export_stage,
    "flash_distill": regular_distillation_stage,
    "elm_subnet": elm_after,
}


@dataclass(frozen=True)
class Prepared:
    """What the trials run with once the stage before them is done. A stage may settle them: the
    `elm` space takes its FFN widths from the super-network the stage trained, and the trainer its
    checkpoint path. The study file keeps what the user wrote, so a resumed study reruns the stage
    (a cache hit) and gets the same space back."""

    space: SearchSpace
    trainer_options: Mapping[str, Any]
    #: what the stage trained (`lmnas supernet train` prints it).
    checkpoint: str | None = None


def before_trials(study: Study, space: SearchSpace, stream: TextIO = sys.stderr) -> Prepared:
    """Run the stage the study's trainer needs before its trials (none for most trainers)."""
    result = BEFORE[study.trainer.name](study, space, stream) if study.trainer.name in BEFORE else None
    return result if isinstance(result, Prepared) else Prepared(space, study.trainer.options)


def after_trials(study: Study, space: SearchSpace, directory: Path, stream: TextIO = sys.stderr) -> None:
    """Run the stage that follows the trials (the knee export of weight-sharing studies)."""
    if study.trainer.name in AFTER:
        AFTER[study.trainer.name](study, space, directory, stream)
