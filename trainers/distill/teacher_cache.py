"""Teacher outputs computed once per study instead of once per trial.

Every Flash Distillation of a study draws the same batches (same corpus, seed and batch plan), so
every trial asked the frozen teacher the same questions; its forward pass was most of a trial's
cost on a CPU. `TeacherTargets` answers them from a table of earlier answers and asks the teacher
only what the table lacks:

- entries are addressed by content: the SHA-1 of the (B, S) input ids, the teacher layer and what
  was read (hidden state or attention map), so a lookup can never return targets of other inputs;
  a student whose batch plan differs (another depth, other step counts) simply misses and is
  served by the live teacher;
- the table of one batch plan lives in one safetensors file `<dir>/<key>.safetensors`, the key
  hashing the teacher, corpus, seed and plan settings (`cache_key`), written atomically (temporary
  file, then rename) by the first trial that computed it, and read once per worker process;
- tensors are stored in float16, halving the file; the targets differ from the live teacher's by
  float16 rounding (a relative 5e-4), far below what a distillation step changes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from trainers.distill.teacher import Teacher

#: bumped when what an entry means changes.
FORMAT = 1
STORE_DTYPE = torch.float16

#: the tables loaded by this process, by file: each worker reads a file once.
_LOADED: dict[Path, dict[str, Tensor]] = {}


def cache_key(fields: dict[str, Any]) -> str:
    """A short stable hash of everything that decides the batches and the teacher's answers."""
    text = json.dumps({"format": FORMAT, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def ids_digest(ids: Tensor) -> str:
    array = ids.detach().to("cpu", torch.int64).contiguous().numpy()
    return hashlib.sha1(repr(array.shape).encode() + array.tobytes()).hexdigest()[:24]


class TeacherTargets:
    """The teacher's hidden states and attention maps for given inputs, from the table when present.

    With `path=None` it is the live teacher and nothing is kept.
    """

    def __init__(self, teacher: Teacher, path: Path | None = None) -> None:
        self.teacher = teacher
        self.path = path
        self.table: dict[str, Tensor] = {} if path is None else dict(load_table(path))
        self.new: dict[str, Tensor] = {}
        self.hits = 0
        self.misses = 0

    @property
    def device(self) -> torch.device:
        return self.teacher.device

    def layer(self, ids: Tensor, layer: int, attention: bool = True) -> tuple[Tensor, Tensor | None]:
        """Teacher layer `layer`'s (B, S, D) output and, when asked, its (B, H, S, S) attention
        probabilities for (B, S) unpadded `ids` (layer 0 is the embedding output)."""
        digest = ids_digest(ids)
        names = [f"{digest}.{layer}.h"] + ([f"{digest}.{layer}.a"] if attention else [])
        if self.path is not None and all(n in self.table for n in names):
            self.hits += 1
            return self.stored(names, attention)
        self.misses += 1
        out = self.teacher(ids.to(self.device), torch.ones_like(ids, device=self.device), num_layers=max(layer, 1))
        hidden = out.hidden_states[layer]
        probs = out.attentions[layer - 1] if attention else None
        if self.path is None:
            return hidden, probs
        for name, value in zip(names, (hidden, probs)):
            stored = value.detach().to("cpu", STORE_DTYPE).contiguous()  # type: ignore[union-attr]
            self.table[name] = stored
            self.new[name] = stored
        # The stored (rounded) values, so the trial that fills the table trains exactly as those reading it.
        return self.stored(names, attention)

    def stored(self, names: list[str], attention: bool) -> tuple[Tensor, Tensor | None]:
        found = [self.table[n].to(self.device, torch.float32) for n in names]
        return found[0], (found[1] if attention else None)

    def save(self) -> Path | None:
        """Write the table when this run added entries; returns the file written (None when nothing was)."""
        if self.path is None or not self.new:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Another process may have written entries meanwhile: keep theirs and ours.
        merged = {**read_file(self.path), **self.table}
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        save_file(merged, str(tmp), metadata={"format": str(FORMAT)})
        tmp.replace(self.path)
        _LOADED[self.path] = merged
        self.new = {}
        return self.path


def read_file(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        return {}
    try:
        return load_file(str(path))
    except Exception:  # a truncated or foreign file is rebuilt, never trusted
        return {}


def load_table(path: Path) -> dict[str, Tensor]:
    """The table in `path`, read from disk once per process (empty when there is none yet)."""
    if path not in _LOADED:
        table = read_file(path)
        if not table:
            return {}
        _LOADED[path] = table
    return _LOADED[path]
