"""The image and the dashboard in cluster/: the Dockerfile builds the image the RayJob names from the
project's pins (its syntax and structure checked everywhere, built where a Docker engine answers),
and the Grafana dashboard is importable and charts every gauge orchestrator/monitoring.py defines.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib

import pytest

from orchestrator.monitoring import StudyMetrics
from orchestrator.study import load_study
from tests.unit.cluster_files import (DOCKERFILE, DOCKERIGNORE, GRAFANA, ROOT, Breakage, Config,
                                      dockerfile_instructions, image_project, pins, set_at)


# --- Dockerfile ------------------------------------------------------------------------------------

def copied_sources() -> list[str]:
    sources = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and "--from" not in args:
            sources += [s.rstrip("/") for s in args.split()[:-1] if not s.startswith("--")]
    return sources


def test_dockerfile_is_well_formed_and_pinned() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM", "the first instruction must be FROM"
    for keyword, args in instructions:
        if keyword == "FROM":
            image = args.split()[0]
            assert "$" not in image and ":" in image.rsplit("/", 1)[-1], f"FROM {image}: pin the base image by tag"
            assert not image.endswith(":latest"), f"FROM {image}: not latest"
        assert "latest" not in args, f"{keyword} {args}: nothing `latest` in the image"
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    assert args["RAY_VERSION"] == pins()["ray"], "ARG RAY_VERSION must match constraints-cpu.txt"
    assert args["TORCH_VERSION"] == pins()["torch"].split("+")[0], "ARG TORCH_VERSION must match constraints-cpu.txt"
    runs = " ".join(a for k, a in instructions if k == "RUN")
    assert '"ray[default,tune]==${RAY_VERSION}"' in runs, "Ray is installed at ARG RAY_VERSION"
    assert '"torch==${TORCH_VERSION}"' in runs and '--index-url "${TORCH_INDEX_URL}"' in runs
    assert "-c /tmp/constraints.txt" in runs and "constraints-cpu.txt" in runs, "installs go through the constraints"
    assert f"pip install -c /tmp/constraints.txt {image_project()}" in runs, "the project itself is installed"


def test_dockerfile_copies_the_project_and_the_context_holds_it() -> None:
    sources = copied_sources()
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {p.rstrip("*") for p in packages} | {"pyproject.toml", "README.md", "constraints-cpu.txt", "studies"}
    assert needed <= set(sources), f"the image lacks {sorted(needed - set(sources))}"
    ignore = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if "*" in ignore:
        for source in sources:
            assert f"!{source}" in ignore or f"!{source}/" in ignore, f"{DOCKERIGNORE.name} keeps {source} out of the context"
    for junk in (".venv", "runs", ".git"):
        assert f"!{junk}" not in ignore and f"!{junk}/" not in ignore


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.mark.timeout(3600)
@pytest.mark.skipif(not _docker_works(), reason="no Docker engine (`docker info` fails)")
def test_dockerfile_builds_an_image_with_the_pinned_ray() -> None:
    tag = "lmnas-test:cluster-configs"
    # BuildKit, the default builder since Docker 23, is the one that reads Dockerfile.dockerignore.
    subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)], check=True,
                   env={**os.environ, "DOCKER_BUILDKIT": "1"})
    out = subprocess.run(["docker", "run", "--rm", tag, "python", "-c",
                          "import ray, torch, orchestrator.cli; print(ray.__version__, torch.__version__)"],
                         check=True, capture_output=True, text=True).stdout.split()
    assert out[0] == pins()["ray"] and out[1].split("+")[0] == pins()["torch"].split("+")[0], out


# --- Grafana dashboard ------------------------------------------------------------------------------

#: Ray's metrics agent exports custom metrics under its "ray" namespace (reporter_agent.py).
PROMETHEUS_PREFIX = "ray_"
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "text", "row"}


class _NullGauge:
    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        pass


def defined_gauges() -> dict[str, tuple[str, ...]]:
    """The gauges orchestrator/monitoring.py defines, by name, with their tag keys."""
    gauges: dict[str, tuple[str, ...]] = {}

    def factory(name: str, description: str, tag_keys: tuple[str, ...]) -> _NullGauge:
        gauges[name] = tag_keys
        return _NullGauge()

    StudyMetrics("any", load_study(ROOT / "studies" / "cluster-zdt1.yaml").objectives, gauge=factory)
    assert gauges
    return gauges


def queries(dashboard: Config) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def grafana_rules(dashboard: Config) -> None:
    """An importable dashboard whose queries chart every gauge through labels the gauge has."""
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), panel["title"]
        used = set(re.findall(r"\$(\w+)", json.dumps(panel))) - {"datasource"}
        assert used <= set(variables), f"{panel['title']}: undefined variables {used - set(variables)}"

    gauges = defined_gauges()
    charted: set[str] = set()
    for expr in queries(dashboard):
        metrics = set(re.findall(rf"\b{PROMETHEUS_PREFIX}(\w+)", expr))
        assert metrics <= set(gauges), f"{expr}: no such gauge {sorted(metrics - set(gauges))}"
        tags = {t for m in metrics for t in gauges[m]}
        labels = {label for selector in re.findall(r"\{([^}]*)\}", expr)
                  for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector)}
        labels |= {label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", expr) for label in group.split(",")}
        labels |= {label.strip() for label in re.findall(r"label_values\([^,]+,\s*(\w+)\)", expr)}
        assert labels <= tags, f"{expr}: labels {sorted(labels - tags)} are not tags of {sorted(metrics)}"
        charted |= metrics
    panels_charted = {m for p in dashboard["panels"] for t in p["targets"]
                      for m in re.findall(rf"\b{PROMETHEUS_PREFIX}(\w+)", t["expr"])}
    assert panels_charted == set(gauges), f"gauges without a panel: {sorted(set(gauges) - panels_charted)}"


def test_grafana_dashboard_charts_every_gauge() -> None:
    grafana_rules(json.loads(GRAFANA.read_text()))


def _drop_panels_of(metric: str) -> Breakage:
    def apply(dashboard: Config) -> None:
        dashboard["panels"] = [p for p in dashboard["panels"] if not any(metric in t["expr"] for t in p["targets"])]
    return apply


@pytest.mark.parametrize("breakage", [
    _drop_panels_of("ray_lmnas_hypervolume"),
    set_at("panels.0.targets.0.expr", 'sum(ray_lmnas_trials{state="running"})'),  # a tag the gauge lacks
    set_at("panels.0.targets.0.expr", "sum(ray_lmnas_trial_count)"),  # a gauge the code does not define
    set_at("panels.0.datasource", {"type": "prometheus", "uid": "prometheus"}),  # bypasses the variable
], ids=["gauge without panel", "unknown tag", "unknown gauge", "fixed datasource"])
def test_a_broken_dashboard_is_rejected(breakage: Breakage) -> None:
    dashboard = json.loads(GRAFANA.read_text())
    breakage(dashboard)
    with pytest.raises(AssertionError):
        grafana_rules(dashboard)
