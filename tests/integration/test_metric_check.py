"""A study whose trials complete without one of its objectives' metrics stops at the first such trial
with one line naming the metric, instead of spending its budget on trials that cannot enter the front."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from orchestrator.errors import StudyError
from orchestrator.study import parse_study
from tests.integration.conftest import RayHead

pytestmark = pytest.mark.integration


def test_a_run_whose_trials_lack_an_objective_stops_at_once(tmp_path: Path, cluster_client: RayHead,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the bypassed validation lets this study start, as for a trainer that declares no METRICS."""
    from orchestrator import run

    monkeypatch.setattr(run, "check_trainer", lambda study, space: None)
    study = parse_study({"name": "lacks", "storage": str(tmp_path), "search_space": {"name": "synthetic"},
                         "trainer": {"kind": "synthetic", "options": {"step_seconds": 0.2}},
                         "objectives": [{"metric": "f1"}, {"metric": "g"}],
                         "budget": {"num_trials": 20, "max_concurrent": 1}}, check_plugins=False)
    with pytest.raises(StudyError, match=r"^objectives: trial \S+ finished without the objective's metric 'g' "
                                         r"\(it reported f1, f2, step\)"):
        run.run_study(study, address=cluster_client.address, progress=False)
    trials = pd.read_parquet(tmp_path / "lacks" / "trials.parquet")
    assert len(trials) < 5, trials[["trial_id", "status"]]
    assert not (tmp_path / "lacks" / "export").exists()
