"""One local Ray head for all integration tests (each start costs several seconds).

The head listens on loopback only, lives in its own temporary directory and process group,
and is stopped at the end of the session: nothing else on the machine is touched.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# Ray >= 2.59 turns token authentication on for local clusters; give the head and its clients
# one explicit token instead of relying on files in the home directory.
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env() -> dict[str, str]:
    """The environment of the head and its clients: loopback, one token, and the project's scripts
    (lmnas, ray) on PATH, as in an activated virtual environment."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, **LOOPBACK, **AUTH, "PYTHONUNBUFFERED": "1", "PATH": path}


def head_env() -> dict[str, str]:
    """The head's environment: as `ray_env()`, but with no Python environment on PATH, as when `ray
    start` is run by the virtual environment's absolute path. A job's entrypoint is a shell command
    run with this environment, so nothing a job needs may come from PATH."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return {**ray_env(), "PATH": path}


@dataclass(frozen=True)
class RayHead:
    #: GCS address, for `ray.init` / `lmnas run --address`.
    address: str
    #: the dashboard (and Jobs API) URL, for `ray job submit` / `lmnas submit`.
    dashboard_url: str
    #: Prometheus endpoint of the head's metrics agent (custom metrics included).
    metrics_url: str
    temp_dir: Path


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A Ray head (with its dashboard and Jobs API) started for this test session."""
    temp_dir = tempfile.mkdtemp(prefix="lmray-", dir="/tmp")  # Ray's socket paths must stay short
    port, dashboard_port, metrics_port = free_port(), free_port(), free_port()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    log = open(Path(temp_dir) / "head.log", "w")
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", f"--port={port}", f"--temp-dir={temp_dir}",
         "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
         f"--metrics-export-port={metrics_port}", "--num-cpus=2", "--disable-usage-stats",
         # Ray's fixed default ports (agent 52365, client server 10001) clash with any other Ray on
         # the machine; the job agent would fail to bind and jobs would wait for it forever.
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}"],
        # custom metrics reach the metrics endpoint every 2 s instead of 10 s, so tests see them
        env={**head_env(), "RAY_metrics_report_interval_ms": "2000"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    # A session ended by SIGTERM (a CI timeout, a killed run) still tears the head down.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        wait_for_head(address, head, Path(temp_dir) / "head.log")
        yield RayHead(address, f"http://127.0.0.1:{dashboard_port}", f"http://127.0.0.1:{metrics_port}/metrics",
                      Path(temp_dir))
    finally:
        stop_group(head)
        log.close()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def cluster_client(ray_head: RayHead, monkeypatch: pytest.MonkeyPatch) -> Iterator[RayHead]:
    """This process as a client of the session's head: its environment, and Ray's cached view of it.

    Ray reads RAY_AUTH_MODE once, at the first authentication check of the process, and caches the
    token; any earlier test that touched Ray froze "disabled". Refresh both on entry and on exit.
    """
    for key, value in ray_env().items():
        monkeypatch.setenv(key, value)
    refresh_ray_auth()
    try:
        yield ray_head
    finally:
        monkeypatch.undo()
        refresh_ray_auth()


def refresh_ray_auth() -> None:
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture(scope="session")
def ray_address(ray_head: RayHead) -> str:
    """The GCS address of the session's Ray head."""
    return ray_head.address


def wait_for_head(address: str, head: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray head exited early:\n{log.read_text()[-3000:]}")
        if "This command will now block" in log.read_text():
            return
        time.sleep(0.5)
    raise RuntimeError(f"ray head did not start in {timeout_s}s:\n{log.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen, grace_s: float = 5) -> None:
    """SIGTERM the head's process group, then SIGKILL what is left after the grace period.

    A `ray start --block` head spends about 33 s shutting down after SIGTERM; a test head holds
    nothing worth that wait, and the group's SIGKILL leaves no Ray process behind (checked: no
    process of its temp dir survives)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
