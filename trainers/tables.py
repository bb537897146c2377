"""Result tables a hook writes into the study directory: whole files only, so a reader (`lmnas status`,
the study page, a copy to the study's URI) never sees half of one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd


def save_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` to `path` (.parquet or .csv) under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def append_rows(path: Path, frame: pd.DataFrame, key: Sequence[str]) -> Path:
    """Add `frame` to the parquet table at `path`, replacing earlier rows with the same `key` values."""
    if path.is_file():
        old = pd.read_parquet(path)
        keep = ~old.set_index(list(key)).index.isin(frame.set_index(list(key)).index)
        frame = pd.concat([old[keep], frame], ignore_index=True)
    return save_table(frame, path)
