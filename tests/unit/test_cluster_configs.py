"""The cluster configs in cluster/: their schema keys, autoscaling bounds, loopback dashboards, and
that the lmnas commands they run parse with lmnas's own parser on a study file that validates."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from cluster.jobs import storage_warning
from orchestrator.cli import build_parser
from orchestrator.study import load_study

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "cluster" / "aws-gpu.yaml"
RAYJOB = ROOT / "cluster" / "kuberay-rayjob.yaml"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def check_lmnas_command(command: str) -> None:
    """`command` is an lmnas call the parser accepts; a study it runs exists, validates and keeps
    its results where every node reaches them."""
    argv = shlex.split(command)
    assert argv[0] == "lmnas", command
    if argv[1] == "assets":  # handed to the assets tool before the main parser
        assert argv[2] in ("fetch", "list", "verify")
        return
    ns = build_parser().parse_args(argv[1:])
    if ns.command in ("run", "submit", "validate"):
        path = ROOT / ns.study
        assert path.is_file(), f"{command}: no study at {path}"
        assert storage_warning(load_study(path).storage) is None, f"{command}: storage must be shared or a URI"


def test_launcher_has_the_schema_keys_and_gpu_workers() -> None:
    cfg = load(LAUNCHER)
    assert {"cluster_name", "max_workers", "provider", "available_node_types", "head_node_type",
            "setup_commands", "head_start_ray_commands", "worker_start_ray_commands"} <= set(cfg)
    assert cfg["provider"]["type"] == "aws" and cfg["provider"]["region"]
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
    assert workers and all(v["node_config"]["InstanceType"].startswith(("g", "p")) for v in workers.values())
    for node in types.values():
        assert 0 <= node["min_workers"] <= node["max_workers"] <= cfg["max_workers"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}  # the head only drives


def test_launcher_keeps_the_dashboard_on_loopback_and_runs_valid_lmnas_commands() -> None:
    cfg = load(LAUNCHER)
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "--disable-usage-stats" in head
    commands = [c for c in cfg["setup_commands"] if c.startswith("lmnas ")]
    commands += [ln.split("#", 1)[1].strip() for ln in LAUNCHER.read_text().splitlines()
                 if ln.lstrip().startswith("#") and ln.split("#", 1)[1].strip().startswith("lmnas ")]
    assert len(commands) >= 2
    for command in commands:
        check_lmnas_command(command)


def test_rayjob_runs_a_valid_study_on_an_autoscaling_gpu_cluster() -> None:
    job = load(RAYJOB)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob" and job["metadata"]["name"]
    spec = job["spec"]
    check_lmnas_command(spec["entrypoint"])
    assert shlex.split(spec["entrypoint"])[1] == "run"
    assert spec["shutdownAfterJobFinishes"] is True
    assert yaml.safe_load(spec["runtimeEnvYAML"])["working_dir"]
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__  # the image's Ray matches the pinned one
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    (group,) = cluster["workerGroupSpecs"]
    assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    (container,) = group["template"]["spec"]["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1


@pytest.mark.parametrize("bad", ["lmnas run", "lmnas runn studies/cluster-zdt1.yaml", "lmnas run missing.yaml"])
def test_the_command_check_can_fail(bad: str) -> None:
    with pytest.raises((SystemExit, AssertionError)):
        check_lmnas_command(bad)
