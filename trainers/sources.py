"""Cheap checks of the models and data a trainer's options name, so a study fails at `lmnas
validate` (before Ray starts) instead of seconds into its first stage.

A local model folder must hold `config.json`; a local data file or folder must exist and its files
must have the columns the option needs: `text` and `label` for a task (`task`: a classification data
source), `text` for a corpus (`corpus`). Only headers are read. Asset names are checked when they
are used (they may not be fetched yet); hub names cannot be checked offline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from trainers.assets import ASSETS
from trainers.data import LOCAL_SUFFIXES, SPLIT_ALIASES, SPLITS, DataError, load_model_dir, looks_local

#: option fields naming a model, and data fields with the columns their files need.
MODEL_FIELDS = ("model", "teacher")
DATA_FIELDS = {"task": ("text", "label"), "corpus": ("text",)}


def is_local(source: Any) -> bool:
    return isinstance(source, str) and source not in ASSETS and (looks_local(source) or Path(source).expanduser().exists())


def check_sources(options: Any) -> None:
    """A DataError naming the option and the problem for the first local model or data source that is wrong."""
    for name in MODEL_FIELDS:
        source = getattr(options, name, None)
        if is_local(source):
            try:
                load_model_dir(source)
            except DataError as e:
                raise DataError(f"option {name!r}: {e}") from None
    for name, columns in DATA_FIELDS.items():
        source = getattr(options, name, None)
        if is_local(source):
            check_data(name, Path(source).expanduser(), columns)


def check_data(option: str, path: Path, columns: tuple[str, ...]) -> None:
    if not path.exists():
        raise DataError(f"option {option!r}: no file or folder at {str(path)!r}")
    files = [path] if path.is_file() else [p for p in sorted(path.iterdir())
                                           if p.suffix in LOCAL_SUFFIXES and SPLIT_ALIASES.get(p.stem, p.stem) in SPLITS]
    if not files:
        raise DataError(f"option {option!r}: folder {str(path)!r} has no train / validation / test file with a "
                        f"suffix in {', '.join(LOCAL_SUFFIXES)}")
    for file in files:
        found = header(file)
        missing = [c for c in columns if c not in found]
        if missing:
            raise DataError(f"option {option!r}: {str(file)!r} has no {missing[0]!r} column (it has "
                            f"{', '.join(map(str, found)) or 'none'}); a {option} needs columns {' and '.join(columns)}")


def header(path: Path) -> list[str]:
    """The column names of a data file, reading as little of it as its format allows."""
    suffix = path.suffix
    try:
        if suffix in (".csv", ".tsv"):
            return list(pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", nrows=0).columns)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if suffix in (".json", ".jsonl"):
            first = path.read_text(encoding="utf-8").lstrip()[:1]
            return list(pd.read_json(path, lines=first != "[", nrows=1 if first != "[" else None).columns)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {str(path)!r}: {' '.join(str(e).split())[:200]}") from None
    return ["text"]  # .txt: one text per line
