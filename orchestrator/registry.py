"""Plug-ins by name, imported lazily: naming a plug-in costs nothing until it is used.

Add a plug-in by adding one line to the table of its kind. An unknown name fails listing the
valid ones.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import UnknownPluginError

SEARCH_SPACES: dict[str, str] = {
    "synthetic": "search_spaces.synthetic:SyntheticSpace",
    "small": "search_spaces.pruning:SmallSpace",
    "layer": "search_spaces.pruning:LayerSpace",
    "medium": "search_spaces.pruning:MediumSpace",
    "large": "search_spaces.pruning:LargeSpace",
    "autodistill": "search_spaces.autodistill:AutoDistillSpace",
    "elm": "search_spaces.elm:ElmSpace",
}

#: a trainer entry names a module with `train(ctx, report)`, `OPTIONS` (a frozen dataclass), `METRICS` and
#: optional hooks (`prepare`, `finish`, `export`; trainers/contract.py). The orchestrator calls them by role.
TRAINERS: dict[str, str] = {
    "synthetic": "trainers.synthetic",
    "flash_distill": "trainers.autodistill.trainer",
    "weight_sharing": "trainers.weight_sharing",
    "standard_nas": "trainers.standard_nas",
    "elm_subnet": "trainers.elm.trainer",
    "tabular": "trainers.tabular",
}

SEARCHERS: dict[str, str] = {
    "random": "orchestrator.searchers.random:RandomSearcher",
    "ax_mobo": "orchestrator.searchers.ax_mobo:AxMoboSearcher",
    "botorch_mobo": "orchestrator.searchers.botorch_mobo:BotorchMoboSearcher",
    "local": "orchestrator.searchers.local:LocalSearcher",
    "morea": "orchestrator.searchers.morea:MOREASearcher",
    "nsga2": "orchestrator.searchers.nsga2:NSGA2Searcher",
    "ga": "orchestrator.searchers.ga:GASearcher",
    "optuna_tpe": "orchestrator.searchers.optuna_samplers:OptunaTPESearcher",
    "optuna_gp": "orchestrator.searchers.optuna_samplers:OptunaGPSearcher",
    "optuna_nsga2": "orchestrator.searchers.optuna_samplers:OptunaNSGA2Searcher",
    "optuna_random": "orchestrator.searchers.optuna_samplers:OptunaRandomSearcher",
}

SCHEDULERS: dict[str, str] = {
    "fifo": "orchestrator.schedulers.fifo:FIFOScheduler",
    "moasha": "orchestrator.schedulers.moasha:MOASHAScheduler",
}


@dataclass(frozen=True)
class Registry:
    kind: str
    entries: dict[str, str]

    def names(self) -> list[str]:
        return sorted(self.entries)

    def check(self, name: str, field: str) -> None:
        if name not in self.entries:
            raise UnknownPluginError(field, f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")

    def load(self, name: str, field: str = "") -> Any:
        """The registered object (class or module) for `name`."""
        self.check(name, field or self.kind)
        module_name, _, attr = self.entries[name].partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr) if attr else module


search_spaces = Registry("search space", SEARCH_SPACES)
trainers = Registry("trainer", TRAINERS)
searchers = Registry("searcher", SEARCHERS)
schedulers = Registry("scheduler", SCHEDULERS)
