"""The one module that imports `ray.tune`: our searcher, scheduler and trainers as Ray Tune parts.

A Ray version change touches this file only. Everything else speaks our own interfaces
(`Searcher`, `Scheduler`, the trainer contract and `ResultsStore`).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.result import AUTO_RESULT_KEYS
from ray.tune.schedulers import FIFOScheduler as TuneFIFOScheduler
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher as TuneSearcherBase

from orchestrator.results import COMPLETED, FAILED, STOPPED, ResultsStore, atomic_write_text
from orchestrator.schedulers.base import Decision, Scheduler
from orchestrator.searchers.base import Finished, Searcher
from search_spaces.base import SearchSpace
from trainers.report import TrialContext

#: keys Tune adds to every result; they are not the trainer's metrics.
_TUNE_KEYS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint", "timesteps_this_iter",
                                      "episodes_this_iter"}
SEARCHER_STATE_FILE = "searcher_state.json"
SCHEDULER_STATE_FILE = "scheduler_state.json"


def trainer_metrics(result: Mapping[str, Any] | None) -> dict[str, float | str]:
    """The trainer's own metrics (numbers, and text labels such as the hardware) from a Tune result."""
    if not result:
        return {}
    return {
        k: v if isinstance(v, str) else float(v)
        for k, v in result.items()
        if k not in _TUNE_KEYS and isinstance(v, (int, float, str)) and not isinstance(v, bool)
    }


def trial_arch(trial: Trial) -> dict[str, Any]:
    return dict(trial.config.get("arch", {}))


class TuneSearcher(TuneSearcherBase):
    """Our `Searcher` as a Tune search algorithm. Saves its state beside the results after every
    finished trial, so a stopped study resumes the same search."""

    def __init__(self, searcher: Searcher, state_dir: Path) -> None:
        super().__init__(metric=None, mode=None)
        # Not named `searcher`: Tune treats any object with that attribute as a wrapper.
        self.inner = searcher
        self.state_dir = state_dir

    # Tune pickles its search algorithm into its experiment state, which lmnas never restores from
    # (studies resume from searcher_state.json): keep only the JSON state, so searchers that
    # hold threads or clients need not be picklable.
    def __getstate__(self) -> dict[str, Any]:
        return {"state_dir": self.state_dir, "state": json.dumps(self.inner.state_dict())}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        config = self.inner.suggest(trial_id)
        if isinstance(config, Finished):
            return TuneSearcherBase.FINISHED
        return None if config is None else {"arch": config}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(trial_id, trainer_metrics(result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(trial_id, None if error else trainer_metrics(result))
        self.save_state()

    def save_state(self) -> None:
        atomic_write_text(self.state_dir / SEARCHER_STATE_FILE, json.dumps(self.inner.state_dict()))

    # Tune's own experiment checkpointing: keep ours as JSON too (nothing unpickled on resume).
    def save(self, checkpoint_path: str) -> None:
        atomic_write_text(Path(checkpoint_path), json.dumps(self.inner.state_dict()))

    def restore(self, checkpoint_path: str) -> None:
        self.inner.load_state_dict(json.loads(Path(checkpoint_path).read_text()))


class TuneScheduler(TuneFIFOScheduler):
    """Our `Scheduler` as a Tune trial scheduler; remembers which trials it stopped early."""

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.stopped: set[str] = set()

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self.scheduler.on_trial_add(trial.trial_id, trial_arch(trial))

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        decision = self.scheduler.on_trial_result(trial.trial_id, trainer_metrics(result))
        if decision is Decision.STOP:
            self.stopped.add(trial.trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self.scheduler.on_trial_complete(trial.trial_id, trainer_metrics(result))

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.scheduler.on_trial_complete(trial.trial_id, None)


class ResultsCallback(tune.Callback):
    """Feeds trial events into the results store (and an optional progress printer)."""

    def __init__(self, store: ResultsStore, scheduler: TuneScheduler, on_change: Callable[[], None] | None = None):
        self.store = store
        self.scheduler = scheduler
        self.on_change = on_change or (lambda: None)

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self.store.trial_started(trial.trial_id, trial_arch(trial))
        self.on_change()

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict, **info: Any) -> None:
        self.store.trial_reported(trial.trial_id, trainer_metrics(result), host=result.get("hostname"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        status = STOPPED if trial.trial_id in self.scheduler.stopped else COMPLETED
        self.store.trial_finished(trial.trial_id, status, trainer_metrics(trial.last_result))
        self.on_change()

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: Any) -> None:
        self.store.trial_finished(trial.trial_id, FAILED, trainer_metrics(trial.last_result), error=error_text(trial))
        self.on_change()


def error_text(trial: Trial) -> str:
    """The last line of the trial's traceback: the exception and its message."""
    # The local error file is written before this callback runs; get_error() reads the synced copy.
    local = Path(trial.error_file) if trial.error_file else None
    text = local.read_text(errors="replace") if local and local.exists() else (trial.get_error() or "")
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[-1] if lines else "the trial failed without an error message"


def make_trainable(
    trainer_module: str, space: SearchSpace, options: Mapping[str, Any], seed: int, directory: Path
) -> Callable[[dict[str, Any]], None]:
    """A Tune function trainable that runs a trainer through the trainer contract.

    It lives in the installed package so Ray workers can import it; the trainer module is
    imported on the worker, by name.
    """
    options = dict(options)

    def lmnas_trial(config: dict[str, Any]) -> None:
        module = importlib.import_module(trainer_module)
        trial_id = tune.get_context().get_trial_id()
        last: dict[str, float] = {}

        def report(metrics: Mapping[str, float]) -> None:
            last.clear()
            last.update(metrics)
            tune.report(dict(metrics))

        ctx = TrialContext(trial_id, config["arch"], space, options, seed, directory / "trials" / trial_id)
        final = module.train(ctx, report)
        if final and dict(final) != last:
            tune.report(dict(final))

    return lmnas_trial


def run_tune(
    *,
    name: str,
    directory: Path,
    trainer_module: str,
    space: SearchSpace,
    trainer_options: Mapping[str, Any],
    searcher: Searcher,
    scheduler: Scheduler,
    store: ResultsStore,
    num_trials: int,
    max_concurrent: int,
    time_budget_s: float | None,
    max_retries: int,
    cpu: float,
    gpu: float,
    seed: int,
    on_change: Callable[[], None] | None = None,
) -> None:
    """Run the trials of one study with Ray Tune; results land in `store` as they arrive."""
    trainable = make_trainable(trainer_module, space, trainer_options, seed, directory)
    tune_searcher = TuneSearcher(searcher, directory)
    tune_scheduler = TuneScheduler(scheduler)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpu, "gpu": gpu}),
        tune_config=tune.TuneConfig(
            search_alg=tune_searcher,
            scheduler=tune_scheduler,
            num_samples=num_trials,
            max_concurrent_trials=max_concurrent,
            time_budget_s=time_budget_s,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(directory),
            callbacks=[ResultsCallback(store, tune_scheduler, on_change)],
            failure_config=tune.FailureConfig(max_failures=max_retries),
            verbose=0,
        ),
    )
    tuner.fit()
    tune_searcher.save_state()
    store.flush()
