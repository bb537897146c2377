"""The synthetic trainer: known test problems, fidelity that converges, injected failures."""
from __future__ import annotations

import numpy as np
import pytest

from search_spaces.synthetic import SyntheticSpace
from trainers.contract import TrialContext, collect_reports
from trainers.synthetic import InjectedFailure, objectives, train


def test_zdt1_front_and_dtlz2_sphere() -> None:
    x = np.array([0.25, 0, 0, 0])
    np.testing.assert_allclose(objectives("zdt1", x), [0.25, 0.5])
    y = np.array([0.3, 0.7, 0.5, 0.5])
    f = objectives("dtlz2", y, 3)
    assert np.sum(f**2) == pytest.approx(1.0)  # on the Pareto front when the tail is 0.5


def test_fidelity_converges_to_the_true_values() -> None:
    space = SyntheticSpace(4)
    config = {"x0": 0.25, "x1": 0.0, "x2": 0.0, "x3": 0.0}
    seen, report = collect_reports()
    final = train(TrialContext("t", config, space, {"steps": 4}), report)
    assert [r["step"] for r in seen] == [1, 2, 3, 4]
    assert final["f1"] == pytest.approx(0.25) and final["f2"] == pytest.approx(0.5)
    gaps = [abs(r["f2"] - 0.5) for r in seen]
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0


def test_injected_failures_are_deterministic_per_configuration() -> None:
    space = SyntheticSpace(3, grid=5)
    ctx = TrialContext("t", {"x0": 0, "x1": 1, "x2": 2}, space, {"fail_below_x0": 0.1})
    with pytest.raises(InjectedFailure):
        train(ctx, collect_reports()[1])
    outcomes = []
    for i in range(40):
        config = space.sample(np.random.default_rng(i))
        try:
            train(TrialContext("t", config, space, {"fail_probability": 0.5, "steps": 2}), collect_reports()[1])
            outcomes.append(True)
        except InjectedFailure:
            outcomes.append(False)
    assert 5 < sum(outcomes) < 35
