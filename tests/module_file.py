"""Load a Python file that is not on the import path (a benchmark script, an exported model's code)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """Execute `path` as module `name` (default: the file's stem) and return it. The module is
    registered in `sys.modules` first, because dataclasses defined in it look their module up there."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
