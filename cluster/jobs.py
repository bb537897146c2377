"""`lmnas submit`: send a study to a Ray cluster as a Ray job (the Ray Jobs SDK).

The job runs `lmnas run <study>` on the head node inside an upload of the working directory,
with the environment variables and pip packages asked for. The upload is a temporary copy, so a
relative `storage` is taken relative to `$LMNAS_HOME` of the head (`runs`: `$LMNAS_HOME/runs`) (see
cluster/storage.py); a study whose trials run on several machines needs a path every node shares or
a URI (s3://, gs://, ...).
"""
from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cluster.storage import is_uri

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: The Python that runs this cluster's workers, for the job's entrypoint. A job's entrypoint is a shell
#: command with the PATH of the head's `ray start`, which holds neither `lmnas` nor the right `python`
#: unless that shell had the virtual environment activated. The raylet of the job's cluster (found by
#: the GCS address Ray gives the job in RAY_ADDRESS) names the interpreter in its command line;
#: `python3` is the fallback where /proc is missing.
HEAD_PYTHON = (
    '"$(for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = raylet ] '
    '&& tr "\\0" "\\n" < "$p/cmdline" | grep -qxF -- "--gcs-address=$RAY_ADDRESS" '
    '&& tr "\\0" "\\n" < "$p/cmdline" | sed -n "s/^--python_worker_command=\\([^ ]*\\).*/\\1/p" '
    '&& break; done | head -n 1 | grep . || echo python3)"'
)
#: Log lines of a failed job that `lmnas submit --wait` prints.
FAILED_LOG_LINES = 20
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class SubmitError(Exception):
    """A submission that cannot be made as asked (bad option, unreachable cluster): one line for the user.
    Cluster helpers sit below the orchestrator, so this is their own error; `lmnas` reports it as its own."""


@dataclass(frozen=True)
class JobRequest:
    study: Path
    address: str = DEFAULT_ADDRESS
    #: uploaded to the cluster; the study file must lie inside it.
    working_dir: Path = Path(".")
    env: Mapping[str, str] = field(default_factory=dict)
    #: pip requirements installed into the job's runtime environment (none: the cluster's own).
    pip: tuple[str, ...] = ()
    #: pins (name==version per line) applied to the pip requirements of the same names.
    constraints: tuple[str, ...] = ()
    job_id: str | None = None

    def __post_init__(self) -> None:
        for name in self.env:
            if not _ENV_NAME.match(name):
                raise SubmitError(f"--env: {name!r} is not an environment variable name (letters, digits, '_')")
        if not self.working_dir.is_dir():
            raise SubmitError(f"--working-dir: {str(self.working_dir)!r} is not a directory")
        if not self.study.is_file():
            raise SubmitError(f"no study file at {str(self.study)!r}; pass the path of a YAML study file")
        try:
            self.study.resolve().relative_to(self.working_dir.resolve())
        except ValueError:
            raise SubmitError(f"the study {str(self.study)!r} is outside the working directory "
                              f"{str(self.working_dir)!r}, which is what the cluster receives; pass --working-dir") from None

    def entrypoint(self) -> str:
        """The command the job runs: `lmnas run` on the study, relative to the uploaded directory,
        with the Python that runs the cluster's workers (see `HEAD_PYTHON`)."""
        relative = self.study.resolve().relative_to(self.working_dir.resolve()).as_posix()
        return f"{HEAD_PYTHON} -m orchestrator.cli run {shlex.quote(relative)}"

    def runtime_env(self) -> dict[str, Any]:
        env: dict[str, Any] = {"working_dir": str(self.working_dir.resolve())}
        if self.env:
            env["env_vars"] = dict(self.env)
        if self.pip:
            env["pip"] = {"packages": apply_constraints(self.pip, self.constraints), "pip_check": False}
        return env


def parse_env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SubmitError(f"--env: {pair!r} must be NAME=VALUE")
        out[name] = value
    return out


def read_lines(path: Path, what: str) -> tuple[str, ...]:
    """Requirement or constraint lines of a file, without comments and blank lines."""
    if not path.is_file():
        raise SubmitError(f"--{what}: no file at {str(path)!r}")
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return tuple(ln for ln in lines if ln)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def apply_constraints(requirements: tuple[str, ...], constraints: tuple[str, ...]) -> list[str]:
    """Each requirement named in `constraints` takes the constraint's version specifier.

    Ray installs a job's packages from a requirements file it writes on the node, so a constraints
    file cannot travel with it; pinning the named requirements is what a constraint means for them.
    Pins of packages not asked for stay with the cluster's image.
    """
    pins: dict[str, str] = {}
    for line in constraints:
        m = _PIN.match(line)
        if not m or not m.group(3):
            raise SubmitError(f"--constraints: {line!r} is not a pin such as 'torch==2.13.0'")
        pins[canonical(m.group(1))] = m.group(3).strip()
    out = []
    for req in requirements:
        m = _PIN.match(req)
        name = canonical(m.group(1)) if m else ""
        if m and name in pins:
            if m.group(3).strip():
                raise SubmitError(f"--pip: {req!r} has its own version and a constraint ({pins[name]}); keep one")
            out.append(f"{m.group(1)}{m.group(2) or ''}{pins[name]}")
        else:
            out.append(req)
    return out


def storage_warning(storage: str) -> str | None:
    """Why results could be out of reach on a cluster: a relative storage path is kept on the head only."""
    if is_uri(storage) or Path(storage).expanduser().is_absolute():
        return None
    return (f"storage {storage!r} is a relative path: in a job it becomes $LMNAS_HOME/{storage} on the head "
            "node, where trials on other nodes cannot write; use an absolute path every node shares or a URI "
            "such as s3://bucket/studies")


def client(address: str) -> Any:
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError:
        raise authentication_error(address) from None
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SubmitError(f"cannot reach the Ray dashboard at {address}: {first_line(e)}; "
                          "check --address (the dashboard's http://host:port)") from None


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def authentication_error(address: str) -> SubmitError:
    return SubmitError(f"the Ray cluster at {address} refused the token (or found none); set RAY_AUTH_MODE=token "
                       "and the cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token")


def submit(request: JobRequest, agent_wait_s: float = 60.0) -> str:
    """Submit the study as a Ray job; returns the job's submission id.

    A freshly started head answers "No available agent" until its job agent is up: retried for
    up to `agent_wait_s`."""
    from ray.exceptions import AuthenticationError

    c = client(request.address)
    job_id = request.job_id or default_job_id(request.study.stem)
    deadline = time.monotonic() + agent_wait_s
    while True:
        try:
            return c.submit_job(entrypoint=request.entrypoint(), runtime_env=request.runtime_env(),
                                submission_id=job_id, metadata={"lmnas_study": request.study.name})
        except AuthenticationError:
            raise authentication_error(request.address) from None
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise SubmitError(f"the cluster refused the job: {first_line(e)}") from None
            time.sleep(2)


def follow_hint(address: str, job_id: str) -> str:
    return (f"submitted job {job_id}\n"
            f"  follow:  ray job logs --address {address} -f {job_id}\n"
            f"  status:  ray job status --address {address} {job_id}\n"
            f"  stop:    ray job stop --address {address} {job_id}\n"
            f"  dashboard: {address.rstrip('/')}/#/jobs/{job_id}")


def wait(address: str, job_id: str, timeout_s: float | None = None, poll_s: float = 2.0,
         on_status: Callable[[str], None] | None = None) -> str:
    """Poll until the job ends; returns its final status (SUCCEEDED, FAILED or STOPPED)."""
    c = client(address)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = ""
    while True:
        status = str(c.get_job_status(job_id).value)
        if status != last and on_status:
            on_status(status)
        last = status
        if status in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise SubmitError(f"job {job_id} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def failure_lines(address: str, job_id: str, lines: int = FAILED_LOG_LINES) -> list[str]:
    """Why a job failed: Ray's status message and the last `lines` lines of its log."""
    c = client(address)
    info = c.get_job_info(job_id)
    tail = c.get_job_logs(job_id).rstrip().splitlines()[-lines:]
    message = (info.message or "").strip().splitlines()
    return ([message[0]] if message else []) + tail


def default_address() -> str:
    """RAY_API_SERVER_ADDRESS or RAY_ADDRESS when they name a dashboard, else the local one."""
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(name, "")
        if value.startswith(("http://", "https://")):
            return value
    return DEFAULT_ADDRESS


def default_job_id(name: str) -> str:
    """A job id that names the study (shown in the dashboard's job list), unique per second."""
    return f"lmnas-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
