"""The one module that imports `ray.tune`: our searcher, scheduler and trainers as Ray Tune parts.

A Ray version change touches this file only. Everything else speaks our own interfaces
(`Searcher`, `Scheduler`, the trainer contract and `ResultsStore`).
"""
from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.result import AUTO_RESULT_KEYS
from ray.tune.schedulers import FIFOScheduler as TuneFIFOScheduler
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher as TuneSearcherBase
from ray.tune.trainable import wrap_function

from cluster.storage import join, study_location, upload_dir

from orchestrator.errors import StudyError
from orchestrator.plan import TrialPlan
from orchestrator.resume import SCHEDULER_STATE_FILE, SEARCHER_STATE_FILE, BackgroundSaver
from orchestrator.results import COMPLETED, FAILED, STOPPED, ResultsStore, atomic_write_text
from orchestrator.schedulers.base import Decision, Scheduler
from orchestrator.searchers.base import Finished, Searcher
from orchestrator.study import Resources
from orchestrator.trials import NetworkReuse, TrialTimeout, plain_metrics, reused_metrics, timeout_message, trial_config
from search_spaces.base import SearchSpace
from trainers.contract import TrialContext

#: keys Tune adds to every result; they are not the trainer's metrics.
_TUNE_KEYS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint", "timesteps_this_iter",
                                      "episodes_this_iter"}


def trainer_metrics(result: Mapping[str, Any] | None) -> dict[str, float | str]:
    """The trainer's own metrics (numbers, and text labels such as the hardware) from a Tune result."""
    return plain_metrics(result, _TUNE_KEYS)


def trial_arch(trial: Trial) -> dict[str, Any]:
    return dict(trial.config.get("arch", {}))


def study_trial_id(trial: Trial) -> str:
    """The study's own id for a Tune trial: stable across resumes (a rerun keeps its id)."""
    return str(trial.config.get("trial_id", trial.trial_id))


class TuneSearcher(TuneSearcherBase):
    """Our `Searcher` as a Tune search algorithm.

    It first hands out `replay` (trials of an interrupted run, under their old ids), then asks the
    searcher. Its JSON state is saved beside the results after every suggestion and every finished
    trial, so a study stopped at any moment resumes the same search.

    A suggestion that builds a network already evaluated to completion (`space.network_key`: e.g.
    SMALL's 0 layers with any heads) is not trained again: its trial reports the stored metrics at
    once (`reused_from` names the source), so the searcher still sees an observation for it.
    """

    def __init__(self, searcher: Searcher, state_dir: Path, replay: list[tuple[str, dict[str, Any]]] = (),
                 space: SearchSpace | None = None, store: ResultsStore | None = None) -> None:
        super().__init__(metric=None, mode=None)
        # Not named `searcher`: Tune treats any object with that attribute as a wrapper.
        self.inner = searcher
        self.state_dir = state_dir
        self.replay = list(replay)
        self.ids: dict[str, str] = {}
        self.saver = BackgroundSaver(searcher.state_dict, state_dir / SEARCHER_STATE_FILE)
        self.reuse = NetworkReuse(space, store) if space is not None and store is not None else None

    # Tune pickles its search algorithm into its experiment state, which lmnas never restores from
    # (studies resume from searcher_state.json): keep only the JSON state, so searchers that
    # hold threads or clients need not be picklable.
    def __getstate__(self) -> dict[str, Any]:
        return {"state_dir": self.state_dir}

    def evaluated(self, config: Mapping[str, Any]) -> tuple[str, dict[str, float | str]] | None:
        """(trial id, final metrics) of a completed trial that built the same network, if any."""
        return None if self.reuse is None else self.reuse.evaluated(config)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.replay:
            study_id, config = self.replay.pop(0)
            self.inner.add_pending(study_id, config)
        else:
            study_id = trial_id
            suggested = self.inner.suggest(study_id)
            if isinstance(suggested, Finished):
                return TuneSearcherBase.FINISHED
            if suggested is None:
                return None
            config = suggested
        self.ids[trial_id] = study_id
        return trial_config(study_id, config, self.evaluated(config))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(self.ids.get(trial_id, trial_id), trainer_metrics(result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(self.ids.get(trial_id, trial_id), None if error else trainer_metrics(result))
        self.saver.request()

    def close(self) -> None:
        """The final state, written from the driver once the trials are over."""
        self.saver.close()

    # Tune's own experiment checkpointing: the latest JSON snapshot (nothing unpickled on resume;
    # taking a fresh one here could block the driver for a whole suggestion).
    def save(self, checkpoint_path: str) -> None:
        if self.saver.latest is not None:
            atomic_write_text(Path(checkpoint_path), self.saver.latest)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.load_state_dict(json.loads(Path(checkpoint_path).read_text()))


class TuneScheduler(TuneFIFOScheduler):
    """Our `Scheduler` as a Tune trial scheduler.

    It remembers which trials it stopped early, and enforces the per-trial time limit: a trial
    that runs (or hangs) past it fails with `TrialTimeout` through Tune's own failure path, so
    retries and callbacks apply as for any other failure.
    """

    def __init__(self, scheduler: Scheduler, state_dir: Path, trial_timeout_s: float | None = None) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.state_dir = state_dir
        self.trial_timeout_s = trial_timeout_s
        self.stopped: set[str] = set()
        self.started: dict[str, float] = {}

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self.scheduler.on_trial_add(study_trial_id(trial), trial_arch(trial))

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        decision = self.scheduler.on_trial_result(study_trial_id(trial), trainer_metrics(result))
        if decision is Decision.STOP:
            self.stopped.add(study_trial_id(trial))
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self.scheduler.on_trial_complete(study_trial_id(trial), trainer_metrics(result))
        self.save_state()

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.scheduler.on_trial_complete(study_trial_id(trial), None)
        self.save_state()

    def save_state(self) -> None:
        atomic_write_text(self.state_dir / SCHEDULER_STATE_FILE, json.dumps(self.scheduler.state_dict()))

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        # Called on every step of Tune's control loop: the one place that sees hung trials.
        if self.trial_timeout_s is not None:
            now = time.monotonic()
            for trial in list(tune_controller.get_live_trials()):
                began = self.started.get(trial.trial_id)
                if trial.status == Trial.RUNNING and began is not None and now - began > self.trial_timeout_s:
                    self.started.pop(trial.trial_id)
                    timeout = TrialTimeout(f"TrialTimeout: {timeout_message(self.trial_timeout_s)}")
                    tune_controller._tune_controller._process_trial_failure(trial, exception=timeout)
        return super().choose_trial_to_run(tune_controller)


class HaltStopper(tune.Stopper):
    """Ends the whole run when the plan says the study must stop (e.g. a trial lacked an objective)."""

    def __init__(self, halted: Callable[[], bool]) -> None:
        self.halted = halted

    # Tune pickles its stopper into its experiment state, which lmnas never restores from.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.halted = lambda: False

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.halted()


class ResultsCallback(tune.Callback):
    """Feeds trial events into the results store (and an optional progress printer)."""

    def __init__(self, store: ResultsStore, scheduler: TuneScheduler, on_change: Callable[[], None] | None = None):
        self.store = store
        self.scheduler = scheduler
        self.on_change = on_change or (lambda: None)

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self.scheduler.started[trial.trial_id] = time.monotonic()
        self.store.trial_started(study_trial_id(trial), trial_arch(trial))
        self.on_change()

    def on_trial_recover(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self.scheduler.started.pop(trial.trial_id, None)

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict, **info: Any) -> None:
        self.store.trial_reported(study_trial_id(trial), trainer_metrics(result), host=result.get("hostname"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self.scheduler.started.pop(trial.trial_id, None)
        tid = study_trial_id(trial)
        status = STOPPED if tid in self.scheduler.stopped else COMPLETED
        self.store.trial_finished(tid, status, trainer_metrics(trial.last_result))
        self.on_change()

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self.scheduler.started.pop(trial.trial_id, None)
        self.store.trial_finished(
            study_trial_id(trial), FAILED, trainer_metrics(trial.last_result), error=error_text(trial)
        )
        self.on_change()


def error_text(trial: Trial) -> str:
    """The last line of the trial's traceback: the exception and its message."""
    # The local error file is written before this callback runs; get_error() reads the synced copy.
    local = Path(trial.error_file) if trial.error_file else None
    text = local.read_text(errors="replace") if local and local.exists() else (trial.get_error() or "")
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[-1] if lines else "the trial failed without an error message"


def make_trainable(
    trainer_module: str, space: SearchSpace, options: Mapping[str, Any], seed: int, directory: Path,
    publish_uri: str | None = None, study_name: str = "",
) -> Callable[[dict[str, Any]], None]:
    """A Tune function trainable that runs a trainer through the trainer contract.

    It lives in the installed package so Ray workers can import it; the trainer module is
    imported on the worker, by name. With a study URI (`publish_uri`) the trial's artefacts are
    written locally on the worker and copied to <URI>/trials/<trial id>/ when the trainer returns.
    """
    options = dict(options)

    def lmnas_trial(config: dict[str, Any]) -> None:
        module = importlib.import_module(trainer_module)
        trial_id = str(config.get("trial_id") or tune.get_context().get_trial_id())
        name_log_lines(actor_name(study_name, trial_id))
        if (reuse := config.get("reuse")) is not None:  # the same network was evaluated already
            tune.report(reused_metrics(reuse))
            return
        last: dict[str, float] = {}
        trial_dir = directory / "trials" / trial_id

        def report(metrics: Mapping[str, float], checkpoint: Path | None = None) -> None:
            last.clear()
            last.update(metrics)
            # A checkpoint goes to Tune's storage (a study URI reaches every node), so a rerun of the
            # trial on another node gets it back through tune.get_checkpoint().
            tune.report(dict(metrics), checkpoint=tune.Checkpoint.from_directory(str(checkpoint)) if checkpoint else None)

        ctx = TrialContext(trial_id, config["arch"], space, options, seed, trial_dir, restored(trial_dir))
        final = module.train(ctx, report)
        if publish_uri is not None and ctx.trial_dir is not None and ctx.trial_dir.is_dir():
            upload_dir(ctx.trial_dir, join(publish_uri, "trials", trial_id))
        if final and dict(final) != last:
            tune.report(dict(final))

    return lmnas_trial


def restored(trial_dir: Path) -> Path | None:
    """The checkpoint this trial last reported, when Tune runs it again after a failure (else None)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    return Path(checkpoint.to_directory(str(trial_dir / "restored")))


def actor_name(study_name: str, trial_id: str) -> str:
    """How a trial's actor is named in the dashboard and in the driver's log prefix."""
    return f"lmnas:{study_name}/{trial_id}"


def name_log_lines(name: str) -> None:
    """Prefix the worker's following output lines with `name` in the driver's log (and `ray job
    logs`). Ray names an actor's lines once, when it is created; a reused actor runs many trials, so
    each trial renames them with the line Ray's log monitor reads for that (ray_constants)."""
    import sys

    from ray._private.ray_constants import LOG_PREFIX_ACTOR_NAME

    for stream in (sys.stdout, sys.stderr):
        print(f"{LOG_PREFIX_ACTOR_NAME}{name}", file=stream, flush=True)


def trial_resources(resources: Resources) -> dict[str, float]:
    """A trial's Ray resources: CPUs and GPUs, fractions included (Ray packs fractional GPUs)."""
    return {"cpu": resources.cpu, "gpu": resources.gpu}


def named_trainable(trainable: Callable[[dict[str, Any]], None], study_name: str, resources: Resources) -> type:
    """The trainable with its resources, as a class named after the study: its actors show as
    `lmnas:<study>` in the Ray dashboard (Tune's own names are `ImplicitFunc` or
    `with_resources.<locals>.ResourceTrainable` for every study)."""
    # with_resources tags the function; wrap_function turns the tag into the class's resource request.
    base = wrap_function(tune.with_resources(trainable, trial_resources(resources)))
    name = f"lmnas:{study_name}"

    def __repr__(self: Any) -> str:  # the dashboard's and the log prefix's name of the actor
        return actor_name(study_name, self.config.get("trial_id", self.trial_id))

    return type(name, (base,), {"_name": name, "__qualname__": name, "__repr__": __repr__})


def check_placement(resources: Resources, joined: bool) -> None:
    """Before any trial (and any stage): a trial that no node can hold is one line, not a study that
    waits forever. On a joined cluster an autoscaler may still add such a node, so there it is a notice."""
    import sys

    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= resources.cpu and r.get("GPU", 0) >= resources.gpu for r in nodes):
        return
    largest = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    asked = f"a trial asks for {resources.cpu:g} CPUs and {resources.gpu:g} GPUs"
    has = f"{largest.get('CPU', 0):g} CPUs and {largest.get('GPU', 0):g} GPUs"
    if not joined:
        raise StudyError("resources", f"{asked}, but this machine has {has}; lower resources.cpu / resources.gpu, "
                                      "or run on a cluster that has such a node with --address")
    print(f"lmnas: {asked}; no node of the cluster has that now (the largest: {has}); the trials wait until "
          "an autoscaler adds one (Ctrl-C stops the study)", file=sys.stderr, flush=True)


def run_tune(plan: TrialPlan, joined: bool = False) -> None:
    """Run the trials of one study with Ray Tune; results land in `plan.store` as they arrive.

    Trials share worker processes on an embedded Ray (no start-up per trial) and get one each on a
    cluster (`joined`), where Ray names an actor once, after its trial: the dashboard then lists every
    trial under its own id. `budget.reuse_actors` overrides either."""
    study = plan.study
    location = study_location(study.storage, study.name)
    trainable = make_trainable(plan.trainer_module, plan.space, plan.options, study.seed, plan.directory,
                               publish_uri=location.uri, study_name=study.name)
    tune_searcher = TuneSearcher(plan.searcher, plan.directory, plan.replay, plan.space, plan.store)
    tune_scheduler = TuneScheduler(plan.scheduler, plan.directory, study.budget.trial_timeout_s)
    tuner = tune.Tuner(
        named_trainable(trainable, study.name, study.resources),
        tune_config=tune.TuneConfig(
            search_alg=tune_searcher,
            scheduler=tune_scheduler,
            num_samples=plan.num_trials,
            max_concurrent_trials=study.budget.max_concurrent,
            time_budget_s=study.budget.time_budget_s,
            reuse_actors=study.budget.reuse_actors if study.budget.reuse_actors is not None else not joined,
            trial_name_creator=lambda trial: f"{study.name}/{study_trial_id(trial)}",
            trial_dirname_creator=lambda trial: f"{study.name}_{study_trial_id(trial)}",
        ),
        run_config=tune.RunConfig(
            name=f"tune-{plan.run_index}",
            # A study URI is Tune's storage too (pyarrow.fs): its experiment state reaches every node.
            storage_path=location.uri or str(plan.directory),
            # JsonLoggerCallback: each trial's params.json / result.json in Tune's own layout, so
            # Tune's ExperimentAnalysis and TensorBoard-style tools read a study (and Tune's end-of-run
            # analysis finds them instead of warning once per trial).
            callbacks=[ResultsCallback(plan.store, tune_scheduler, plan.on_change), JsonLoggerCallback()],
            failure_config=tune.FailureConfig(max_failures=study.budget.max_retries),
            # Only the latest checkpoint of a trial is ever restored from.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            stop=HaltStopper(plan.halted) if plan.halted is not None else None,
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    finally:
        tune_searcher.close()
        tune_scheduler.save_state()
        plan.store.flush()
