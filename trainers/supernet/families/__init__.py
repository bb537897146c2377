"""The encoder families a super-network can be built from, by Hugging Face `model_type`.

Every module of this package except `base` defines one `FAMILY`; adding a family is adding its
module (and its test in tests/unit/test_families.py). The modules hold only name tables and
config readers, so importing them all on first use is cheap.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from trainers.supernet.families.base import Family

__all__ = ["Family", "families", "family_for", "UnsupportedFamilyError"]


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
