"""The Optuna searchers: the encoding of every dimension kind, repeats answered from stored results,
pending trials visible to the sampler, constraints told as Optuna's constraint values, options passed
to the sampler, the journal in the saved state, and one line naming the extra when Optuna is missing."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from orchestrator.errors import StudyError  # noqa: E402
from orchestrator.objectives import Constraint, Objective, Objectives  # noqa: E402
from orchestrator.searchers.optuna_samplers import (  # noqa: E402
    OptunaCodec,
    OptunaNSGA2Searcher,
    OptunaRandomSearcher,
    OptunaTPESearcher,
)
from orchestrator.study import parse_study  # noqa: E402
from search_spaces.synthetic import SyntheticSpace  # noqa: E402
from tests.unit.mixed_space import MixedSpace  # noqa: E402
from trainers.synthetic import objectives  # noqa: E402

OBJECTIVES = Objectives((Objective("f1"), Objective("f2")))


def zdt1(space: SyntheticSpace, config: Mapping[str, Any]) -> dict[str, float]:
    f = objectives("zdt1", np.array(space.point(dict(config))))
    return {"f1": float(f[0]), "f2": float(f[1])}


def run(searcher: Any, space: SyntheticSpace, n: int) -> list[dict[str, Any]]:
    """Trials t0..t(n-1) one at a time; their configurations."""
    configs = []
    for i in range(n):
        configs.append(searcher.suggest(f"t{i}"))
        searcher.on_trial_complete(f"t{i}", zdt1(space, configs[-1]))
    return configs


def key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def test_every_dimension_kind_round_trips() -> None:
    space = MixedSpace()
    codec = OptunaCodec(space)
    d = codec.distributions
    assert set(d) == {"layers", "ffn", "tokens", "dropout", "lr", "act", "heads"}  # single values stay out
    assert (d["ffn"].low, d["ffn"].high, d["ffn"].step) == (64, 512, 64)
    assert d["tokens"].log and d["lr"].log and not d["dropout"].log
    assert isinstance(d["act"], optuna.distributions.CategoricalDistribution)  # unordered: a category
    assert isinstance(d["heads"], optuna.distributions.IntDistribution)  # ordered: an index Optuna can order
    rng = np.random.default_rng(0)
    for _ in range(50):
        config = space.sample(rng)
        params = codec.encode(config)
        assert all(d[name]._contains(d[name].to_internal_repr(v)) for name, v in params.items())
        assert codec.decode(params) == config


def test_a_repeat_is_answered_from_the_stored_result_not_handed_out() -> None:
    """Nine configurations; random proposals repeat early (the birthday problem), yet the nine
    suggestions are all different, and every repeat Optuna proposed got its twin's values."""
    space = SyntheticSpace(num_dims=2, grid=3)
    searcher = OptunaRandomSearcher(space, OBJECTIVES, seed=0, max_repeats=50)
    assert len({key(c) for c in run(searcher, space, 9)}) == 9
    trials = searcher.optuna_trials()
    ran = {key(space.normalise(OptunaCodec(space).decode(t.params))): t.values for t in trials if "trial_id" in t.user_attrs}
    repeats = [t for t in trials if "trial_id" not in t.user_attrs]
    assert len(ran) == 9 and len(repeats) > 0
    for t in repeats:
        assert t.state == TrialState.COMPLETE
        assert t.values == ran[key(space.normalise(OptunaCodec(space).decode(t.params)))]


def test_a_repeat_of_a_running_trial_gets_its_result_when_it_ends() -> None:
    space = SyntheticSpace(num_dims=2, grid=2)  # four configurations
    searcher = OptunaRandomSearcher(space, OBJECTIVES, seed=1, max_repeats=50)
    running = {f"t{i}": searcher.suggest(f"t{i}") for i in range(3)}
    first = searcher.suggest("t3")
    assert len({key(c) for c in [*running.values(), first]}) == 4
    waiting = [t for t in searcher.optuna_trials() if "repeat_of" in t.user_attrs]
    assert waiting and all(t.state == TrialState.RUNNING for t in waiting)
    for trial_id, config in running.items():
        searcher.on_trial_complete(trial_id, zdt1(space, config))
    by_number = {t.number: t for t in searcher.optuna_trials()}
    for t in waiting:
        assert by_number[t.number].state == TrialState.COMPLETE
        assert by_number[t.number].values == by_number[t.user_attrs["repeat_of"]].values


def test_pending_trials_are_running_in_optunas_study() -> None:
    space = SyntheticSpace(num_dims=3)
    searcher = OptunaTPESearcher(space, OBJECTIVES, seed=0, n_startup_trials=2)
    run(searcher, space, 3)
    for i in range(3, 7):
        searcher.suggest(f"t{i}")
    states = {t.user_attrs["trial_id"]: t.state for t in searcher.optuna_trials() if "trial_id" in t.user_attrs}
    assert [s for t, s in sorted(states.items()) if t in searcher.pending] == [TrialState.RUNNING] * 4
    assert sum(s == TrialState.COMPLETE for s in states.values()) == 3


def test_a_broken_constraint_is_an_infeasible_result_for_optuna() -> None:
    """`f2 <= 4` (known only after training): the base history counts a breaking trial as failed, the
    sampler gets its objectives and a positive constraint value (feasible trials: <= 0)."""
    space = SyntheticSpace(num_dims=3)
    searcher = OptunaNSGA2Searcher(space, OBJECTIVES, [Constraint.parse("f2 <= 4")], seed=0, population_size=4)
    run(searcher, space, 8)
    told = {t.user_attrs["trial_id"]: t for t in searcher.optuna_trials() if "trial_id" in t.user_attrs}
    for trial_id, _, values in searcher.history:
        t = told[trial_id]
        assert t.state == TrialState.COMPLETE
        violation = t.constraints["f2 <= 4"]
        assert violation == pytest.approx(t.values[1] - 4.0)
        assert (values is None) == (violation > 0)
    assert any(v is None for _, _, v in searcher.history) and any(v is not None for _, _, v in searcher.history)


def test_options_reach_the_sampler_or_fail_in_one_line() -> None:
    space = SyntheticSpace(num_dims=2)
    with pytest.raises(ValueError, match="unknown optuna_tpe option 'restarts'; allowed: max_repeats, .*n_startup_trials"):
        OptunaTPESearcher(space, OBJECTIVES, restarts=2)
    with pytest.raises(ValueError, match="'max_repeats' must be an integer >= 1"):
        OptunaTPESearcher(space, OBJECTIVES, max_repeats=0)
    with pytest.raises(ValueError, match="option 'multivariate' must be true or false, got 'maybe'"):
        OptunaTPESearcher(space, OBJECTIVES, multivariate="maybe")
    with pytest.raises(ValueError, match="unknown optuna_nsga2 option 'mutation'"):  # an object, not for a study file
        OptunaNSGA2Searcher(space, OBJECTIVES, mutation="uniform")
    with pytest.raises(ValueError, match="population_size"):  # Optuna's own check of the value
        OptunaNSGA2Searcher(space, OBJECTIVES, population_size=1)
    searcher = OptunaTPESearcher(space, OBJECTIVES, multivariate=False, n_startup_trials=3)
    assert dict(searcher.opts.sampler) == {"multivariate": False, "constant_liar": True, "n_startup_trials": 3}


def test_the_saved_state_is_optunas_journal_and_continues_it() -> None:
    space = SyntheticSpace(num_dims=3)
    original = OptunaTPESearcher(space, OBJECTIVES, seed=4, n_startup_trials=3)
    run(original, space, 5)
    in_flight = original.suggest("p")
    state = json.loads(json.dumps(original.state_dict()))
    assert state["journal"] and all("op_code" in record for record in state["journal"])
    resumed = OptunaTPESearcher(space, OBJECTIVES, seed=4, n_startup_trials=3)
    resumed.load_state_dict(state)
    assert [(t.number, t.state, t.params, t.values) for t in resumed.optuna_trials()] == \
        [(t.number, t.state, t.params, t.values) for t in original.optuna_trials()]
    for searcher in (original, resumed):
        searcher.on_trial_complete("p", zdt1(space, in_flight))
    assert original.suggest("n") == resumed.suggest("n")


def test_a_study_without_optuna_fails_validation_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now fails as if it were not installed
    monkeypatch.delitem(sys.modules, "orchestrator.searchers.optuna_samplers")
    spec = {
        "name": "no-optuna", "storage": str(tmp_path), "search_space": {"name": "synthetic", "options": {}},
        "trainer": {"kind": "synthetic", "options": {}}, "objectives": [{"metric": "f1"}, {"metric": "f2"}],
        "searcher": {"name": "optuna_tpe", "options": {}}, "budget": {"num_trials": 2},
    }
    with pytest.raises(StudyError) as error:
        parse_study(spec)  # what `lmnas validate` and `lmnas run` do first
    assert len(str(error.value).splitlines()) == 1
    assert str(error.value).startswith("searcher.name: ") and "pip install 'lmnas[optuna]'" in str(error.value)
