"""The statistics and the picks of `lmnas calibrate`, on hand-made numbers."""
from __future__ import annotations

import pandas as pd
import pytest

from types import SimpleNamespace

from orchestrator.calibrate import off_front, pick_trials
from orchestrator.calibration import compare
from orchestrator.study_page import calibration_section
from search_spaces.pruning import SmallSpace
from trainers.contract import FinishedTrial


def trial(tid: str) -> FinishedTrial:
    return FinishedTrial(tid, {"x": 1}, {"accuracy": 0.5})


def test_picks_spread_over_the_front_and_off_it_seeded() -> None:
    front = [trial(f"f{i}") for i in range(6)]
    others = [trial(f"o{i}") for i in range(10)]
    picked = pick_trials(front, others, 8, seed=0)
    assert [t.trial_id for t in picked[:4]] == ["f0", "f1", "f2", "f3"]  # the front's spread order first
    assert len(picked) == 8 and all(t.trial_id.startswith("o") for t in picked[4:])
    assert picked == pick_trials(front, others, 8, seed=0) != pick_trials(front, others, 8, seed=1)
    assert [t.trial_id for t in pick_trials(front, others[:2], 8, seed=0)][:6] == [f"f{i}" for i in range(6)]
    assert len(pick_trials(front[:1], others[:1], 8, seed=0)) == 2  # fewer trials than asked: all of them


def test_off_the_front_each_network_is_offered_once() -> None:
    # With 0 layers the heads and units build nothing: these three trials are one network.
    space = SmallSpace()
    zero = [FinishedTrial(f"z{h}", {"num_layers": 0, "num_heads": h, "num_units": 64}, {"accuracy": 0.6})
            for h in (1, 4, 11)]
    front = [FinishedTrial("f", {"num_layers": 2, "num_heads": 4, "num_units": 64}, {"accuracy": 0.8}), zero[0]]
    other = FinishedTrial("o", {"num_layers": 3, "num_heads": 4, "num_units": 64}, {"accuracy": 0.7})
    twin = FinishedTrial("o2", {"num_layers": 3, "num_heads": 4, "num_units": 64}, {"accuracy": 0.7})
    ctx = SimpleNamespace(space=space, front=front, trials=[*front, zero[1], other, zero[2], twin])
    assert [t.trial_id for t in off_front(ctx)] == ["o"]  # type: ignore[arg-type]


def test_rank_agreement_and_top_k_overlap() -> None:
    rows = pd.DataFrame({"proxy_accuracy": [0.5, 0.6, 0.7, 0.8], "standalone_accuracy": [0.55, 0.65, 0.75, 0.85],
                         "proxy_loss": [0.9, 0.8, 0.7, 0.6], "standalone_loss": [0.6, 0.7, 0.8, 0.9],
                         "trial_id": ["a", "b", "c", "d"]})
    stats = compare(rows, [("accuracy", -1.0), ("loss", 1.0)], top_k=2)
    assert stats["accuracy"]["kendall_tau"] == pytest.approx(1.0) and stats["accuracy"]["top_k_overlap"] == 1.0
    assert stats["loss"]["kendall_tau"] == pytest.approx(-1.0) and stats["loss"]["top_k_overlap"] == 0.0
    assert stats["accuracy"]["spearman_rho"] == pytest.approx(1.0) and stats["accuracy"]["n"] == 4
    from orchestrator.calibration import Calibration

    html = calibration_section(Calibration(rows, stats))
    assert 'id="calibration"' in html and html.count("<circle") == 4 and "Kendall tau 1.000" in html
    assert calibration_section(None) == ""
