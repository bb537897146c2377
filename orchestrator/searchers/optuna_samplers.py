"""Optuna's samplers as searchers (Akiba et al. 2019, "Optuna: a next-generation hyperparameter
optimization framework"); the only module that imports Optuna, an optional extra (`lmnas[optuna]`).

- `optuna_tpe`: multivariate TPE with the constant liar (Bergstra et al. 2011, "Algorithms for
  hyper-parameter optimization"; Falkner et al. 2018 for the multivariate kernel; Ozaki et al. 2022,
  "Multiobjective tree-structured Parzen estimator"), so pending trials count as bad results;
- `optuna_gp`: Optuna's Gaussian-process BO (log EHVI for several objectives), which conditions on
  running trials;
- `optuna_nsga2`: NSGA-II (Deb et al. 2002), generational;
- `optuna_random`: independent uniform samples, the peers' baseline.

Every study option except ours (`max_repeats`) goes to the sampler's constructor, whose defaults
stand unless a plug-in sets its own (TPE: multivariate, constant liar). The searcher asks and tells
an Optuna study in minimise form, the space's dimensions mapped to Optuna distributions (a choice as
its index, ordered choices as an integer range). A proposal that repeats an earlier configuration is
not handed out: it is answered from the stored result (or, while its twin runs, when the twin ends),
as is a proposal the space forbids (told failed). Study constraints reach the samplers that take
them (TPE, GP, NSGA-II) as constraint values (`Trial.set_constraint`), so a trial that broke one is
infeasible for them and still teaches its objectives.

The study's whole Optuna state is Optuna's own journal (`JournalStorage`): its records are kept in
memory and saved in the searcher state (searcher_state.json in the study directory, written
atomically with the pending trials and history), so a resumed study replays the journal and
continues. Each suggestion gets a fresh sampler seeded from the study seed and the number of
Optuna trials, so a restored searcher proposes exactly what the original would have.
"""
from __future__ import annotations

import dataclasses
import inspect
import threading
import warnings
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from orchestrator.errors import StudyError
from orchestrator.objectives import Constraint, Objectives
from orchestrator.searchers.base import Finished, Searcher, config_key
from search_spaces.base import Config, InvalidArchitectureError, SearchSpace, to_python
from search_spaces.dims import ChoiceDim, FloatDim, IntDim

try:
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import JournalStorage
    from optuna.storages.journal import BaseJournalBackend
    from optuna.trial import FrozenTrial, TrialState
except ImportError:  # the extra is not installed: one line for `lmnas validate` and `lmnas run`
    raise StudyError("searcher.name", "the Optuna searchers (optuna_tpe, optuna_gp, optuna_nsga2, optuna_random) "
                     "need Optuna; install the extra: pip install 'lmnas[optuna]'") from None

# Optuna logs every trial at INFO and flags its newer features as experimental; a study logs its own trials.
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=ExperimentalWarning, module=r"optuna\.")

#: the Optuna study inside the journal; each searcher has a journal of its own.
STUDY_NAME = "lmnas"
#: user attributes of an Optuna trial: the study's trial id it was handed out as, and the Optuna
#: trial it repeats (answered when that one ends).
TRIAL_ID, REPEAT_OF = "trial_id", "repeat_of"


@dataclasses.dataclass(frozen=True)
class OptunaOptions:
    """Options of an Optuna searcher, validated on construction."""

    #: proposals in a row that repeat a configuration or break the space's rules / analytic
    #: constraints (each answered without training) before a random unseen one is proposed instead.
    max_repeats: int = 10
    #: keyword arguments of the Optuna sampler (its own names, e.g. n_startup_trials, population_size).
    sampler: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.max_repeats, int) or isinstance(self.max_repeats, bool) or self.max_repeats < 1:
            raise ValueError(f"option 'max_repeats' must be an integer >= 1, got {self.max_repeats!r}")


class MemoryJournal(BaseJournalBackend):
    """Optuna's journal records in a list, saved and restored with the searcher state.

    Optuna's backends must be process-safe; one searcher in one driver process uses this one."""

    def __init__(self, logs: Iterable[dict[str, Any]] = ()) -> None:
        self.logs: list[dict[str, Any]] = list(logs)

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        return self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)


class OptunaCodec:
    """Search-space dimensions <-> Optuna distributions; a dimension with one legal value is not shown."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.fixed: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}
        for d in space.dims:
            if isinstance(d, IntDim):
                last = d.low + (len(d.values) - 1) * d.step
                if last == d.low:
                    self.fixed[d.name] = d.low
                elif d.step == 1:
                    self.distributions[d.name] = IntDistribution(d.low, last, log=d.log)
                else:  # Optuna has no log scale on a grid of step > 1
                    self.distributions[d.name] = IntDistribution(d.low, last, step=d.step)
            elif isinstance(d, FloatDim):
                self.distributions[d.name] = FloatDistribution(d.low, d.high, log=d.log)
            elif len(d.choices) == 1:
                self.fixed[d.name] = d.choices[0]
            elif d.ordered:
                self.distributions[d.name] = IntDistribution(0, len(d.choices) - 1)
            else:
                self.distributions[d.name] = CategoricalDistribution(list(range(len(d.choices))))

    def encode(self, config: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for d in self.space.dims:
            if d.name in self.distributions:
                value = config[d.name]
                out[d.name] = choice_index(d, value) if isinstance(d, ChoiceDim) else value
        return out

    def decode(self, params: Mapping[str, Any]) -> Config:
        out: Config = dict(self.fixed)
        for d in self.space.dims:
            if d.name in self.distributions:
                value = params[d.name]
                out[d.name] = d.choices[int(value)] if isinstance(d, ChoiceDim) else value
        return {d.name: to_python(out[d.name]) for d in self.space.dims}


def choice_index(d: ChoiceDim, value: Any) -> int:
    for i, c in enumerate(d.choices):
        if value == c and (type(value) is type(c) or not isinstance(value, bool)):
            return i
    raise InvalidArchitectureError(f"{d.name}={value!r} is not one of {list(d.choices)}")


def constraint_values(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> dict[str, float]:
    """Optuna's form of the constraints, by their text: <= 0 when met; a metric nobody knows counts as met."""
    out = {}
    for c in constraints:
        value = metrics.get(c.metric)
        if value is None:
            out[str(c)] = 0.0
        else:
            out[str(c)] = float(value) - c.bound if c.op == "<=" else c.bound - float(value)
    return out


#: sampler arguments the searcher sets itself (constraints reach the samplers with each trial).
OWN_ARGUMENTS = ("seed", "constraints_func")
#: the annotated types a study file can give a sampler argument (callables and objects it cannot).
PLAIN_TYPES: dict[str, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}
SPOKEN = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "text"}


def plain_types(parameter: inspect.Parameter) -> tuple[set[str], bool]:
    """The plain types an argument is annotated with (from "int | None": {"int"}) and whether None is allowed."""
    kinds = {k.strip() for k in str(parameter.annotation).split("|")}
    return kinds - {"None"}, "None" in kinds


def sampler_options(sampler_class: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments of an Optuna sampler a study may set: those of plain types."""
    params = inspect.signature(sampler_class).parameters.values()
    return {p.name: p for p in sorted(params, key=lambda p: p.name)
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in OWN_ARGUMENTS
            and plain_types(p)[0] and plain_types(p)[0] <= set(PLAIN_TYPES)}


def check_sampler_options(name: str, sampler_class: type, options: Mapping[str, Any]) -> None:
    """Unknown arguments and values of the wrong type in one line (Optuna would take `multivariate: maybe`
    as true); Optuna checks the rest of each value when the sampler is made."""
    allowed = sampler_options(sampler_class)
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(f"unknown {name} option {key!r}; allowed: {', '.join(['max_repeats', *allowed])}")
        kinds, optional = plain_types(allowed[key])
        if value is None and optional:
            continue
        types = tuple(t for k in kinds for t in PLAIN_TYPES[k])
        if not isinstance(value, types) or (isinstance(value, bool) and "bool" not in kinds):
            raise ValueError(f"{name} option {key!r} must be {' or '.join(SPOKEN[k] for k in sorted(kinds))}, got {value!r}")


class OptunaSearcher(Searcher):
    """An Optuna sampler behind the searcher interface (subclasses name the sampler)."""

    #: the plug-in's registry name, for messages.
    name: ClassVar[str] = ""
    sampler_class: ClassVar[type] = optuna.samplers.RandomSampler
    #: sampler arguments this plug-in sets unless the study does.
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        max_repeats = options.pop("max_repeats", OptunaOptions.max_repeats)
        self.opts = OptunaOptions(max_repeats=max_repeats, sampler={**self.defaults, **options})
        self.seed = seed
        self.codec = OptunaCodec(space)
        if not self.codec.distributions:
            raise ValueError(f"search space {space.name!r} has a single configuration; there is nothing to search")
        check_sampler_options(self.name, self.sampler_class, self.opts.sampler)
        self.make_sampler(0)  # a value the sampler refuses fails here, in `lmnas validate`
        #: suggest, complete and the background snapshot each see the journal and the book-keeping whole.
        self._lock = threading.RLock()
        self._open(MemoryJournal())

    # ---- Optuna's study --------------------------------------------------------------------------
    def make_sampler(self, trials_so_far: int) -> optuna.samplers.BaseSampler:
        """A sampler seeded from the study seed and the number of Optuna trials (deterministic on resume)."""
        return self.sampler_class(**self.opts.sampler, seed=(self.seed * 1_000_003 + trials_so_far) % 2**32)

    def _open(self, journal: MemoryJournal) -> None:
        self.journal = journal
        self.storage = JournalStorage(journal)
        if not journal.logs:
            optuna.create_study(storage=self.storage, study_name=STUDY_NAME, directions=["minimize"] * len(self.objectives))
        self.study_id = self.storage.get_study_id_from_name(STUDY_NAME)
        # One Study object for the searcher's life; `study()` gives it a freshly seeded sampler
        # (loading the study anew for every ask and tell cost 0.3 ms each, a tenth of TPE's suggestion).
        self._study = optuna.load_study(study_name=STUDY_NAME, storage=self.storage, sampler=self.make_sampler(0))
        #: the study's trial id -> Optuna trial number, for trials handed out and not yet told.
        self.numbers: dict[str, int] = {}
        #: configuration key -> the Optuna trial that first handed it out.
        self.first: dict[str, int] = {}
        #: Optuna trial number -> running proposals that repeat it, told its result when it ends.
        self.repeats: dict[int, list[int]] = {}
        for t in self.trials():
            if TRIAL_ID in t.user_attrs:
                self.first.setdefault(config_key(self.codec.decode(t.params)), t.number)
                if t.state == TrialState.RUNNING:
                    self.numbers[t.user_attrs[TRIAL_ID]] = t.number
            elif REPEAT_OF in t.user_attrs and t.state == TrialState.RUNNING:
                self.repeats.setdefault(t.user_attrs[REPEAT_OF], []).append(t.number)

    def study(self) -> optuna.Study:
        """The Optuna study with a sampler seeded for the next trial: the same on a restored searcher."""
        self._study.sampler = self.make_sampler(self.storage.get_n_trials(self.study_id))
        return self._study

    def trials(self) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False)

    # ---- the runner's side: one lock, so the saved state is never half an update -----------------
    def suggest(self, trial_id: str) -> Config | None | Finished:
        with self._lock:
            return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, metrics: Mapping[str, float] | None) -> None:
        with self._lock:
            super().on_trial_complete(trial_id, metrics)

    def add_pending(self, trial_id: str, config: Config) -> None:
        """A trial this searcher did not hand out (a stored one, one an interrupted run left) joins
        Optuna's study as a running trial with its configuration."""
        with self._lock:
            if trial_id not in self.pending and trial_id not in self.numbers and not self.learned(trial_id):
                self._hand_out(trial_id, config)
            super().add_pending(trial_id, config)

    def propose(self, trial_id: str) -> Config | None | Finished:
        seen = self.seen()
        for _ in range(self.opts.max_repeats):
            study = self.study()
            trial = study.ask(self.codec.distributions)
            config = self.codec.decode(trial.params)
            key = config_key(config)
            if not (self.space.is_valid(config) and self.analytically_feasible(config)):
                study.tell(trial, state=TrialState.FAIL)
            elif key in seen:
                self._answer_repeat(study, trial, self.first.get(key))
            else:
                self._name(trial, trial_id, key)
                return config
        # The sampler keeps repeating itself or proposing what the rules forbid: an unseen random one.
        config = self.random_fresh(seen)
        self._hand_out(trial_id, config)
        return config

    def observe(
        self, trial_id: str, config: Config, values: list[float] | None, metrics: Mapping[str, float] | None
    ) -> None:
        number = self.numbers.pop(trial_id, None)
        if number is None:
            return
        study = self.study()
        if metrics is None or not self.objectives.has_values(metrics):
            study.tell(number, state=TrialState.FAIL)
        else:
            # Optuna judges the constraints itself: a trial that broke one is infeasible, and its
            # objectives still teach the sampler (the base's `values` is None for it).
            known = {**self.space.metrics(config), **metrics} if self.constraints else metrics
            self._tell(study, number, self.objectives.to_minimise(metrics).tolist(),
                       constraint_values(self.constraints, known))
        finished = self.trials()[number]
        for repeat in self.repeats.pop(number, []):
            self._copy_result(study, repeat, finished)

    # ---- Optuna trials ---------------------------------------------------------------------------
    def _name(self, trial: optuna.Trial, trial_id: str, key: str) -> None:
        """Record `trial` as handed out under the study's `trial_id`."""
        trial.set_user_attr(TRIAL_ID, trial_id)
        self.numbers[trial_id] = trial.number
        self.first.setdefault(key, trial.number)

    def _hand_out(self, trial_id: str, config: Config) -> None:
        """An Optuna trial with exactly `config` (enqueued, then asked), handed out as `trial_id`."""
        study = self.study()
        study.enqueue_trial(self.codec.encode(config), skip_if_exists=False)
        self._name(study.ask(self.codec.distributions), trial_id, config_key(config))

    def _answer_repeat(self, study: optuna.Study, trial: optuna.Trial, twin: int | None) -> None:
        """A proposal of a configuration handed out before gets its twin's result, now or when the
        twin ends; it is never trained again."""
        if twin is None:  # a configuration Optuna never handed out: not trained twice all the same
            study.tell(trial, state=TrialState.FAIL)
            return
        original = self.trials()[twin]
        if original.state == TrialState.RUNNING:
            trial.set_user_attr(REPEAT_OF, twin)
            self.repeats.setdefault(twin, []).append(trial.number)
        else:
            self._copy_result(study, trial.number, original)

    def _copy_result(self, study: optuna.Study, number: int, source: FrozenTrial) -> None:
        if source.state == TrialState.COMPLETE and source.values is not None:
            self._tell(study, number, source.values, source.constraints)
        else:
            study.tell(number, state=TrialState.FAIL)

    def _tell(self, study: optuna.Study, number: int, values: Sequence[float], constraints: Mapping[str, float]) -> None:
        trial = optuna.Trial(study, self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))
        for name, value in constraints.items():
            trial.set_constraint(name, value)
        study.tell(trial, list(values))

    def optuna_trials(self) -> list[FrozenTrial]:
        """Every Optuna trial (handed out, or answered without training), in minimise form; the
        user attribute `trial_id` names the study's trial a handed-out one ran as."""
        with self._lock:
            return self.storage.get_all_trials(self.study_id)

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return super().state_dict() | {"journal": list(self.journal.logs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            super().load_state_dict(state)
            self._open(MemoryJournal(state["journal"]))
            # A trial handed out that the saved book-keeping does not hold is lost: tell Optuna so.
            study = self.study()
            for trial_id in [t for t in self.numbers if t not in self.pending]:
                study.tell(self.numbers.pop(trial_id), state=TrialState.FAIL)


class OptunaTPESearcher(OptunaSearcher):
    """Multivariate TPE; running trials count as bad results (constant liar) so workers spread out."""

    name = "optuna_tpe"
    sampler_class = optuna.samplers.TPESampler
    defaults = {"multivariate": True, "constant_liar": True}


class OptunaGPSearcher(OptunaSearcher):
    """Optuna's Gaussian-process BO; it conditions on running trials itself."""

    name = "optuna_gp"
    sampler_class = optuna.samplers.GPSampler


class OptunaNSGA2Searcher(OptunaSearcher):
    """Optuna's NSGA-II (generational: a generation waits for its parents' results)."""

    name = "optuna_nsga2"
    sampler_class = optuna.samplers.NSGAIISampler


class OptunaRandomSearcher(OptunaSearcher):
    """Optuna's random sampler: the peers' baseline, behind the same book-keeping."""

    name = "optuna_random"
    sampler_class = optuna.samplers.RandomSampler
