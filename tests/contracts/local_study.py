"""A small synthetic study on the in-process backend, for the contract tests: each plug-in is
exercised through the calls a real run makes (orchestrator/local_backend.py), not a loop of our own."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.run import run_study
from orchestrator.study import parse_study
from tests.contracts.plugin_options import SCHEDULER_OPTIONS, SEARCHER_OPTIONS


def local_study(tmp_path: Path, trainer: dict[str, Any], num_trials: int, searcher: str = "random",
                scheduler: str = "fifo", seed: int = 0) -> tuple[pd.DataFrame, Path]:
    """Run a ZDT1 study over a 4-dimensional grid in this process; its trials (in start order) and directory."""
    study = parse_study({
        "name": f"{searcher}-{scheduler}", "storage": str(tmp_path), "seed": seed,
        "search_space": {"name": "synthetic", "options": {"num_dims": 4, "grid": 11}},
        "trainer": {"kind": "synthetic", "options": {"problem": "zdt1", **trainer}},
        "objectives": [{"metric": "f1", "ref": 1.1}, {"metric": "f2", "ref": 11}],
        "searcher": {"name": searcher, "options": SEARCHER_OPTIONS.get(searcher, {})},
        "scheduler": {"name": scheduler, "options": SCHEDULER_OPTIONS.get(scheduler, {})},
        "budget": {"num_trials": num_trials},
    })
    run_study(study, progress=False, backend="local")
    trials = pd.read_parquet(study.directory / "trials.parquet")
    return trials.sort_values("started_at", kind="stable").reset_index(drop=True), study.directory
