"""Multi-objective BO that models only what must be measured, in BoTorch directly.

Objectives the search space computes from a configuration (`SearchSpace.metrics`: parameters,
FLOPs) are exact; a Gaussian process for them wastes data and blurs the front it is supposed to
push. So each measured output (accuracy, latency, a measured constraint metric) gets its own
`SingleTaskGP` (outcomes standardised; inputs are the space's unit-cube encoding) and each known
output a `GenericDeterministicModel` that computes it, side by side in a `ModelList`.
qLogNEHVI (Daulton et al. 2021, "Parallel Bayesian optimization of multiple noisy objectives with
expected hypervolume improvement"; Ament et al. 2023, "Unexpected improvements to expected
improvement") scores candidates on the combined posterior; the study's constraints enter it as
constraint callables (exact for known metrics, modelled for measured ones) beside removing the
candidates a known metric rules out. This is the EHVI-based search of the pruning paper (§4.1.2)
and the multi-objective BO of AutoDistill (§3.3) with the known objectives left exact.

The first suggestions are a Latin hypercube over every dimension's values (`searchers/design.py`),
counted as they are handed out, so workers in flight do not stretch the random phase; the model then
starts from the results that are in, with the rest of the design pending.
The acquisition is maximised over a finite pool (random configurations plus mutations of the
current front), which suits discrete and mixed spaces and costs one batched evaluation; pending
trials are `X_pending`, so workers get different suggestions.
"""
from __future__ import annotations

import logging
import math
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.models.deterministic import GenericDeterministicModel
from botorch.models.model import Model, ModelList
from botorch.sampling.get_sampler import get_sampler
from botorch.utils.multi_objective.pareto import is_non_dominated

from orchestrator.objectives import Constraint, Objectives, feasible
from orchestrator.searchers.base import Finished, Searcher, config_key, plugin_options
from orchestrator.searchers.botorch_mobo_options import BotorchMoboOptions
from orchestrator.searchers.design import latin_hypercube, varies
from orchestrator.searchers.gp import fit_gp
from search_spaces.base import Config, SearchSpace, to_python
from search_spaces.dims import ChoiceDim, FloatDim, IntDim
from trainers.efficiency.host_lock import host_busy

logger = logging.getLogger(__name__)
DTYPE = torch.float64


def from_unit(space: SearchSpace, u: Sequence[float]) -> Config:
    """The configuration at a point of the unit-cube encoding (the inverse of `space.to_unit`)."""
    out: Config = {}
    for d, x in zip(space.dims, u):
        if isinstance(d, IntDim):
            out[d.name] = d.snap(d.low + float(x) * (d.high - d.low))
        elif isinstance(d, FloatDim):
            out[d.name] = min(max(d.low + float(x) * (d.high - d.low), d.low), d.high)
        else:
            out[d.name] = d.choices[int(round(float(x) * (len(d.choices) - 1)))]
    return {k: to_python(v) for k, v in out.items()}


class BotorchMoboSearcher(Searcher):
    """Options: see `BotorchMoboOptions`. Runs in the caller's thread and is deterministic per seed."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Objectives,
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(space, objectives, constraints, seed)
        self.opts = plugin_options("botorch_mobo", BotorchMoboOptions, options)
        if any(isinstance(d, ChoiceDim) and len(d.choices) > 1 and not d.ordered for d in space.dims):
            logger.info("botorch_mobo: unordered choices are encoded by their index; the GP assumes an order")
        self.seed = seed
        # Dimensions with one legal value carry no information and do not enlarge the design.
        d = sum(1 for dim in space.dims if varies(dim))
        self.num_initial = self.opts.num_initial if self.opts.num_initial is not None else min(2 * d, 10)
        #: the initial design, a function of the seed alone (so a resumed searcher has the same one).
        self.design = latin_hypercube(space, self.num_initial, np.random.default_rng([seed, 1]))
        #: every output the acquisition sees: the objectives, then constraint metrics that are not objectives.
        self.outputs: tuple[str, ...] = tuple(dict.fromkeys([*objectives.metrics, *(c.metric for c in self.constraints)]))
        probe = space.metrics(space.sample(np.random.default_rng(seed)))
        #: outputs the space computes exactly; the rest are measured and modelled.
        self.known = () if self.opts.model_known else tuple(m for m in self.outputs if m in probe)
        #: (config, the outputs a completed trial reported) for every trial that reported all objectives.
        self.measured: list[tuple[Config, dict[str, float]]] = []
        self.suggestions = 0
        #: config key -> the space's analytic metrics (a pure cache, rebuilt after a resume).
        self._analytic: dict[str, dict[str, float]] = {}
        #: config key -> the space's network key (a pure cache).
        self._networks: dict[str, str] = {}
        #: encoded points whose known outputs are computed: their hash codes and values (a pure cache).
        self._hash: torch.Tensor | None = None
        self._known_codes = torch.zeros(0, dtype=DTYPE)
        self._known_table = torch.zeros(0, len(self.known), dtype=DTYPE)

    # ---- the runner's side -------------------------------------------------------------------------
    def propose(self, trial_id: str) -> Config | Finished:
        self.suggestions += 1
        # The design is counted in suggestions, not results: counted in results, every worker in flight
        # when the last design point ends would add a random trial (11 instead of 8 with 4 workers).
        # The model then starts with the results that are in, and the rest of the design is pending.
        if self.suggestions <= self.num_initial:
            return self._design_point(self.design[self.suggestions - 1])
        # host_busy: the fit and the acquisition take the cores trials on this host time forwards on.
        with self._seeded(), host_busy():
            try:
                config = self._best_candidate()
            except Exception as exc:  # a numerical failure must not stop the study
                logger.warning("botorch_mobo: suggestion failed (%s: %s); proposing a random configuration",
                               type(exc).__name__, exc)
                config = None
        return config if config is not None else self.random_fresh()

    def _design_point(self, config: Config) -> Config:
        """The design's configuration, or a random one when it cannot be built, breaks an analytic
        constraint or builds a network already tried (SMALL's 0 layers with other heads)."""
        seen = {self.network(c) for c in self.pending.values()} | {self.network(c) for _, c, _ in self.history}
        if self.space.is_valid(config) and self.network(config) not in seen and feasible(self.constraints, self.analytic(config)):
            return config
        return self.random_fresh()

    def observe(
        self, trial_id: str, config: Config, values: list[float] | None, metrics: Mapping[str, float] | None
    ) -> None:
        # Infeasible trials (values None, objectives present) still teach the constraint models.
        if metrics is None or not self.objectives.has_values(metrics):
            return
        kept = {m: float(metrics[m]) for m in self.outputs if m in metrics and math.isfinite(float(metrics[m]))}
        self.measured.append((dict(config), kept))

    # ---- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "measured": [[c, m] for c, m in self.measured],
            "suggestions": self.suggestions,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.measured = [(dict(c), {k: float(v) for k, v in m.items()}) for c, m in state["measured"]]
        self.suggestions = int(state["suggestions"])

    # ---- the model and the acquisition -----------------------------------------------------------
    @contextmanager
    def _seeded(self) -> Iterator[None]:
        """A fresh torch stream per suggestion (restorable from the count) and, when asked, one thread."""
        threads = torch.get_num_threads()
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fitting warnings on tiny data sets; a failure falls back to random
            torch.manual_seed(self.seed * 1_000_003 + self.suggestions)
            if self.opts.torch_threads:
                torch.set_num_threads(self.opts.torch_threads)
            try:
                yield
            finally:
                torch.set_num_threads(threads)

    def analytic(self, config: Mapping[str, Any]) -> dict[str, float]:
        key = config_key(config)
        if key not in self._analytic:
            self._analytic[key] = self.space.metrics(config)
        return self._analytic[key]

    def network(self, config: Mapping[str, Any]) -> str:
        """The network a configuration builds: configurations that build one network (SMALL's 0 layers
        with any heads) are one candidate, else the model keeps trying the same network in new clothes."""
        key = config_key(config)
        if key not in self._networks:
            self._networks[key] = self.space.network_key(config)
        return self._networks[key]

    def _encode(self, configs: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        return torch.tensor(np.array([self.space.to_unit(c) for c in configs]), dtype=DTYPE).reshape(len(configs), -1)

    def _known_values(self, X: torch.Tensor) -> torch.Tensor:
        """The known outputs at X (... x d) -> (... x len(known)), computed by the space.

        qLogNEHVI evaluates every candidate jointly with the whole baseline, so this sees tens of
        thousands of rows per suggestion, all of them encodings of a few thousand configurations:
        rows are matched to a table of encoded points by a hash (a random projection) and only
        rows never seen are decoded and computed."""
        flat = X.reshape(-1, X.shape[-1])
        codes = flat @ self._projection(flat.shape[-1])
        self._remember(flat[~torch.isin(codes, self._known_codes)])
        order = torch.argsort(self._known_codes)
        index = order[torch.searchsorted(self._known_codes[order], codes).clamp(max=len(order) - 1)]
        return self._known_table[index].reshape(*X.shape[:-1], len(self.known)).to(X)

    def _projection(self, d: int) -> torch.Tensor:
        if self._hash is None or len(self._hash) != d:
            self._hash = torch.rand(d, generator=torch.Generator().manual_seed(12345), dtype=DTYPE) + 0.5
        return self._hash

    def _remember(self, rows: torch.Tensor) -> None:
        """Compute the known outputs of encoded configurations not yet in the table."""
        if len(rows) == 0:
            return
        rows = torch.unique(rows, dim=0)
        values = [[self.analytic(from_unit(self.space, u))[m] for m in self.known] for u in rows.tolist()]
        self._known_codes = torch.cat([self._known_codes, rows @ self._projection(rows.shape[-1])])
        self._known_table = torch.cat([self._known_table, torch.tensor(values, dtype=DTYPE).reshape(len(rows), -1)])

    def model(self) -> Model | None:
        """One model per output, in `self.outputs` order; None when a measured output has too little data."""
        models: list[Model] = []
        for name in self.outputs:
            if name in self.known:
                i = self.known.index(name)
                models.append(GenericDeterministicModel(lambda X, i=i: self._known_values(X)[..., i : i + 1]))
                continue
            rows = [(c, m[name]) for c, m in self.measured if name in m]
            if len(rows) < 2:
                return None
            X = self._encode([c for c, _ in rows])
            Y = torch.tensor([[y] for _, y in rows], dtype=DTYPE)
            # Every fit starts from the priors, not from the last fit: started from the last one, a fit
            # can stay in the basin of hyperparameters fitted to the first handful of results, before
            # the design has shown which dimensions matter.
            models.append(fit_gp(X, Y, self.opts.kernel, self.opts.input_warping))
        return ModelList(*models)

    def _scales(self) -> torch.Tensor:
        """Per-output scale (observed spread, 1 when flat) so smoothing constants act alike on
        accuracy and on millions of parameters."""
        out = []
        for name in self.outputs:
            if name in self.known:
                values = [self.analytic(c)[name] for c, _ in self.measured]
            else:
                values = [m[name] for _, m in self.measured if name in m]
            spread = float(np.std(values)) if len(values) > 1 else 0.0
            out.append(spread if spread > 0 else max(abs(float(np.mean(values or [1.0]))), 1.0))
        return torch.tensor(out, dtype=DTYPE)

    def _acquisition(self) -> qLogNoisyExpectedHypervolumeImprovement | None:
        model = self.model()
        if model is None:
            return None
        points = np.array([h[2] for h in self.history if h[2] is not None]).reshape(-1, len(self.objectives))
        ref = self.objectives.ref_point(points if len(points) else None)
        if ref is None:
            return None
        scale = self._scales()
        n_obj = len(self.objectives)
        # Maximise form, scaled: BoTorch maximises; `sign` is +1 for a minimised objective.
        sign = torch.tensor([o.sign for o in self.objectives.items], dtype=DTYPE)
        weight = -sign / scale[:n_obj]
        objective = GenericMCMultiOutputObjective(lambda Z, X=None: Z[..., :n_obj] * weight)
        constraints = [self._constraint(c, float(scale[self.outputs.index(c.metric)])) for c in self.constraints]
        baseline = self._encode([c for c, _ in self.measured])
        # QMC normal samples for the GPs, the exact value for the known outputs.
        sampler = get_sampler(model.posterior(baseline), sample_shape=torch.Size([self.opts.mc_samples]))
        pending = self._encode(list(self.pending.values())) if self.pending else None
        return qLogNoisyExpectedHypervolumeImprovement(
            model=model,
            ref_point=(torch.tensor(ref, dtype=DTYPE) * weight).tolist(),
            X_baseline=baseline,
            objective=objective,
            constraints=constraints or None,
            X_pending=pending,
            prune_baseline=False,
            cache_root=False,
            sampler=sampler,
        )

    def _constraint(self, c: Constraint, scale: float) -> Any:
        """BoTorch's form: a callable of the outputs that is <= 0 where the constraint holds."""
        i = self.outputs.index(c.metric)
        if c.op == "<=":
            return lambda Z: (Z[..., i] - c.bound) / scale
        return lambda Z: (c.bound - Z[..., i]) / scale

    def _candidates(self) -> list[Config]:
        """Random configurations and mutations of the current front that build a network not yet
        tried and meet the analytic constraints."""
        seen = {self.network(c) for c in self.pending.values()} | {self.network(c) for _, c, _ in self.history}
        pool = [self.space.sample(self.rng) for _ in range(self.opts.num_candidates)]
        feasible_rows = [(c, v) for _, c, v in self.history if v is not None]
        if feasible_rows and self.opts.mutations_per_front_point:
            values = torch.tensor([v for _, v in feasible_rows], dtype=DTYPE)
            front = is_non_dominated(-values).tolist()
            for (config, _), on_front in zip(feasible_rows, front):
                if on_front:
                    pool += [self.space.mutate(config, self.rng) for _ in range(self.opts.mutations_per_front_point)]
        out: dict[str, Config] = {}
        for config in pool:
            key = self.network(config)
            if key not in seen and key not in out and feasible(self.constraints, self.analytic(config)):
                out[key] = config
        return list(out.values())

    def _best_candidate(self) -> Config | None:
        candidates = self._candidates()
        if not candidates:
            return None
        acquisition = self._acquisition()
        if acquisition is None:
            return None
        X = self._encode(candidates)
        with torch.no_grad():
            scores = torch.cat([acquisition(chunk.unsqueeze(-2)) for chunk in X.split(512)])
        if not torch.isfinite(scores).any():
            return None
        return candidates[int(torch.nan_to_num(scores, nan=-math.inf).argmax())]
