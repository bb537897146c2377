"""The cluster configs in cluster/: the AWS launcher passes Ray's own offline validation, the
KubeRay RayJob uses only RayJob fields of a pinned KubeRay version (cluster/kuberay-v1.5.1-rayjob.schema.yaml),
and both follow the project's rules: versions pinned to constraints-cpu.txt, token authentication,
dashboards and metrics reachable only where they should be, lmnas commands that parse.

Every check runs once on the file as committed and once per deliberate breakage, which it must reject.
"""
from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.unit.cluster_files import (LAUNCHER, RAYJOB, RAYJOB_SCHEMA, Breakage, Config, check_lmnas_command,
                                      image_project, load, pins, set_at)


@pytest.mark.parametrize("bad", ["lmnas run", "lmnas runn studies/cluster-zdt1.yaml", "lmnas run missing.yaml",
                                 "ray job submit -- lmnas run studies/cluster-zdt1.yaml"])
def test_the_command_check_can_fail(bad: str) -> None:
    with pytest.raises((SystemExit, AssertionError)):
        check_lmnas_command(bad)


# --- AWS cluster launcher --------------------------------------------------------------------------

@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation is offline: any connection (AWS included) fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the launcher check tried to open a connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def ray_validate(cfg: Config) -> None:
    """What `ray up` checks before it asks AWS anything: defaults filled in, then Ray's JSON schema
    (ray/autoscaler/ray-schema.json) and its cross-field rules."""
    validate_config(prepare_config(copy.deepcopy(cfg)))


def ray_starts(cfg: Config) -> list[str]:
    return [c for c in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"] if "ray start" in c]


def pip_requirements(command: str) -> list[str] | None:
    """The requirement specifiers of a `pip install` command (None if it is not one)."""
    argv = shlex.split(command)
    if "pip" not in argv or "install" not in argv:
        return None
    takes_value = {"-c", "--constraint", "-r", "--requirement", "-e", "--editable", "-i", "--index-url",
                   "--extra-index-url", "-f", "--find-links", "-t", "--target"}
    out, args = [], iter(argv[argv.index("install") + 1:])
    for arg in args:
        if arg in takes_value:
            next(args, None)
        elif not arg.startswith("-"):
            out.append(arg)
    return out


_PINNED = re.compile(r"^([A-Za-z0-9._-]+)(\[[^\]]+\])?==([^=<>~!*,;\s]+)$")
_PUBLIC = ("0.0.0.0/0", "::/0")


def launcher_rules(cfg: Config) -> None:
    """The project's rules for the launcher, beyond what Ray's schema can say."""
    # Ray's schema lets any provider key through, so a misspelt one would be dropped silently.
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    known = set(schema["properties"]["provider"]["properties"])
    assert set(cfg["provider"]) <= known, f"unknown provider keys: {sorted(set(cfg['provider']) - known)}"

    # The repository sync leaves the virtualenv, results and history at home.
    excluded = set(cfg.get("rsync_exclude", []))
    for junk in ("/.venv", "/runs", "/.git"):
        assert junk in excluded, f"rsync_exclude lacks {junk}"

    # Every pip install is pinned; Ray to the project's version, through the constraints file.
    commands = cfg.get("setup_commands", []) + cfg.get("head_setup_commands", []) + cfg.get("worker_setup_commands", [])
    installs = [(c, r) for c in commands if (r := pip_requirements(c)) is not None]
    assert installs, "no pip install in the setup commands"
    for command, requirements in installs:
        for req in requirements:
            assert _PINNED.match(req) or req.startswith(("/", "~", ".")), f"unpinned requirement {req!r} in: {command}"
    ray_pins = [m.group(3) for _, rs in installs for r in rs if (m := _PINNED.match(r)) and m.group(1) == "ray"]
    assert ray_pins == [pins()["ray"]], f"Ray must be installed once, at {pins()['ray']}: found {ray_pins}"
    (ray_install,) = [c for c, rs in installs if any(r.startswith("ray") for r in rs)]
    assert " -c " in f" {ray_install} ", f"Ray's install must use the project's constraints: {ray_install}"
    assert any("constraints-cpu.txt" in c for c in commands), "the constraints come from constraints-cpu.txt"

    # Token authentication: the token travels to every node and every Ray process uses it.
    assert cfg["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token", "file_mounts must carry ~/.ray/auth_token"
    starts = ray_starts(cfg)
    assert len(starts) == 2, starts
    for command in starts:
        assert "RAY_AUTH_MODE=token" in command, f"no token auth: {command}"
        assert "--metrics-export-port=" in command, f"no fixed metrics port: {command}"

    # The dashboard on the head's loopback, nowhere else.
    hosts = [h for c in starts for h in re.findall(r"--dashboard-host[= ](\S+)", c)]
    assert hosts == ["127.0.0.1"], f"the dashboard must listen on the head's loopback only: {hosts}"

    # Metrics stay private: only the launcher's own security group (cluster nodes + SSH) guards the
    # nodes, since Ray 2.60 binds the exporter on every interface of a node.
    for rule in cfg["provider"].get("security_group", {}).get("IpPermissions", []):
        public = [r.get("CidrIp") or r.get("CidrIpv6") for r in rule.get("IpRanges", []) + rule.get("Ipv6Ranges", [])]
        opens = (rule.get("FromPort"), rule.get("ToPort"))
        assert not (set(public) & set(_PUBLIC)) or opens == (22, 22), f"a rule opens {opens} to the internet"
    for name, node in cfg["available_node_types"].items():
        for key in ("SecurityGroupIds", "NetworkInterfaces"):
            assert key not in node["node_config"], f"{name}: {key} replaces the launcher's security group"


def test_launcher_passes_rays_validation(no_network: None) -> None:
    ray_validate(load(LAUNCHER))


def test_launcher_follows_the_projects_rules() -> None:
    launcher_rules(load(LAUNCHER))


def test_launcher_has_autoscaling_gpu_workers_and_a_driving_head() -> None:
    cfg = load(LAUNCHER)
    types = cfg["available_node_types"]
    workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
    assert workers and all(v["node_config"]["InstanceType"].startswith(("g", "p")) for v in workers.values())
    assert all(v["resources"].get("GPU", 0) >= 1 for v in workers.values())
    for node in types.values():
        assert 0 <= node["min_workers"] <= node["max_workers"] <= cfg["max_workers"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}  # the head only drives


def test_launcher_runs_valid_lmnas_commands() -> None:
    cfg = load(LAUNCHER)
    commands = [c for c in cfg["setup_commands"] if c.startswith("lmnas ")]
    comments = [ln.split("#", 1)[1].strip() for ln in LAUNCHER.read_text().splitlines() if ln.lstrip().startswith("#")]
    commands += [c for c in comments if re.match(r"^([A-Z_]+=\S+ )*lmnas ", c)]
    assert len(commands) >= 2
    for command in commands:
        check_lmnas_command(command)


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_launcher_sync_leaves_out_local_junk(tmp_path: Path) -> None:
    """rsync itself, with the arguments `ray up` gives it (`--exclude P` per pattern, a trailing
    slash on the source), on a tree holding what a working copy holds."""
    src = tmp_path / "repo"
    kept = ["orchestrator/cli.py", "benchmarks/runs/keep.txt", "studies/cluster-zdt1.yaml"]
    junk = [".venv/bin/python", "runs/zdt1/results.json", ".git/HEAD", "orchestrator/__pycache__/cli.pyc",
            "lmnas.egg-info/PKG-INFO"]
    for rel in kept + junk:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    excludes = [arg for p in load(LAUNCHER)["rsync_exclude"] for arg in ("--exclude", p)]
    out = subprocess.run(["rsync", "-a", "--dry-run", "--out-format=%n", *excludes, f"{src}/", f"{tmp_path}/dest/"],
                         check=True, capture_output=True, text=True).stdout.split()
    assert set(kept) <= set(out), f"the sync drops project files: {sorted(set(kept) - set(out))}"
    tops = {".venv", "runs", ".git", "lmnas.egg-info"}
    copied = [p for p in out if p.split("/")[0] in tops or "__pycache__" in p]
    assert not copied, f"the sync copies local junk: {copied}"


# --- KubeRay RayJob --------------------------------------------------------------------------------

def rayjob_crd(job: Config) -> None:
    """The RayJob uses only fields of the pinned KubeRay version, with allowed values."""
    schema = load(RAYJOB_SCHEMA)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(job), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)


def pod_specs(job: Config) -> list[Config]:
    cluster = job["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster.get("workerGroupSpecs", [])]
    if "submitterPodTemplate" in job["spec"]:
        templates.append(job["spec"]["submitterPodTemplate"])
    return [t["spec"] for t in templates]


def rayjob_rules(job: Config) -> None:
    """The project's rules for the RayJob: a submission mode that works, a dashboard reachable only
    inside the cluster, token auth, an entrypoint robust to PATH, the pinned image."""
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]

    # Both modes that submit for the user reach the dashboard from another pod (the submitter Job
    # or the operator), and the operator polls it in either: it must listen beyond loopback...
    mode = spec.get("submissionMode", "K8sJobMode")
    assert mode in ("K8sJobMode", "HTTPMode"), f"submissionMode {mode!r}: KubeRay must submit the study itself"
    host = head.get("rayStartParams", {}).get("dashboard-host", "0.0.0.0")  # KubeRay's default
    assert host == "0.0.0.0", f"dashboard-host {host!r}: the submitter and the operator reach the head from other pods"
    # ...but no further than the cluster's pod network.
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", "the head service must stay a ClusterIP"
    assert not head.get("enableIngress", False), "no ingress to the dashboard"
    assert not any(p.get("hostNetwork") for p in pod_specs(job)), "hostNetwork puts Ray's ports on the node"

    # Token auth from a Secret the operator generates and injects (KubeRay >= 1.5.1).
    assert cluster.get("authOptions", {}).get("mode") == "token", "token auth: rayClusterSpec.authOptions.mode: token"

    # The driver through the interpreter, whatever the head's PATH holds, on a study in the image.
    argv = shlex.split(spec["entrypoint"])
    assert argv[:4] == ["python", "-m", "orchestrator.cli", "run"], f"entrypoint: {spec['entrypoint']}"
    check_lmnas_command(spec["entrypoint"], image_project())
    assert argv[4].startswith(image_project() + "/"), f"the study is read from the image: {argv[4]}"
    assert isinstance(yaml.safe_load(spec.get("runtimeEnvYAML", "{}")), dict), "runtimeEnvYAML is not a mapping"

    # One image everywhere, pinned, from cluster/Dockerfile at the project's Ray.
    images = {c["image"] for p in pod_specs(job) for c in p["containers"]}
    assert len(images) == 1, f"one image for every node: {images}"
    (image,) = images
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    assert tag and tag != "latest", f"the image must be pinned by tag: {image}"
    assert f"ray{pins()['ray']}" in tag, f"the image tag names its Ray ({pins()['ray']}): {image}"
    assert cluster["rayVersion"] == pins()["ray"] == ray.__version__


def test_rayjob_uses_only_fields_of_the_pinned_kuberay() -> None:
    rayjob_crd(load(RAYJOB))


def test_rayjob_follows_the_projects_rules() -> None:
    rayjob_rules(load(RAYJOB))


def test_rayjob_scales_gpu_workers() -> None:
    cluster = load(RAYJOB)["spec"]["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # the head only drives
    (group,) = cluster["workerGroupSpecs"]
    assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    (container,) = group["template"]["spec"]["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1


# --- each check rejects what it is there to reject ---------------------------------------------------

def _edit_command(key: str, index: int, old: str, new: str) -> Breakage:
    def apply(cfg: Config) -> None:
        assert old in cfg[key][index], (key, index, old)
        cfg[key][index] = cfg[key][index].replace(old, new)
    return apply



LAUNCHER_BREAKAGES = {
    "unknown top-level key": (ray_validate, set_at("rsync_excludes", ["/.venv"])),
    "worker without resources": (ray_validate, lambda c: c["available_node_types"]["gpu_worker"].pop("resources")),
    "misspelt provider key": (launcher_rules, set_at("provider.cache_stoped_nodes", False)),
    ".venv synced": (launcher_rules, lambda c: c["rsync_exclude"].remove("/.venv")),
    "runs synced": (launcher_rules, lambda c: c["rsync_exclude"].remove("/runs")),
    "unpinned ray": (launcher_rules, lambda c: c["setup_commands"].append("python -m pip install ray[default]")),
    "ray pinned elsewhere": (launcher_rules, lambda c: c["head_setup_commands"].append("pip install ray==2.9.0")),
    "no token on workers": (launcher_rules, _edit_command("worker_start_ray_commands", 1, "RAY_AUTH_MODE=token ", "")),
    "token not shipped": (launcher_rules, lambda c: c["file_mounts"].pop("~/.ray/auth_token")),
    "dashboard on every interface": (launcher_rules, _edit_command("head_start_ray_commands", 1,
                                                                  "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")),
    "metrics port opened to the internet": (launcher_rules, set_at("provider.security_group", {"IpPermissions": [
        {"FromPort": 8080, "ToPort": 8080, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})),
    "own security group": (launcher_rules, set_at("available_node_types.gpu_worker.node_config.SecurityGroupIds", ["sg-1"])),
}

RAYJOB_BREAKAGES = {
    "unknown spec key": (rayjob_crd, set_at("spec.submissionmode", "HTTPMode")),
    "unknown submission mode": (rayjob_crd, set_at("spec.submissionMode", "HttpMode")),
    "unknown container key": (rayjob_crd, set_at("spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.imagePolicy", "Always")),
    "dashboard on loopback": (rayjob_rules, set_at("spec.rayClusterSpec.headGroupSpec.rayStartParams.dashboard-host", "127.0.0.1")),
    "dashboard on a load balancer": (rayjob_rules, set_at("spec.rayClusterSpec.headGroupSpec.serviceType", "LoadBalancer")),
    "dashboard behind an ingress": (rayjob_rules, set_at("spec.rayClusterSpec.headGroupSpec.enableIngress", True)),
    "no token auth": (rayjob_rules, lambda j: j["spec"]["rayClusterSpec"].pop("authOptions")),
    "interactive mode": (rayjob_rules, set_at("spec.submissionMode", "InteractiveMode")),
    "entrypoint needs PATH": (rayjob_rules, set_at("spec.entrypoint", "lmnas run /opt/lmnas/studies/cluster-zdt1.yaml")),
    "image not pinned": (rayjob_rules, lambda j: [c.update(image="ghcr.io/example/lmnas:latest")
                                                  for p in pod_specs(j) for c in p["containers"]]),
    "two images": (rayjob_rules, set_at("spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.image",
                                       "ghcr.io/example/lmnas:0.2.0-ray2.60.0")),
}


@pytest.mark.parametrize("name", list(LAUNCHER_BREAKAGES))
def test_a_broken_launcher_is_rejected(name: str, no_network: None) -> None:
    check, breakage = LAUNCHER_BREAKAGES[name]
    cfg = load(LAUNCHER)
    check(copy.deepcopy(cfg))  # the same check passes on the committed file
    breakage(cfg)
    with pytest.raises((AssertionError, jsonschema.ValidationError, ValueError)):
        check(cfg)


@pytest.mark.parametrize("name", list(RAYJOB_BREAKAGES))
def test_a_broken_rayjob_is_rejected(name: str) -> None:
    check, breakage = RAYJOB_BREAKAGES[name]
    job = load(RAYJOB)
    check(copy.deepcopy(job))
    breakage(job)
    with pytest.raises(AssertionError):
        check(job)

