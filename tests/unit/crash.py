"""Kill a training loop the way a lost node or an out-of-memory kill does: SIGKILL, mid-save.

`run_killed` runs `module:function(*args)` in a child process whose progress saves
(`trainers/progress.py`) are watched: while the save of step `kill_at` is being written (its
weights on disk, its state not yet) in a folder whose path holds `under`, the child sends itself
SIGKILL. Nothing in the child runs
after that (no `finally`, no exit handlers), so the newest complete save is that of the step before,
and a half-written save lies beside it, as after a real crash.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_killed(target: str, args: tuple[Any, ...], kill_at: int, workdir: Path,
               under: str = "") -> subprocess.CompletedProcess[str]:
    """Run `target` ("module:function") on `args` in a child killed while saving step `kill_at`."""
    job = workdir / "killed-job.pickle"
    job.write_bytes(pickle.dumps((target, args, kill_at, under)))
    done = subprocess.run([sys.executable, "-m", "tests.unit.crash", str(job)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == -signal.SIGKILL, f"the child was not killed (exit {done.returncode}):\n{done.stderr}"
    return done


def child(job: Path) -> None:
    import importlib

    import torch

    target, args, kill_at, under = pickle.loads(job.read_bytes())
    torch.set_num_threads(1)
    write = torch.save

    def save(obj: Any, f: Any, *rest: Any, **kwargs: Any) -> None:
        # The state file of step `kill_at`'s save, inside its temporary folder: the weights are written.
        if (isinstance(f, (str, Path)) and Path(f).parent.name.startswith(f".step-{kill_at:09d}.")
                and under in str(f)):
            os.kill(os.getpid(), signal.SIGKILL)
        write(obj, f, *rest, **kwargs)

    torch.save = save
    module, _, name = target.partition(":")
    getattr(importlib.import_module(module), name)(*args)


if __name__ == "__main__":
    child(Path(sys.argv[1]))
