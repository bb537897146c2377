"""Study files: YAML loaded with `safe_load` into frozen, typed, validated specs.

Every problem in a study file is reported as a `StudyError` naming the field (dotted path)
and what is allowed: unknown keys, wrong types, out-of-range values, unknown plug-ins and
options the plug-in itself refuses.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from orchestrator.errors import ResultsError, StudyError
from orchestrator.objectives import Constraint, Objective, Objectives

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_METRIC = re.compile(r"^[A-Za-z_][\w./-]{0,127}$")


@dataclass(frozen=True)
class PluginSpec:
    """A plug-in chosen by name, with its keyword options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    num_trials: int = 20
    max_concurrent: int = 1
    #: wall-clock limit for the whole study, in seconds (None: no limit).
    time_budget_s: float | None = None
    #: wall-clock limit per trial, in seconds (None: no limit); a trial past it fails.
    trial_timeout_s: float | None = None
    #: how often a failed trial is retried before it is recorded as failed.
    max_retries: int = 0
    #: run many trials in one worker process (no start-up per trial) or one process per trial (the
    #: Ray dashboard then lists every trial under its own id); None: reuse on an embedded Ray, one
    #: per trial on a cluster.
    reuse_actors: bool | None = None


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class Study:
    name: str
    search_space: PluginSpec
    trainer: PluginSpec
    objectives: Objectives
    storage: str = "runs"
    constraints: tuple[Constraint, ...] = ()
    searcher: PluginSpec = PluginSpec("random")
    scheduler: PluginSpec = PluginSpec("fifo")
    budget: Budget = Budget()
    resources: Resources = Resources()
    seed: int = 0

    @property
    def directory(self) -> Path:
        """Where this process keeps the study's files: <storage>/<name>, or the local mirror of a
        storage URI (cluster/storage.py)."""
        from cluster.storage import study_location

        return study_location(self.storage, self.name).local

    def to_dict(self) -> dict[str, Any]:
        """The resolved study as plain data; `parse_study(study.to_dict())` gives it back."""
        return {
            "name": self.name,
            "storage": self.storage,
            "seed": self.seed,
            "search_space": _plugin_dict(self.search_space),
            "trainer": {"kind": self.trainer.name, "options": dict(self.trainer.options)},
            "objectives": [
                {"metric": o.metric, "mode": o.mode, **({"ref": o.ref} if o.ref is not None else {})}
                for o in self.objectives.items
            ],
            "constraints": [str(c) for c in self.constraints],
            "searcher": _plugin_dict(self.searcher),
            "scheduler": _plugin_dict(self.scheduler),
            "budget": dataclasses.asdict(self.budget),
            "resources": dataclasses.asdict(self.resources),
        }


def _plugin_dict(p: PluginSpec) -> dict[str, Any]:
    return {"name": p.name, "options": dict(p.options)}


# ---- reading ---------------------------------------------------------------------------------------
def load_study(path: str | Path, check_plugins: bool = True) -> Study:
    """Read, parse and validate a study file."""
    p = Path(path)
    if not p.is_file():
        raise StudyError("", f"no study file at {str(p)!r}; pass the path of a YAML study file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StudyError("", f"{p.name} is not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    except UnicodeDecodeError:
        raise StudyError("", f"{p.name} is not UTF-8 text") from None
    return parse_study(data, check_plugins=check_plugins)


def load_saved_study(directory: str | Path) -> Study:
    """The resolved study saved in a study directory (plug-ins are not rechecked)."""
    from orchestrator.results import STUDY_FILE

    path = Path(directory) / STUDY_FILE
    if not path.exists():
        raise ResultsError(f"{str(directory)!r} is not a study directory: {STUDY_FILE} is missing")
    return parse_study(yaml.safe_load(path.read_text(encoding="utf-8")), check_plugins=False)


def parse_study(data: Any, check_plugins: bool = True) -> Study:
    """Validate plain data (as from YAML) into a Study."""
    d = _mapping(data, "", required=("name", "search_space", "trainer", "objectives"),
                 allowed=("name", "storage", "seed", "search_space", "trainer", "objectives", "constraints",
                          "searcher", "scheduler", "budget", "resources"))
    name = _str(d["name"], "name")
    if not _NAME.match(name):
        raise StudyError("name", f"{name!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    storage = _str(d.get("storage", "runs"), "storage")
    if not storage.strip():
        raise StudyError("storage", "must be a non-empty directory path or a URI such as s3://bucket/studies")
    from cluster.storage import check_storage

    try:
        check_storage(storage)
    except ValueError as e:
        raise StudyError("storage", str(e)) from None
    study = Study(
        name=name,
        storage=storage,
        seed=_int(d.get("seed", 0), "seed", low=0, high=2**31 - 1),
        search_space=_plugin(d["search_space"], "search_space", "name"),
        trainer=_plugin(d["trainer"], "trainer", "kind"),
        objectives=_objectives(d["objectives"]),
        constraints=_constraints(d.get("constraints", [])),
        searcher=_plugin(d.get("searcher", {"name": "random"}), "searcher", "name"),
        scheduler=_plugin(d.get("scheduler", {"name": "fifo"}), "scheduler", "name"),
        budget=_budget(d.get("budget", {})),
        resources=_resources(d.get("resources", {})),
    )
    if check_plugins:
        from orchestrator.plugins import check_plugins as check

        check(study)
    return study


def _objectives(data: Any) -> Objectives:
    if not isinstance(data, list) or not data:
        raise StudyError("objectives", "must be a non-empty list of {metric, mode, ref}")
    items = []
    for i, raw in enumerate(data):
        where = f"objectives[{i}]"
        o = _mapping(raw, where, required=("metric",), allowed=("metric", "mode", "ref"))
        metric = _str(o["metric"], f"{where}.metric")
        if not _METRIC.match(metric):
            raise StudyError(f"{where}.metric", f"{metric!r} is not a metric name (letters, digits, '_', '.', '/', '-')")
        mode = o.get("mode", "min")
        if mode not in ("min", "max"):
            raise StudyError(f"{where}.mode", f"must be 'min' or 'max', got {mode!r}")
        ref = None if o.get("ref") is None else _float(o["ref"], f"{where}.ref")
        items.append(Objective(metric, mode, ref))
    names = [o.metric for o in items]
    if len(set(names)) != len(names):
        raise StudyError("objectives", f"each metric may appear once, got {names}")
    return Objectives(tuple(items))


def _constraints(data: Any) -> tuple[Constraint, ...]:
    if not isinstance(data, list):
        raise StudyError("constraints", "must be a list such as ['params <= 5e6']")
    out = []
    for i, raw in enumerate(data):
        if not isinstance(raw, str):
            raise StudyError(f"constraints[{i}]", f"must be a string such as 'params <= 5e6', got {raw!r}")
        try:
            out.append(Constraint.parse(raw))
        except ValueError as e:
            raise StudyError(f"constraints[{i}]", str(e)) from None
    return tuple(out)


def _plugin(data: Any, where: str, key: str) -> PluginSpec:
    if isinstance(data, str):
        data = {key: data}
    d = _mapping(data, where, required=(key,), allowed=(key, "options"))
    options = d.get("options") or {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise StudyError(f"{where}.options", f"must be a mapping of option names to values, got {options!r}")
    return PluginSpec(_str(d[key], f"{where}.{key}"), options)


def _budget(data: Any) -> Budget:
    d = _mapping(data, "budget", allowed=tuple(f.name for f in dataclasses.fields(Budget)))
    return Budget(
        num_trials=_int(d.get("num_trials", 20), "budget.num_trials", low=1, high=1_000_000),
        max_concurrent=_int(d.get("max_concurrent", 1), "budget.max_concurrent", low=1, high=100_000),
        time_budget_s=_opt_float(d.get("time_budget_s"), "budget.time_budget_s"),
        trial_timeout_s=_opt_float(d.get("trial_timeout_s"), "budget.trial_timeout_s"),
        max_retries=_int(d.get("max_retries", 0), "budget.max_retries", low=0, high=100),
        reuse_actors=_opt_bool(d.get("reuse_actors"), "budget.reuse_actors"),
    )


def _resources(data: Any) -> Resources:
    d = _mapping(data, "resources", allowed=("cpu", "gpu"))
    cpu = _float(d.get("cpu", 1.0), "resources.cpu", low=0.0)
    gpu = _float(d.get("gpu", 0.0), "resources.gpu", low=0.0)
    if cpu == 0 and gpu == 0:
        raise StudyError("resources", "a trial needs some CPU or GPU; set cpu > 0 or gpu > 0")
    if gpu > 1 and gpu != int(gpu):
        raise StudyError("resources.gpu", f"fractions are allowed only below 1, got {gpu}")
    return Resources(cpu, gpu)


# ---- typed field readers -------------------------------------------------------------------------------
def _mapping(data: Any, where: str, required: tuple[str, ...] = (), allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    label = where or "the study"
    if data is None and not required:
        return {}
    if not isinstance(data, dict):
        raise StudyError(where, f"{label} must be a mapping with keys {list(allowed)}, got {type(data).__name__}")
    for k in data:
        if not isinstance(k, str):
            raise StudyError(where, f"keys must be strings, got {k!r}")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise StudyError(_join(where, unknown[0]), f"unknown key; allowed keys are {', '.join(allowed)}")
    missing = [k for k in required if k not in data]
    if missing:
        raise StudyError(_join(where, missing[0]), "is required")
    return data


def _join(where: str, key: str) -> str:
    # A key with a line break or another control character is quoted: the error stays one line.
    shown = key if key.isprintable() else repr(key)
    return f"{where}.{shown}" if where else shown


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise StudyError(where, f"must be a string, got {value!r}")
    return value


def _opt_bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise StudyError(where, f"must be true, false or null (automatic), got {value!r}")


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise StudyError(where, f"must be an integer in {low}..{high}, got {value!r}")
    if not low <= value <= high:
        raise StudyError(where, f"must be in {low}..{high}, got {value}")
    return value


def _float(value: Any, where: str, low: float | None = None) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise StudyError(where, f"must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise StudyError(where, f"must be >= {low}, got {value}")
    return float(value)


def _opt_float(value: Any, where: str) -> float | None:
    if value is None:
        return None
    v = _float(value, where)
    if v <= 0:
        raise StudyError(where, f"must be > 0 seconds (or null for no limit), got {value}")
    return v
