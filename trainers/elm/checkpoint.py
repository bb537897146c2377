"""Saving and loading a trained ELM super-network (with its distillation adapters).

A checkpoint is a folder: `elm.json` (the shape, the FFN step and every block's current width,
the teacher and the loss it was distilled with, what its SPOS training drew besides the blocks
(`elastic`, `head_counts`: what a space may search on it); after the task fine-tune, the task and its labels)
and `supernet.safetensors` (the super-network under `supernet.`, the adapters under `adapters.`, the
shared classification head under `head.` when there is one). `search_spaces.elm.ElmSpace(checkpoint=...)` reads
the same `elm.json`, so the space offers exactly the widths the super-network has. `cached_supernet`
loads a checkpoint once per process, so every trial a worker runs shares it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from search_spaces.elm import CHECKPOINT_META, ElmShape, read_checkpoint_meta, trained_elastic
from trainers.elm.distill import Adapters
from trainers.elm.supernet import ElmSuperNet, PathSampling
from trainers.report import TrainerError

WEIGHTS = "supernet.safetensors"


@dataclass(frozen=True)
class Checkpoint:
    supernet: ElmSuperNet
    adapters: Adapters
    teacher: str
    loss: str
    ffn_step: int
    #: the classification head every path shares, after the task fine-tune (None before it).
    head: torch.nn.Linear | None = None
    #: {"task": source, "labels": [names]} after the task fine-tune.
    task: dict[str, Any] | None = None
    #: what its SPOS training drew besides the blocks (the task fine-tune draws the same).
    sampling: PathSampling = PathSampling()


def save_checkpoint(directory: str | Path, supernet: ElmSuperNet, adapters: Adapters, *, teacher: str, loss: str,
                    ffn_step: int, head: torch.nn.Linear | None = None, task: dict[str, Any] | None = None,
                    sampling: PathSampling = PathSampling()) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {f"supernet.{k}": v for k, v in supernet.state_dict().items()}
    state |= {f"adapters.{k}": v for k, v in adapters.state_dict().items()}
    if head is not None:
        state |= {f"head.{k}": v for k, v in head.state_dict().items()}
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(directory / WEIGHTS))
    meta: dict[str, Any] = {
        **asdict(supernet.shape), "ffn_step": ffn_step, "ffn_widths": [list(r) for r in supernet.widths],
        "teacher": teacher, "loss": loss,
        "teacher_hidden": teacher_width(adapters, supernet.shape.hidden_size),
        **({"elastic": list(sampling.elastic)} if sampling.elastic else {}),
        **({"head_counts": list(sampling.head_counts)} if sampling.head_counts else {}),
        **({"task": task} if task is not None else {}),
    }
    (directory / CHECKPOINT_META).write_text(json.dumps(meta, indent=1))
    return directory


def teacher_width(adapters: Adapters, hidden: int) -> int:
    first = adapters[0]
    return first.out_features if isinstance(first, torch.nn.Linear) else hidden


def load_checkpoint(directory: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """A checkpoint folder; a missing or inconsistent one is a one-line TrainerError."""
    directory = Path(directory)
    try:
        meta = read_checkpoint_meta(directory)
    except ValueError as e:
        raise TrainerError(str(e)) from None
    if not (directory / WEIGHTS).is_file():
        raise TrainerError(f"checkpoint {str(directory)!r} has no {WEIGHTS}")
    shape = ElmShape(**{f.name: meta[f.name] for f in fields(ElmShape)})
    supernet = ElmSuperNet(shape, meta["ffn_widths"])
    adapters = Adapters(shape.num_layers, shape.hidden_size, meta["teacher_hidden"])
    state = load_file(str(directory / WEIGHTS))
    try:
        supernet.load_state_dict({k.removeprefix("supernet."): v for k, v in state.items() if k.startswith("supernet.")})
        adapters.load_state_dict({k.removeprefix("adapters."): v for k, v in state.items() if k.startswith("adapters.")})
    except RuntimeError as e:
        raise TrainerError(f"checkpoint {str(directory)!r} does not match its {CHECKPOINT_META}: "
                           f"{str(e).splitlines()[0]}") from None
    head = None
    if "head.weight" in state:
        head = torch.nn.Linear(shape.hidden_size, state["head.weight"].shape[0])
        head.load_state_dict({"weight": state["head.weight"], "bias": state["head.bias"]})
        head = head.to(device).eval()
    elastic, counts = trained_elastic(meta)
    sampling = PathSampling(meta["ffn_step"] if "ffn" in elastic else None, counts if "heads" in elastic else None)
    return Checkpoint(supernet.to(device).eval(), adapters.to(device).eval(), meta["teacher"], meta["loss"],
                      meta["ffn_step"], head, meta.get("task"), sampling)


@lru_cache(maxsize=2)
def _cached(directory: str, mtime_ns: int, device: str) -> Checkpoint:
    return load_checkpoint(directory, device)


def cached_supernet(directory: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """`load_checkpoint`, once per process for each (folder, weights file version, device)."""
    path = Path(directory).resolve()
    weights = path / WEIGHTS
    mtime = weights.stat().st_mtime_ns if weights.is_file() else 0
    return _cached(str(path), mtime, str(device))
