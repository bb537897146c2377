"""Shared by the tests of cluster/: where the files are, the project's pins, the Dockerfile read as
instructions, and the check that a command a config runs is a valid lmnas call."""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Callable

import yaml

from cluster.jobs import storage_warning
from orchestrator.cli import build_parser
from orchestrator.study import load_study

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
LAUNCHER = CLUSTER / "aws-gpu.yaml"
RAYJOB = CLUSTER / "kuberay-rayjob.yaml"
RAYJOB_SCHEMA = CLUSTER / "kuberay-v1.5.1-rayjob.schema.yaml"
DOCKERFILE = CLUSTER / "Dockerfile"
DOCKERIGNORE = CLUSTER / "Dockerfile.dockerignore"
GRAFANA = CLUSTER / "grafana-lmnas.json"
CONSTRAINTS = ROOT / "constraints-cpu.txt"

Config = dict[str, Any]


def load(path: Path) -> Config:
    return yaml.safe_load(path.read_text())


def pins() -> dict[str, str]:
    """constraints-cpu.txt as {name: version}, torch's `+cpu` label kept."""
    out: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[name.strip().lower()] = version.strip()
    return out


# --- deliberate breakages of a loaded file ---------------------------------------------------------

Breakage = Callable[[Config], None]


def set_at(path: str, value: Any) -> Breakage:
    """A breakage that sets the dotted `path` (list items by index) of a loaded file to `value`."""
    def apply(cfg: Config) -> None:
        *parents, last = path.split(".")
        node: Any = cfg
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return apply


# --- lmnas commands named by the configs -----------------------------------------------------------

_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_LAUNCHERS = (["lmnas"], ["python", "-m", "orchestrator.cli"])


def check_lmnas_command(command: str, image_project: str | None = None) -> None:
    """`command` is an lmnas call the parser accepts; a study it runs exists, validates and keeps
    its results where every node reaches them. Paths under `image_project` (the project's place in
    the image) are read from this checkout."""
    argv = shlex.split(command)
    while argv and _ENV_ASSIGNMENT.match(argv[0]):
        argv = argv[1:]
    launcher = next((p for p in _LAUNCHERS if argv[:len(p)] == p), None)
    assert launcher, f"{command}: not an lmnas command (`lmnas ...` or `python -m orchestrator.cli ...`)"
    args = argv[len(launcher):]
    if args and args[0] == "assets":  # handed to the assets tool before the main parser
        assert args[1:2] and args[1] in ("fetch", "list", "verify"), command
        return
    ns = build_parser().parse_args(args)
    if ns.command in ("run", "submit", "validate"):
        for study in map(str, ns.study if isinstance(ns.study, list) else [ns.study]):  # validate takes several
            if image_project and study.startswith(image_project + "/"):
                study = study[len(image_project) + 1:]
            path = ROOT / study
            assert path.is_file(), f"{command}: no study at {path}"
            assert storage_warning(load_study(path).storage) is None, f"{command}: storage must be shared or a URI"


# --- cluster/Dockerfile ---------------------------------------------------------------------------

KNOWN_INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "LABEL", "EXPOSE", "CMD",
                      "ENTRYPOINT", "SHELL", "HEALTHCHECK", "VOLUME", "STOPSIGNAL", "ONBUILD"}


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines even inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        assert keyword.upper() in KNOWN_INSTRUCTIONS, f"Dockerfile line {number}: unknown instruction {keyword!r}"
        out.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def image_project() -> str:
    """Where cluster/Dockerfile puts the project: the WORKDIR its pyproject.toml is copied into."""
    workdir = None
    for keyword, args in dockerfile_instructions():
        if keyword == "WORKDIR":
            workdir = args
        if keyword == "COPY" and "pyproject.toml" in args.split():
            assert workdir, "pyproject.toml is copied before any WORKDIR"
            return workdir.rstrip("/")
    raise AssertionError("cluster/Dockerfile does not copy pyproject.toml")
