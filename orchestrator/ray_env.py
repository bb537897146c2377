"""The environment Ray must see before it is imported: loopback-only for an embedded run, quiet always.

Ray reads `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER` once, when `ray._private.ray_constants` is imported;
with it unset on Linux an embedded Ray binds 0.0.0.0 and the host's routable address. So the package
sets it on import (`orchestrator/__init__.py`), before any module of ours imports Ray, unless the
process is about to join a cluster (`RAY_ADDRESS`), where the driver must use the node's real address
to find its raylet. The CLI calls `configure(address)` again once `--address` is parsed.
"""
from __future__ import annotations

import os
import sys

#: Every listener of an embedded Ray on 127.0.0.1 (Ray reads this at import).
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
#: No usage reporting; lmnas prints its own progress, so no Tune experiment boxes or TensorBoard hints.
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Trial output in a job's log stays one line per trial, each under its trial's name: Ray would
    # fold lines that differ only in ids into "[repeated 6x across cluster]" and colour the prefixes.
    "RAY_DEDUP_LOGS": "0",
    "RAY_COLOR_PREFIX": "0",
}

# The loopback values this module set itself (a user's own setting is never taken back).
_set_here: set[str] = set()


def joins_cluster(address: str | None) -> bool:
    """Whether a Ray session opened with `address` joins an existing cluster instead of starting one."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def configure(address: str | None = None) -> None:
    """Set the environment for a session that embeds Ray (`address` None) or joins one.

    Joining after Ray was imported with the loopback setting is left alone: the caller then joins
    from loopback, which is right for a loopback cluster and fails with Ray's own message otherwise.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not joins_cluster(address):
        for key, value in LOOPBACK_ENV.items():
            if key not in os.environ:
                os.environ[key] = value
                _set_here.add(key)
    elif "ray" not in sys.modules:
        for key in list(_set_here):
            os.environ.pop(key, None)
            _set_here.discard(key)
