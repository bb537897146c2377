"""The project's cache root, `$LMNAS_HOME` (default `~/.cache/lmnas`): the offline assets, trained
super-networks, teacher outputs, mirrors of study URIs and report snapshots each keep a folder under it."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "~/.cache/lmnas"


def lmnas_home() -> Path:
    """`$LMNAS_HOME`, or `~/.cache/lmnas` when it is unset or empty."""
    return Path(os.environ.get("LMNAS_HOME") or DEFAULT_HOME).expanduser()
