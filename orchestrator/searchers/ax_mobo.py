"""Multi-objective Bayesian optimisation over `ax.api.Client` (the only module importing Ax).

Every study objective goes into one multi-objective optimisation config, so Ax picks
qLogNEHVI (Daulton et al. 2021, "Parallel Bayesian optimization of multiple noisy objectives
with expected hypervolume improvement"; Ament et al. 2023, "Unexpected improvements to expected
improvement") for up to three objectives; this is the EHVI-based search of the pruning paper
(§4.1.2) and the multi-objective BO of AutoDistill (§3.3). Objective references become Ax
objective thresholds; study constraints become outcome constraints. Ax reads any bound on an
objective's metric as that objective's threshold (one per objective), so a constraint on an
objective's metric (`params <= 15e6` beside a params objective) is put on a copy of the metric
under its own name: a modelled outcome constraint, while the reference point stays the study's.

Suggestions are computed off the driver loop by a `SuggestionPump`, with pending trials known
to Ax (they are RUNNING trials there), so batches diversify. Suggestions are made cheap by a
generation strategy with fewer acquisition restarts / raw samples than Ax's defaults, one
torch thread per model fit (intra-op threads on 40-point GPs only contend with each other and
with the other processes of a busy machine) and batched generation when several workers wait.

A fit with many trials pending takes seconds, so W free workers would wait W / batch_size fits.
With `fill_idle_workers`, the workers beyond one batch get scrambled-Sobol configurations at once
(feasible under the space's rules and analytic constraints), attached to Ax as running trials so
the next fits condition on them; `suggested_by` in the state counts who chose each trial.

Over 400 lines on purpose: the layering rule keeps every use of Ax in this one module, so its
parameter codec, generation strategy, JSON state and the searcher itself live together.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
import threading
from contextlib import contextmanager
from typing import Any, Hashable, Iterator, Mapping, NamedTuple, Sequence

import pandas as pd
import torch

# Importing Ax logs "Ax SQL storage initialized with SQLAlchemy ..." on the console at INFO whenever
# SQLAlchemy is installed (Optuna brings it), before `set_stderr_log_level` below can act; Ax sets
# that logger's level itself on import, so a filter placed first keeps the line out.
logging.getLogger("ax.storage.sqa_store.with_db_settings_base").addFilter(lambda record: record.levelno >= logging.WARNING)

from ax.adapter.registry import Generators
from ax.api.client import Client
from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig
from ax.core.data import Data
from ax.core.trial_status import TrialStatus
from ax.exceptions.core import SearchSpaceExhausted
from ax.generation_strategy.generation_strategy import GenerationNode, GenerationStrategy
from ax.generation_strategy.generator_spec import GeneratorSpec
from ax.generation_strategy.transition_criterion import MinTrials
from ax.generators.torch.botorch_modular.surrogate import ModelConfig, SurrogateSpec
from ax.utils.common.logger import set_stderr_log_level

from orchestrator.objectives import Constraint, Objectives, feasible
from orchestrator.searchers.ax_mobo_options import AxMoboOptions
from orchestrator.searchers.base import FINISHED, Finished, Searcher, config_key, plugin_options
from orchestrator.searchers.pump import Exhausted, SuggestionPump
from search_spaces.base import Config, InvalidArchitectureError, SearchSpace, to_python
from search_spaces.dims import ChoiceDim, Dim, FloatDim, IntDim

logger = logging.getLogger(__name__)
# Ax logs every generated and completed trial at INFO; a study logs its own trials.
set_stderr_log_level(logging.WARNING)


class AxCodec:
    """Search-space dimensions <-> Ax parameters.

    IntDim -> int range (log when asked), or, on a grid with step > 1, the index of the grid
    value (Ax would otherwise see values off the grid); FloatDim -> float range; ChoiceDim ->
    the index of the choice (ordered when the dimension is), so choices of any JSON type round
    trip exactly. A dimension with a single legal value is not shown to Ax at all.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.fixed: dict[str, Any] = {}
        self.parameters: list[RangeParameterConfig | ChoiceParameterConfig] = []
        for d in space.dims:
            n = _num_values(d)
            if n == 1:
                self.fixed[d.name] = d.low if isinstance(d, (IntDim, FloatDim)) else d.choices[0]
            elif isinstance(d, IntDim) and d.step == 1:
                scaling = "log" if d.log else "linear"
                self.parameters.append(RangeParameterConfig(d.name, (d.low, d.high), "int", scaling=scaling))
            elif isinstance(d, IntDim):
                self.parameters.append(RangeParameterConfig(d.name, (0, n - 1), "int"))
            elif isinstance(d, FloatDim):
                scaling = "log" if d.log else "linear"
                self.parameters.append(RangeParameterConfig(d.name, (d.low, d.high), "float", scaling=scaling))
            else:
                self.parameters.append(ChoiceParameterConfig(d.name, list(range(n)), "int", is_ordered=d.ordered))

    @property
    def num_parameters(self) -> int:
        return len(self.parameters)

    def encode(self, config: Mapping[str, Any]) -> dict[str, int | float]:
        out: dict[str, int | float] = {}
        for d in self.space.dims:
            if d.name in self.fixed:
                continue
            value = config[d.name]
            if isinstance(d, IntDim):
                out[d.name] = int(value) if d.step == 1 else (int(value) - d.low) // d.step
            elif isinstance(d, FloatDim):
                out[d.name] = float(value)
            else:
                out[d.name] = _choice_index(d, value)
        return out

    def from_unit(self, point: Sequence[float]) -> dict[str, int | float]:
        """A point of [0, 1)^num_parameters as Ax parameters (each coordinate spread evenly over
        its parameter's values, on the log scale where the parameter has one)."""
        out: dict[str, int | float] = {}
        for p, u in zip(self.parameters, point):
            if isinstance(p, ChoiceParameterConfig):
                out[p.name] = p.values[min(int(u * len(p.values)), len(p.values) - 1)]
                continue
            low, high = p.bounds
            if p.parameter_type == "int":
                # Equal shares of [0, 1) per integer: [low, high + 1) on the chosen scale, floored.
                if p.scaling == "log":
                    value = math.exp(math.log(low) + u * (math.log(high + 1) - math.log(low)))
                else:
                    value = low + u * (high + 1 - low)
                out[p.name] = min(int(math.floor(value)), int(high))
            elif p.scaling == "log":
                out[p.name] = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
            else:
                out[p.name] = low + u * (high - low)
        return out

    def decode(self, params: Mapping[str, Any]) -> Config:
        out: Config = {}
        for d in self.space.dims:
            if d.name in self.fixed:
                out[d.name] = self.fixed[d.name]
                continue
            value = params[d.name]
            if isinstance(d, IntDim):
                out[d.name] = int(round(value)) if d.step == 1 else d.low + int(round(value)) * d.step
            elif isinstance(d, FloatDim):
                # Ax may return a value a rounding error outside the bounds.
                out[d.name] = min(max(float(value), d.low), d.high)
            else:
                out[d.name] = d.choices[int(round(value))]
        return {k: to_python(v) for k, v in out.items()}


def _num_values(d: Dim) -> int:
    if isinstance(d, IntDim):
        return len(range(d.low, d.high + 1, d.step))
    if isinstance(d, FloatDim):
        return 2  # a FloatDim always has high > low
    return len(d.choices)


def _choice_index(d: ChoiceDim, value: Any) -> int:
    for i, c in enumerate(d.choices):
        if value == c and (type(value) is type(c) or not isinstance(value, bool)):
            return i
    raise InvalidArchitectureError(f"{d.name}={value!r} is not one of {list(d.choices)}")


def ax_metric_names(names: Sequence[str]) -> dict[str, str]:
    """Our metric names -> names Ax's expression parser reads as plain symbols.

    Ax parses objectives and constraints with SymPy, which would read "E", "gamma" or
    "val/acc" as something else; a prefix and an identifier-safe spelling avoid that.
    """
    out: dict[str, str] = {}
    for name in names:
        if name in out:
            continue
        base = "m_" + re.sub(r"\W", "_", name)
        candidate, k = base, 1
        while candidate in out.values():
            k += 1
            candidate = f"{base}_{k}"
        out[name] = candidate
    return out


#: prefix of the name under which a constraint on an objective's metric reaches Ax (':' is in no metric name
#: a constraint can spell, so the key never meets a real metric).
BOUND = "bound:"


def constraint_metric_keys(objectives: Objectives, constraints: Sequence[Constraint]) -> list[str]:
    """The key (in `ax_metric_names`) of each constraint's metric: the metric itself, or, for an
    objective's metric, its copy `BOUND + metric`, which Ax takes for an outcome constraint instead
    of a second objective threshold ("More than one objective threshold specified") or, without a
    `ref`, instead of the reference point."""
    return [BOUND + c.metric if c.metric in objectives.metrics else c.metric for c in constraints]


def generation_strategy(opts: AxMoboOptions, num_initial: int, seed: int) -> GenerationStrategy:
    """Sobol for `num_initial` trials, then Ax's modular BoTorch model with cheaper acquisition
    optimisation. Sobol keeps proposing while fewer than half of its trials have results, so
    workers never wait for the model to have data."""
    skipped = [TrialStatus.FAILED, TrialStatus.ABANDONED, TrialStatus.EARLY_STOPPED]
    sobol = GenerationNode(
        name="Sobol",
        generator_specs=[GeneratorSpec(generator_enum=Generators.SOBOL, generator_kwargs={"seed": seed})],
        transition_criteria=[
            MinTrials(threshold=num_initial, transition_to="MBM", use_all_trials_in_exp=True, not_in_statuses=skipped),
            MinTrials(
                threshold=max(1, num_initial // 2),
                transition_to="MBM",
                use_all_trials_in_exp=True,
                only_in_statuses=[TrialStatus.COMPLETED],
                count_only_trials_with_data=True,
            ),
        ],
        should_deduplicate=True,
    )
    optimizer = {"num_restarts": opts.num_restarts, "raw_samples": opts.raw_samples}
    mbm = GenerationNode(
        name="MBM",
        generator_specs=[
            GeneratorSpec(
                generator_enum=Generators.BOTORCH_MODULAR,
                generator_kwargs={"surrogate_spec": SurrogateSpec(model_configs=[ModelConfig(name="lmnas")])},
                generator_gen_kwargs={"model_gen_options": {"optimizer_kwargs": optimizer}},
            )
        ],
        # Ax's deduplication re-optimises up to five times and then falls back to a Sobol
        # generator whose state is not saved; the searcher replaces a repeat by a random
        # configuration from its own (saved) generator instead, at no model cost.
        should_deduplicate=False,
        fallback_specs={},
    )
    return GenerationStrategy(name="lmnas-mobo", nodes=[sobol, mbm])


def client_to_json(client: Client) -> dict[str, Any]:
    """Ax's own JSON snapshot of the client (experiment and generation strategy)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ax.json")
        client.save_to_json_file(path)
        with open(path) as f:
            return json.load(f)


def client_from_json(snapshot: Mapping[str, Any], exact_data: list[dict[str, Any]] | None = None) -> Client:
    """The client of `client_to_json`'s snapshot; `exact_data` (`exact_observations`) replaces the
    snapshot's observations, which Ax's JSON keeps to 10 significant digits: a resumed search that
    saw 4.440408212 for 4.44040821234 suggested differently from the one that ran on."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ax.json")
        with open(path, "w") as f:
            json.dump(snapshot, f)
        client = Client.load_from_json_file(path)
    if exact_data:
        # Ax's API client has no public handle on its experiment's data; `_experiment` is its own accessor.
        client._experiment.attach_data(Data(df=pd.DataFrame.from_records(exact_data)))
    return client


def exact_observations(client: Client) -> list[dict[str, Any]]:
    """The experiment's observations as records whose floats JSON keeps exactly."""
    frame = client._experiment.lookup_data().df
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in frame.to_dict("records")]


class _Suggestion(NamedTuple):
    """A configuration handed (or ready to be handed) to a trial."""
    index: int | None  # its Ax trial; None for a fill, attached to Ax when its "filled" event is applied
    config: Config
    source: str  # "model" (Ax's generation strategy), "random" (fallback) or "fill"


class _Event(NamedTuple):
    """What the driver posts to the pump; applied in order by the producer's side."""
    kind: str  # "handed", "filled", "result" or "complete"
    trial_id: str
    config: Config
    index: int | None = None  # "handed": the suggestion's Ax trial
    source: str = ""  # "handed": the suggestion's source
    metrics: dict[str, float] | None = None  # "result", "complete": None when the trial failed


SOURCES = ("model", "random", "fill")


class AxMoboSearcher(Searcher):
    """Multi-objective BO with Ax; suggestions are computed off the driver loop."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        self.opts = plugin_options("ax_mobo", AxMoboOptions, options)
        self.seed = seed
        self.codec = AxCodec(space)
        if self.codec.num_parameters == 0:
            raise ValueError(f"search space {space.name!r} has a single configuration; there is nothing to search")
        d = self.codec.num_parameters
        self.num_initial = self.opts.num_initial if self.opts.num_initial is not None else min(2 * (d + 1), 10)
        keys = constraint_metric_keys(objectives, self.constraints)
        self.names = ax_metric_names([*objectives.metrics, *keys])
        #: Ax's name of each constraint's metric, in the order of `self.constraints`.
        self.constraint_names = [self.names[k] for k in keys]
        self.client = self._new_client()
        #: trial id -> Ax trial index, for trials handed to the runner (kept by the producer's side).
        self.trial_index: dict[str, int] = {}
        #: trials handed out per source: "model" (Ax's generation strategy: its initial Sobol
        #: trials, then the model), "random" (a feasible random one when the model's were refused
        #: or failed), "fill" (space-filling, given to free workers while the model was busy).
        self.suggested_by: dict[str, int] = dict.fromkeys(SOURCES, 0)
        # Scrambled Sobol points for fills, seeded by the study; `fill_draws` points used so far.
        self.fill_draws = 0
        self.sobol = torch.quasirandom.SobolEngine(self.codec.num_parameters, scramble=True, seed=seed)
        #: Ax trial index -> last progression attached (intermediate results).
        self.progression: dict[int, int] = {}
        self.generations = 0
        #: keys of every configuration produced (handed out, ready, finished or rejected).
        self.produced: set[str] = set()
        #: the model's thread and the driver's fills both claim keys in `produced`: check and add are one step.
        self._claim_lock = threading.Lock()
        self.pump: SuggestionPump[_Suggestion, _Event] = SuggestionPump(
            self._produce,
            self._apply,
            queue_size=self.opts.queue_size,
            batch_size=self.opts.batch_size,
            background=self.opts.background,
            fill=self._fill if self.opts.fill_idle_workers else None,
            name="ax-mobo-suggestions",
        )

    def _new_client(self) -> Client:
        client = Client()
        client.configure_experiment(parameters=self.codec.parameters, name="lmnas")
        objective = ", ".join(
            ("-" if o.mode == "min" else "") + self.names[o.metric] for o in self.objectives.items
        )
        thresholds = [
            f"{self.names[o.metric]} {'<=' if o.mode == 'min' else '>='} {float(o.ref)!r}"
            for o in self.objectives.items
            if o.ref is not None
        ]
        outcome = [f"{name} {c.op} {float(c.bound)!r}" for c, name in zip(self.constraints, self.constraint_names)]
        client.configure_optimization(objective=objective, outcome_constraints=thresholds + outcome or None)
        if self.opts.generation == "ax_default":
            client.configure_generation_strategy(initialization_random_seed=self.seed)
        else:
            client.set_generation_strategy(generation_strategy(self.opts, self.num_initial, self.seed))
        return client

    # ---- the runner's side (never blocks on the model in background mode) ----------------------
    def propose(self, trial_id: str) -> Config | None | Finished:
        # Free workers, this one included: without a known max_concurrent, none beyond it.
        free = 1 if self.workers is None else self.workers - len(self.pending)
        item = self.pump.take(trial_id, free=free)
        if item is None:
            return FINISHED if self.pump.finished else None
        if item.source != "fill":  # a fill posted its own event
            self.pump.post(_Event("handed", trial_id, item.config, index=item.index, source=item.source))
        return item.config

    def on_trial_result(self, trial_id: str, metrics: Mapping[str, float]) -> None:
        if self.opts.attach_intermediate and trial_id in self.pending:
            self.pump.post(_Event("result", trial_id, self.pending[trial_id], metrics=dict(metrics)))

    def observe(
        self, trial_id: str, config: Config, values: list[float] | None, metrics: Mapping[str, float] | None
    ) -> None:
        self.pump.post(_Event("complete", trial_id, config, metrics=dict(metrics) if metrics is not None else None))

    def close(self) -> None:
        """Stop the background thread; the searcher can still be saved afterwards."""
        self.pump.close()

    def summary(self) -> pd.DataFrame:
        """Ax's table of its trials (status, generation node, parameters, metrics in Ax's names)."""
        with self.pump.holding():
            return self.client.summarize()

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        with self.pump.holding():
            return super().state_dict() | {
                "ax": client_to_json(self.client),
                "observations": exact_observations(self.client),
                "trial_index": dict(self.trial_index),
                "progression": {str(k): v for k, v in self.progression.items()},
                "generations": self.generations,
                "produced": sorted(self.produced),
                "ready": [[item.index, item.config, item.source] for item in self.pump.ready_items()],
                "suggested_by": dict(self.suggested_by),
                "fill_draws": self.fill_draws,
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with self.pump.holding():
            super().load_state_dict(state)
            self.client = client_from_json(state["ax"], state.get("observations"))
            self.trial_index = {str(k): int(v) for k, v in state["trial_index"].items()}
            self.progression = {int(k): int(v) for k, v in state["progression"].items()}
            self.generations = int(state["generations"])
            self.produced = set(state["produced"])
            # States saved before fills existed hold [index, config] and no counts.
            self.pump.restore([_Suggestion(int(item[0]), dict(item[1]), item[2] if len(item) > 2 else "model")
                               for item in state["ready"]])
            self.suggested_by = dict.fromkeys(SOURCES, 0) | {k: int(v) for k, v in state.get("suggested_by", {}).items()}
            self.fill_draws = int(state.get("fill_draws", 0))
            self.sobol = torch.quasirandom.SobolEngine(self.codec.num_parameters, scramble=True, seed=self.seed)
            self.sobol.fast_forward(self.fill_draws)

    # ---- the producer's side (runs with the pump's work lock held) -------------------------------
    def _produce(self, n: int) -> list[_Suggestion]:
        out: list[_Suggestion] = []
        rejected = 0
        with self._generating():
            while len(out) < n and rejected < self.opts.max_rejections:
                try:
                    trials = self.client.get_next_trials(max_trials=n - len(out))
                except SearchSpaceExhausted:
                    if out:
                        break
                    raise Exhausted() from None
                except Exception as exc:  # a numerical failure must not stop the study
                    logger.warning("ax_mobo: generation failed (%s: %s); proposing a random configuration",
                                   type(exc).__name__, exc)
                    break
                if not trials:
                    break
                for index, params in sorted(trials.items()):
                    config = self.codec.decode(params)
                    if not self._claim(config):
                        self.client.mark_trial_failed(index, failed_reason="repeats an earlier configuration")
                        out.append(self._random())
                    elif self._accept(index, config):
                        out.append(_Suggestion(index, config, "model"))
                    else:
                        rejected += 1
        if not out:
            # The model keeps proposing what the rules forbid (or failed): a random feasible
            # configuration keeps the workers busy and teaches the model the same.
            out.append(self._random())
        return out

    def _claim(self, config: Config) -> bool:
        """Record `config` as produced; False when it already was (by the model's thread or a fill)."""
        key = config_key(config)
        with self._claim_lock:
            if key in self.produced:
                return False
            self.produced.add(key)
            return True

    def _random(self) -> _Suggestion:
        """A random feasible configuration not produced before, attached to Ax as a trial."""
        config = self.sample_feasible()
        for _ in range(100):
            if self._claim(config):
                break
            config = self.sample_feasible()
        return _Suggestion(self.client.attach_trial(parameters=self.codec.encode(config)), config, "random")

    # ---- fills (the driver's thread, while the model may be busy: no Ax, no shared rng) ----------
    def _fill(self, trial_id: Hashable) -> _Suggestion | None:
        """The next scrambled-Sobol point that the space allows, meets the analytic constraints and
        was not produced before; None when `fill_tries` points in a row are not (the worker then
        waits for the model). Ax learns of it through the "filled" event, before the next fit."""
        for _ in range(self.opts.fill_tries):
            point = self.sobol.draw(1, dtype=torch.float64)[0].tolist()
            self.fill_draws += 1
            config = self.codec.decode(self.codec.from_unit(point))
            if not (self.space.is_valid(config) and self.analytically_feasible(config) and self._claim(config)):
                continue
            self.pump.post(_Event("filled", str(trial_id), config))
            return _Suggestion(None, config, "fill")
        return None

    @contextmanager
    def _generating(self) -> Iterator[None]:
        """Seeded (a fresh stream per generation) and, when asked, single-threaded torch."""
        self.generations += 1
        threads = torch.get_num_threads()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + self.generations)
            if self.opts.torch_threads:
                torch.set_num_threads(self.opts.torch_threads)
            try:
                yield
            finally:
                torch.set_num_threads(threads)

    def _accept(self, index: int, config: Config) -> bool:
        """Keep a candidate that the space allows and whose analytic metrics meet the
        constraints; record the others in Ax so the model learns where they are."""
        try:
            self.space.check(config)
        except InvalidArchitectureError as exc:
            self.client.mark_trial_failed(index, failed_reason=f"invalid architecture: {exc}")
            return False
        analytic = self.space.metrics(config)
        if feasible(self.constraints, analytic):
            return True
        # Early-stopped trials keep their data in the model's training set but are neither
        # pending nor counted as initial trials; the constraint model learns the boundary.
        data = {name: float(analytic[c.metric])
                for c, name in zip(self.constraints, self.constraint_names) if c.metric in analytic}
        self.client.attach_data(index, data)
        self.client.mark_trial_early_stopped(index)
        return False

    def _apply(self, event: _Event) -> None:
        kind, trial_id, config = event.kind, event.trial_id, event.config
        if kind == "handed":
            self.trial_index[trial_id] = int(event.index)  # type: ignore[arg-type]
            self.suggested_by[event.source] += 1
            return
        if kind == "filled":
            self.trial_index[trial_id] = self.client.attach_trial(parameters=self.codec.encode(config))
            self.suggested_by["fill"] += 1
            return
        index = self.trial_index.get(trial_id) if kind == "result" else self.trial_index.pop(trial_id, None)
        if index is None:  # not a trial this searcher handed out
            return
        metrics = event.metrics
        if kind == "result":
            if metrics is not None and self.objectives.has_values(metrics) and self.opts.progression_key in metrics:
                step = int(metrics[self.opts.progression_key])
                self.client.attach_data(index, self._raw_data(config, metrics), progression=step)
                self.progression[index] = max(step, self.progression.get(index, step))
            return
        if metrics is None or not self.objectives.has_values(metrics):
            reason = "trial failed" if metrics is None else "trial reported no value for some objective"
            self.client.mark_trial_failed(index, failed_reason=reason)
            self.progression.pop(index, None)
            return
        # With intermediate results attached, the final one must be the latest progression.
        last = self.progression.pop(index, None)
        step = None if last is None else max(last, int(metrics.get(self.opts.progression_key, last)))
        self.client.complete_trial(index, raw_data=self._raw_data(config, metrics), progression=step)

    def _raw_data(self, config: Config, metrics: Mapping[str, float]) -> dict[str, float]:
        """Objectives and constraint metrics in Ax's names; a constraint metric the trial did
        not report is taken from the space's analytic metrics when it has it."""
        data = {self.names[o.metric]: float(metrics[o.metric]) for o in self.objectives.items}
        analytic = self.space.metrics(config) if self.constraints else {}
        for c, name in zip(self.constraints, self.constraint_names):
            value = metrics.get(c.metric, analytic.get(c.metric))
            if value is not None and math.isfinite(float(value)):
                data[name] = float(value)
        return data
