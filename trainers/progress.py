"""Saves of a training loop in progress, so a stage that dies (its node lost, the study's driver
killed) continues from its last save instead of from step 0. Every long loop uses it: the
super-network stage (`trainers/supernet/fit.py`), AutoDistill's regular distillation
(`trainers/distill/flash.py`) and ELM's super-network training and fine-tunes
(`trainers/elm/train.py`, `trainers/elm/finetune.py`); each takes the trainer option `save_every_s`.

A save is a folder `<directory>/step-<n>/`: the parameters (`weights.safetensors`, by position in
the optimiser's list) and the rest (`state.pt`: optimiser, learning-rate schedule, the RNGs, where
the loop stood in its epoch and its loss trace so far). Each is written in a temporary folder, flushed
to disk and renamed into place, so a kill (or a node crash) mid-save leaves the previous save
readable; older saves are removed once a newer one is in place. A save that cannot be read anyway
(a disk fault) is removed and the one before it used; a save of another model is removed with the
rest; temporary folders of a killed process are removed when the next run starts.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors import SafetensorError

WEIGHTS = "weights.safetensors"
STATE = "state.pt"
_SAVE = re.compile(r"^step-(\d+)$")
#: a save being written: `.step-<n>.tmp-<host>-<pid>`.
_PARTIAL = re.compile(r"^\.step-\d+\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)$")
#: a temporary folder untouched this long was left by a killed writer, whichever host (no save takes an hour).
_ABANDONED_S = 3600.0
#: what reading a save that was cut short (or damaged on disk) raises.
#: (FileNotFoundError: a file the save never got. Other OSErrors, e.g. a shared file system that
#: hiccups, are raised, not taken as a broken save: the trial's retry reads it again.)
_UNREADABLE = (FileNotFoundError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError, SafetensorError)
_log = logging.getLogger(__name__)


@dataclass
class ProgressSaves:
    """Where a loop saves its state and how often (`fit(..., saves=...)`)."""

    directory: Path
    #: seconds of training between saves.
    every_s: float = 60.0
    #: the caller's own state saved beside the loop's (e.g. a numpy Generator's `bit_generator.state`).
    get_extra: Callable[[], dict[str, Any]] = dict
    set_extra: Callable[[dict[str, Any]], None] = lambda state: None
    last_save: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return time.monotonic() - self.last_save >= self.every_s

    def save(self, step: int, params: Sequence[torch.Tensor], loop: dict[str, Any]) -> Path:
        """Write the parameters and `loop` (plus the RNGs and the extra state) as the save of `step`."""
        from safetensors.torch import save_file

        target = self.directory / f"step-{step:09d}"
        tmp = self.directory / f".step-{step:09d}.tmp-{socket.gethostname()}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({str(i): p.detach().cpu().contiguous() for i, p in enumerate(params)}, str(tmp / WEIGHTS))
        rngs = {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}
        torch.save({**loop, "step": step, "rng": rngs, "extra": self.get_extra()}, tmp / STATE)
        # On disk before the rename: after a node crash the renamed folder could hold cut-short files.
        for path in (tmp / WEIGHTS, tmp / STATE, tmp):
            _fsync(path)
        try:
            tmp.rename(target)
            _fsync(self.directory)
        except OSError:
            # A save of this step is already there (another attempt got this far): it holds the same state.
            shutil.rmtree(tmp, ignore_errors=True)
        # Only older saves go: another process training the same key (same seed, same steps) may be ahead.
        for older in saves(self.directory):
            if older.name < target.name:
                shutil.rmtree(older, ignore_errors=True)
        self.last_save = time.monotonic()
        return target

    def newest(self) -> dict[str, Any] | None:
        """The loop's state in the newest readable save without loading it into the model (a loop whose
        parameters change shape as it trains, e.g. ELM's growing FFNs, reshapes its model to the save's
        first)."""
        readable = self._newest_readable()
        return readable[1] if readable is not None else None

    def _newest_readable(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The weights and state of the newest save that reads back; newer unreadable ones are removed
        (a retry would otherwise fail on them again). Also the first thing a run does: it removes the
        temporary folders of killed processes."""
        from safetensors.torch import load_file

        remove_abandoned(self.directory)
        for save in reversed(saves(self.directory)):
            try:
                return load_file(str(save / WEIGHTS)), torch.load(save / STATE, weights_only=True)
            except _UNREADABLE as error:
                _log.warning("progress save %s cannot be read (%s); removed, using the save before it",
                             save, str(error).splitlines()[0] if str(error) else type(error).__name__)
                shutil.rmtree(save, ignore_errors=True)
        return None

    def restore(self, params: Sequence[torch.Tensor]) -> dict[str, Any] | None:
        """Load the newest save into `params`, the RNGs and the extra state; the loop's state, or None
        when there is no save (or it does not fit these parameters, e.g. a changed model: then the saves
        are removed, else the stale newest save would outrank every save of this run)."""
        readable = self._newest_readable()
        if readable is None:
            return None
        weights, state = readable
        if len(weights) != len(params) or any(weights.get(str(i)) is None or weights[str(i)].shape != p.shape
                                              for i, p in enumerate(params)):
            self.clear()
            return None
        with torch.no_grad():
            for i, p in enumerate(params):
                p.copy_(weights[str(i)])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.set_extra(state["extra"])
        self.last_save = time.monotonic()
        return state

    def clear(self) -> None:
        """Remove every save (the finished result is stored elsewhere)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def progress_dir(output: Path) -> Path:
    """Where the training that writes `output` saves its progress: beside it, under the same name, so a
    retry on another node (on a shared folder) or a resumed study finds it by the same key."""
    return output.parent / f"{output.name}.progress"


def check_save_every_s(value: float | None) -> None:
    """The option `save_every_s`: seconds between saves, or None for no saves."""
    if value is not None and value <= 0:
        raise ValueError(f"option 'save_every_s' must be > 0 seconds or null (no saves), got {value}")


def remove_abandoned(directory: Path) -> None:
    """Remove the temporary folders of saves whose writer was killed: one of this host whose process is
    gone, or any untouched for an hour (one of another host may still be written)."""
    if not directory.is_dir():
        return
    host = socket.gethostname()
    for path in directory.iterdir():
        if (m := _PARTIAL.match(path.name)) is None:
            continue
        try:
            idle_s = time.time() - path.stat().st_mtime
        except FileNotFoundError:  # its writer renamed it into place meanwhile
            continue
        if (m.group("host") == host and not _running(int(m.group("pid")))) or idle_s > _ABANDONED_S:
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') writes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def saves(directory: Path) -> list[Path]:
    """The complete saves in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _SAVE.match(p.name))]
    return [p for _, p in sorted(found)]
