"""The `tabular` trainer: replay a frozen table of evaluated configurations instead of training.

A table (csv or parquet) has one row per configuration: a column per search-space dimension,
the metrics measured for it, and, for a metric `m` with a cheaper fidelity, a column `m_low`
(e.g. `accuracy_low`, the accuracy on a quarter of the validation data). A trial reports the
low-fidelity row at `step` 1, then the full row at `step` 2, so MO-ASHA can stop it after the
first; metrics without a `_low` column (parameters, FLOPs) are the same at both. A search
benchmark then costs lookups, not training (`benchmarks/make_subnet_table.py` makes the table of
real sub-network evaluations, `benchmarks/search_efficiency.py` replays it).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from search_spaces.base import SearchSpace, to_python
from trainers.options import build_options
from trainers.contract import Metrics, Report, TrainerError, TrialContext

LOW = "_low"
SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class TabularOptions:
    #: the table: a csv or parquet file (relative paths are read from the working directory).
    table: str = ""
    #: the reported metric that counts fidelity (1: low, 2: full).
    fidelity: str = "step"
    #: seconds to wait before each report, to make a replayed trial take time like a real one.
    step_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.table or not self.table.endswith(SUFFIXES):
            raise ValueError(f"option 'table' must name a .csv or .parquet file of evaluated configurations "
                             f"(e.g. benchmarks/data/subnet_table_minilm_movie_reviews.csv), got {self.table!r}")
        if not self.fidelity:
            raise ValueError("option 'fidelity' must be a metric name, e.g. 'step'")
        if not math.isfinite(self.step_seconds) or self.step_seconds < 0:
            raise ValueError(f"option 'step_seconds' must be >= 0, got {self.step_seconds}")


OPTIONS = TabularOptions


def METRICS(opts: TabularOptions, space: SearchSpace) -> tuple[str, ...]:  # noqa: N802  the contract's name
    """The table's metric columns (from its header; `_low` columns stand in for theirs) and the fidelity."""
    columns = table_columns(opts.table)
    keys = {d.name for d in space.dims}
    return (*(c for c in columns if c not in keys and not c.endswith(LOW)), opts.fidelity)


@dataclass(frozen=True)
class Table:
    """A loaded table: rows by configuration key (the space's values in dimension order)."""

    path: Path
    keys: tuple[str, ...]
    rows: dict[tuple[Any, ...], dict[str, float]]

    def lookup(self, arch: Mapping[str, Any]) -> dict[str, float]:
        row = self.rows.get(tuple(to_python(arch[k]) for k in self.keys))
        if row is None:
            raise TrainerError(f"configuration {dict(arch)} is not in the table {self.path} ({len(self.rows)} rows); "
                               f"search the space the table enumerates")
        return row


#: tables this process has read, by (resolved path, modification time, key columns).
_TABLES: dict[tuple[str, int, tuple[str, ...]], Table] = {}


def table_file(path: str | Path) -> Path:
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise TrainerError(f"option 'table': {path} does not exist; make it with benchmarks/make_subnet_table.py "
                           f"or point to an existing table")
    return file


def table_columns(path: str | Path) -> list[str]:
    """The column names of a table, read from its header only."""
    file = table_file(path)
    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [n for n in pq.read_schema(file).names if not n.startswith("__index_level_")]
    return list(pd.read_csv(file, nrows=0).columns)


def load_table(path: str | Path, space: SearchSpace) -> Table:
    """The table at `path`, keyed by `space`'s dimensions (read once per process and file version)."""
    file = table_file(path)
    keys = tuple(d.name for d in space.dims)
    cache_key = (str(file), file.stat().st_mtime_ns, keys)
    if cache_key not in _TABLES:
        frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            raise TrainerError(f"table {file} lacks the columns {missing} of the {space.name!r} search space; "
                               f"its columns are {list(frame.columns)}")
        metrics = [c for c in frame.columns if c not in keys]
        rows = {tuple(to_python(r[k]) for k in keys): {c: float(r[c]) for c in metrics}
                for r in frame.to_dict("records")}
        _TABLES[cache_key] = Table(file, keys, rows)
    return _TABLES[cache_key]


def fidelities(row: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(low-fidelity metrics, full metrics) of one row: `m_low` stands in for `m` at low fidelity."""
    full = {k: v for k, v in row.items() if not k.endswith(LOW)}
    low = {k: row.get(k + LOW, v) for k, v in full.items()}
    return low, full


def train(ctx: TrialContext, report: Report) -> Metrics:
    opts = build_options(TabularOptions, ctx.options)
    ctx.space.check(ctx.arch)
    low, full = fidelities(load_table(opts.table, ctx.space).lookup(ctx.arch))
    for step, metrics in ((1, low), (2, full)):
        if opts.step_seconds:
            time.sleep(opts.step_seconds)
        report({**metrics, opts.fidelity: step})
    return {**full, opts.fidelity: 2}
