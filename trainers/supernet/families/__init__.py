"""The encoder families a super-network can be built from, by Hugging Face `model_type`.

Every module of this package except `base` defines one `FAMILY`; adding a family is adding its
module (and its test in tests/unit/test_families.py). The modules hold only name tables and
config readers, so importing them all on first use is cheap.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from dataclasses import asdict
from typing import Any, Mapping, TypeVar

from search_spaces.pruning import PruningSpace
from search_spaces.sub_network import EncoderShape
from trainers.supernet.families.base import Family
from trainers.supernet.standalone import CompactBertConfig

Space = TypeVar("Space", bound=PruningSpace)

__all__ = ["Family", "families", "family_for", "compact_config", "encoder_shape", "UnsupportedFamilyError"]


class UnsupportedFamilyError(ValueError):
    """A checkpoint whose model_type no family reads."""


@cache
def families() -> dict[str, Family]:
    """Every registered family by each of its model_types."""
    out: dict[str, Family] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            family: Family = importlib.import_module(f"{__name__}.{module.name}").FAMILY
            out |= {t: family for t in family.model_types}
    return out


def family_for(model_type: object) -> Family:
    """The family reading `model_type`; one line listing the supported ones otherwise."""
    known = families()
    if model_type not in known:
        raise UnsupportedFamilyError(f"model_type {model_type!r} is not supported; the super-network reads "
                                     f"{', '.join(sorted(known))}")
    return known[str(model_type)]


def compact_config(hf: Mapping[str, Any], num_labels: int | None = None) -> CompactBertConfig:
    """The full-size CompactBertConfig of a Hugging Face config.json (as a dict), read by its
    family; `num_labels` overrides the config's label count (default: its id2label's, else 2)."""
    fields = family_for(hf.get("model_type")).read(dict(hf))
    heads, layers, units = fields.pop("num_heads"), fields.pop("num_layers"), fields.pop("units")
    if fields["hidden_size"] % heads:
        raise ValueError(f"hidden_size {fields['hidden_size']} is not a multiple of {heads} attention heads")
    names = {str(k): str(v) for k, v in (hf.get("id2label") or {}).items()}
    labels = num_labels if num_labels is not None else len(names) or 2
    return CompactBertConfig(**fields, num_labels=labels, head_size=fields["hidden_size"] // heads,
                             heads=(heads,) * layers, units=(units,) * layers,
                             id2label=names if len(names) == labels else {}, family=str(hf["model_type"]))


#: the EncoderShape fields a CompactBertConfig holds under the same name.
SHARED_SIZES = ("hidden_size", "vocab_size", "max_position", "type_vocab", "num_labels", "embedding_size",
                "relative_buckets")


def encoder_shape(config: CompactBertConfig) -> EncoderShape:
    """The shape the search spaces cut of a model with equal layers (its first layer's sizes)."""
    return EncoderShape(num_layers=len(config.heads), num_heads=config.heads[0] if config.heads else 1,
                        intermediate_size=config.units[0] if config.units else 1,
                        position_offset=config.pad_token_id + 1 if config.padding_positions else 0,
                        **{name: getattr(config, name) for name in SHARED_SIZES})


def hf_shape(config: Any, num_labels: int | None = None) -> EncoderShape:
    """The shape of a Hugging Face encoder configuration (a `PretrainedConfig` or its config.json
    dict) of any supported family; `num_labels` overrides the config's."""
    hf = dict(config) if isinstance(config, Mapping) else config.to_dict()
    return encoder_shape(compact_config(hf, num_labels))


def space_for(space_class: type[Space], config: Any, num_labels: int | None = None, **options: Any) -> Space:
    """A pruning search space (SMALL, LAYER, ...) over a Hugging Face encoder configuration."""
    return space_class(**asdict(hf_shape(config, num_labels)), **options)
