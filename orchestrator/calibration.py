"""The results of `lmnas calibrate` (orchestrator/calibrate.py): the files, their statistics, and
reading them back for the report.

Ranking agreement between the proxy a search used and standalone training: Kendall's tau and
Spearman's rho (scipy.stats) with p-values, and the overlap of the top k by each.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from orchestrator.study import Study

CALIBRATION_CSV = "calibration.csv"
CALIBRATION_JSON = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """The statistics of one calibration, per metric compared (the first is the headline)."""

    rows: pd.DataFrame
    stats: dict[str, dict[str, float]]

    @property
    def headline(self) -> str:
        if not self.stats:
            return "no metric to compare"
        metric, s = next(iter(self.stats.items()))
        return (f"{metric}: Kendall tau {s['kendall_tau']:.3f} (p {s['kendall_p']:.3g}), Spearman rho "
                f"{s['spearman_rho']:.3f} (p {s['spearman_p']:.3g}), top-{int(s['top_k'])} overlap "
                f"{s['top_k_overlap']:.2f} over {int(s['n'])} trials")


def compare(rows: pd.DataFrame, metrics: Sequence[tuple[str, float]], top_k: int) -> dict[str, dict[str, float]]:
    """Rank agreement of proxy and standalone values per (metric, sign): `sign` turns a value into
    minimise form, as `Objective.sign` does (+1 when smaller is better)."""
    from scipy.stats import kendalltau, spearmanr

    out: dict[str, dict[str, float]] = {}
    for metric, sign in metrics:
        proxy, alone = rows[f"proxy_{metric}"].to_numpy(float), rows[f"standalone_{metric}"].to_numpy(float)
        if len(rows) < 3 or np.ptp(proxy) == 0 or np.ptp(alone) == 0:
            continue
        tau, tau_p = kendalltau(proxy, alone)
        rho, rho_p = spearmanr(proxy, alone)
        k = min(top_k, len(rows))
        best_proxy = set(np.argsort(sign * proxy)[:k])
        best_alone = set(np.argsort(sign * alone)[:k])
        out[metric] = {"kendall_tau": float(tau), "kendall_p": float(tau_p), "spearman_rho": float(rho),
                       "spearman_p": float(rho_p), "top_k": float(k),
                       "top_k_overlap": len(best_proxy & best_alone) / k, "n": float(len(rows))}
    return out


def compared_metrics(study: Study, rows: pd.DataFrame) -> list[tuple[str, float]]:
    """Metrics with both values, the study's objectives first (their sense), then the rest
    (`loss`-like names smaller-is-better)."""
    both = [c[len("standalone_"):] for c in rows.columns if c.startswith("standalone_") and c != "standalone_cost_s"
            and f"proxy_{c[len('standalone_'):]}" in rows.columns and rows[f"proxy_{c[len('standalone_'):]}"].notna().all()]
    signs = {o.metric: o.sign for o in study.objectives.items}
    ordered = [m for m in signs if m in both] + [m for m in both if m not in signs]
    return [(m, signs.get(m, 1.0 if "loss" in m else -1.0)) for m in ordered]


def load_calibration(directory: Path) -> Calibration | None:
    """The calibration stored in a study directory, or None when it has not been calibrated (or is mid-way)."""
    csv_path, json_path = Path(directory) / CALIBRATION_CSV, Path(directory) / CALIBRATION_JSON
    if not (csv_path.exists() and json_path.exists()):
        return None
    stats = json.loads(json_path.read_text()).get("stats")
    if not stats:
        return None
    return Calibration(pd.read_csv(csv_path, dtype={"trial_id": str}), stats)
