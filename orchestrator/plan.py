"""What one invocation of the trial loop needs: the study, its built plug-ins and the work left."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from orchestrator.results import ResultsStore
from orchestrator.schedulers.base import Scheduler
from orchestrator.searchers.base import Searcher
from orchestrator.study import Study
from search_spaces.base import SearchSpace


@dataclass
class TrialPlan:
    study: Study
    directory: Path
    #: import path of the trainer module (from the registry), imported on the workers.
    trainer_module: str
    space: SearchSpace
    searcher: Searcher
    scheduler: Scheduler
    store: ResultsStore
    #: trials still to run in this invocation (replays included).
    num_trials: int
    #: (trial id, configuration) of trials an earlier run left unfinished; they run first.
    replay: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: 0 for the first run of a study, then 1, 2, ... for each resume (names Tune's directory).
    run_index: int = 0
    on_change: Callable[[], None] | None = None
    #: polled while trials run: True ends the study early (running trials are stopped).
    halted: Callable[[], bool] | None = None
    #: the trainer options the trials get when the stage before them settled some (a checkpoint
    #: path); None: the study's own.
    trainer_options: Mapping[str, Any] | None = None

    @property
    def options(self) -> Mapping[str, Any]:
        return self.study.trainer.options if self.trainer_options is None else self.trainer_options
