"""`lmnas run` from a bare shell: an embedded Ray of its own, every listener on loopback, and a head
that `ray start` left on the machine is not joined.

The head lives in `<tmp>/ray`, and the run gets `TMPDIR=<tmp>`, so for Ray the head *is* the
machine's default cluster (`<tmp>/ray/ray_current_cluster`), exactly what a plain `ray.init()` joins.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.integration.conftest import free_port, stop_group, wait_for_head
from tests.integration.listeners import command_names, listening, process_tree

pytestmark = pytest.mark.integration

STUDY = {
    "name": "loopback",
    "seed": 0,
    "search_space": {"name": "synthetic", "options": {"num_dims": 2}},
    # Trials long enough (about 2 s each) that the session is watched while it runs them.
    "trainer": {"kind": "synthetic", "options": {"problem": "zdt1", "steps": 8, "step_seconds": 0.25}},
    "objectives": [{"metric": "f1", "mode": "min", "ref": 1.1}, {"metric": "f2", "mode": "min", "ref": 11.0}],
    "searcher": {"name": "random"},
    "scheduler": {"name": "fifo"},
    "budget": {"num_trials": 6, "max_concurrent": 2},
    "resources": {"cpu": 1},
}


def bare_env(tmp: Path) -> dict[str, str]:
    """What `env -i` leaves, plus the temp dir that makes the head the machine's default cluster."""
    return {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp)}


@pytest.fixture
def default_head() -> Iterator[tuple[Path, str]]:
    """A `ray start --head` on loopback whose temp dir is `<tmp>/ray`; yields (tmp, dashboard URL)."""
    tmp = Path(tempfile.mkdtemp(prefix="lmlb-", dir="/tmp"))  # Ray's socket paths must stay short
    dashboard_port = free_port()
    log = open(tmp / "head.log", "w")
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={free_port()}",
         f"--temp-dir={tmp / 'ray'}", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard_port}", "--num-cpus=1", "--disable-usage-stats",
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}"],
        # No token: a run that wrongly joins connects instead of failing on authentication.
        env={**bare_env(tmp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_head("", head, tmp / "head.log")
        yield tmp, f"http://127.0.0.1:{dashboard_port}"
    finally:
        stop_group(head)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def driver_jobs(dashboard: str) -> list[dict]:
    with urllib.request.urlopen(f"{dashboard}/api/jobs/", timeout=30) as response:
        return [job for job in json.load(response) if job.get("type") == "DRIVER"]


def test_run_from_a_bare_shell_embeds_its_own_loopback_ray(default_head: tuple[Path, str], tmp_path: Path) -> None:
    tmp, dashboard = default_head
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**STUDY, "storage": str(tmp_path / "runs")}))
    drivers_before = driver_jobs(dashboard)

    run = subprocess.Popen([str(Path(sys.executable).with_name("lmnas")), "run", str(study), "--quiet"],
                           cwd=tmp_path, env=bare_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    listeners: set[tuple[str, int]] = set()
    names: set[str] = set()
    deadline = time.monotonic() + 180
    try:
        while run.poll() is None and time.monotonic() < deadline:
            tree = process_tree(run.pid)
            listeners |= listening(tree)
            names |= command_names(tree)
            time.sleep(0.2)
    finally:
        if run.poll() is None:
            stop_group(run, grace_s=10)
    output = run.communicate()[0]
    assert run.returncode == 0, output[-3000:]

    assert "gcs_server" in names, f"the run started no Ray of its own: {sorted(names)}"
    assert driver_jobs(dashboard) == drivers_before, "the run joined the head that `ray start` left"
    assert listeners, "no listening socket seen while the study ran"
    exposed = sorted(f"{host}:{port}" for host, port in listeners if not ipaddress.ip_address(host).is_loopback)
    assert not exposed, f"the embedded Ray listens beyond loopback: {exposed}"
    assert (tmp_path / "runs" / "loopback" / "trials.parquet").exists()
