"""Hugging Face encoder checkpoints <-> the super-network's parameter names and config.

The family of the checkpoint's `model_type` (`trainers/supernet/families/`) names its tensors;
this module loads a checkpoint directory (config.json + safetensors, sharded or not, with or
without the base-model prefix of task models) and names our tensors for a standard export.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from search_spaces.sub_network import IllegalSubNetworkError
from trainers.supernet.families import Family, UnsupportedFamilyError, compact_config, family_for
from trainers.supernet.families.base import Names
from trainers.supernet.standalone import CompactBertConfig

#: checkpoint entries that carry no parameters of any family (buffers, pre-training heads).
IGNORED = re.compile(r"(position_ids|token_type_ids)$|^cls\.|^lm_head\.")
#: TF-era LayerNorm names.
LEGACY = {".gamma": ".weight", ".beta": ".bias"}


class CheckpointError(IllegalSubNetworkError):
    """A checkpoint directory that is missing, of an unsupported family, or does not match its config."""


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(\d+)"))


def _table(names: Names, to_ours: bool) -> list[tuple[re.Pattern[str], str]]:
    return [(_pattern(hf), ours) if to_ours else (_pattern(ours), hf) for ours, hf in names]


def _rename(name: str, table: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, target in table:
        m = pattern.match(name)
        if m:
            head = target.replace("{i}", m.group(1)) if m.groups() else target
            return head + name[m.end():]
    return None


def to_hf_name(name: str, family: str = "bert") -> str:
    """Our parameter name as one of `family`'s sequence-classification model."""
    out = _rename(name, _table(family_for(family).names, to_ours=False))
    assert out is not None, f"no Hugging Face {family} name for {name}"
    return out


def read_hf_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory}: no config.json; point to a Hugging Face checkpoint directory")
    return json.loads(path.read_text())


def read_family(directory: str | Path) -> Family:
    """The family of a checkpoint directory; one line listing the supported model_types otherwise."""
    try:
        return family_for(read_hf_config(directory).get("model_type"))
    except UnsupportedFamilyError as e:
        raise CheckpointError(f"{directory}: {e}") from None


def read_config(directory: str | Path, num_labels: int | None = None) -> CompactBertConfig:
    """The full-size CompactBertConfig of a Hugging Face checkpoint directory."""
    try:
        return compact_config(read_hf_config(directory), num_labels)
    except ValueError as e:  # an unsupported family or sizes no model has, in one line
        raise CheckpointError(f"{directory}: {e}") from None


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our names (safetensors, single file or sharded)."""
    from safetensors.torch import load_file

    root = Path(directory)
    family = read_family(root)
    table = _table(family.names, to_ours=True)
    ignored = re.compile(family.ignored)
    task_names = tuple({hf.split(".")[0] + "." for _, hf in family.names})
    index = root / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (root / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise CheckpointError(f"{directory}: no model.safetensors; re-save the model with save_pretrained(safe_serialization=True)")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        for name, tensor in load_file(str(root / file)).items():
            for old, new in LEGACY.items():
                name = name[: -len(old)] + new if name.endswith(old) else name
            if IGNORED.search(name) or ignored.search(name):
                continue
            # A bare encoder (e.g. a sentence encoder) has no base-model prefix.
            name = name if name.startswith(task_names) else f"{family.prefix}{name}"
            if ignored.search(name):
                continue
            ours = _rename(name, table)
            if ours is None:
                raise CheckpointError(f"{directory}: unexpected tensor {name!r} in {file}; is this a {family.model_types[0]} checkpoint?")
            state[ours] = tensor
    return state
