"""The house's boundaries (DESIGN.md §2), read from the import statements of every project module, those
inside functions included: one module imports `ray.tune`, one imports Ax, trainers and search spaces
know nothing of the orchestrator, cluster helpers neither, one module imports Optuna (an optional extra), and no project modules import each other in
a circle. Each rule is also shown to catch a made-up violation, so the test cannot pass vacuously."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "trainers", "search_spaces", "cluster", "benchmarks")

#: the adapter between our interfaces and Ray Tune; a Ray version change touches it only.
TUNE_IMPORTERS = {"orchestrator.ray_adapters"}
#: benchmarks that time Ray Tune itself, beside lmnas (they are scripts, not part of the package).
TUNE_BENCHMARKS = {"benchmarks.overhead"}
AX_IMPORTERS = {"orchestrator.searchers.ax_mobo"}
#: the Optuna samplers behind our searcher interface (`lmnas[optuna]`): nothing else in the package may
#: need the extra. Benchmarks (scripts, not the package) may also run Optuna's samplers unwrapped, as peers.
OPTUNA_IMPORTERS = {"orchestrator.searchers.optuna_samplers"}


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    #: executed when the module is imported (not inside a function, not under `if TYPE_CHECKING`).
    at_load: bool


def module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports_in(module: str, source: str, is_package: bool = False) -> list[Import]:
    """Every module an import statement of `source` names (`from a import b` names `a` and `a.b`)."""
    found: list[Import] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
            elif isinstance(child, ast.Import):
                found.extend(Import(a.name, child.lineno, at_load) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = resolve(module, child.module, child.level, is_package)
                found.append(Import(base, child.lineno, at_load))
                found.extend(Import(f"{base}.{a.name}", child.lineno, at_load) for a in child.names if a.name != "*")
            else:
                visit(child, at_load)

    visit(ast.parse(source), True)
    return found


def resolve(module: str, name: str | None, level: int, is_package: bool) -> str:
    if level == 0:
        return name or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def project_imports() -> dict[str, list[Import]]:
    return {m: imports_in(m, p.read_text(encoding="utf-8"), p.name == "__init__.py") for m, p in module_files().items()}


def within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def violations(imports: Mapping[str, list[Import]], importers: Callable[[str], bool], forbidden: str,
               allowed: Iterable[str] = ()) -> list[str]:
    """'module:line imports target' for each statement importing `forbidden` in a module `importers` selects."""
    hits = {(m, i.line): f"{m}:{i.line} imports {i.target}" for m, found in imports.items()
            if importers(m) and m not in set(allowed) for i in reversed(found) if within(i.target, forbidden)}
    return list(hits.values())


def cycles(imports: Mapping[str, list[Import]]) -> list[list[str]]:
    """Circles of project modules importing each other when loaded (Tarjan's strongly connected components)."""
    graph = {m: sorted({i.target for i in found if i.at_load and i.target in imports and i.target != m})
             for m, found in imports.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return found


RULES: dict[str, Callable[[Mapping[str, list[Import]]], list[str]]] = {
    "only the Tune adapter (and named benchmarks) import ray.tune":
        lambda imp: violations(imp, lambda m: True, "ray.tune", TUNE_IMPORTERS | TUNE_BENCHMARKS),
    "only the Ax searcher imports ax": lambda imp: violations(imp, lambda m: True, "ax", AX_IMPORTERS),
    "only the Optuna searchers (and benchmarks) import optuna":
        lambda imp: violations(imp, lambda m: not within(m, "benchmarks"), "optuna", OPTUNA_IMPORTERS),
    "trainers import nothing from the orchestrator":
        lambda imp: violations(imp, lambda m: within(m, "trainers"), "orchestrator"),
    "search spaces import nothing from the orchestrator":
        lambda imp: violations(imp, lambda m: within(m, "search_spaces"), "orchestrator"),
    "search spaces import nothing from the trainers (the trainers build on them)":
        lambda imp: violations(imp, lambda m: within(m, "search_spaces"), "trainers"),
    "cluster helpers import nothing from the orchestrator":
        lambda imp: violations(imp, lambda m: within(m, "cluster"), "orchestrator"),
    "no import cycles among project modules": lambda imp: [" -> ".join(c) for c in cycles(imp)],
}


def test_the_project_keeps_every_rule() -> None:
    imports = project_imports()
    assert len(imports) > 100 and "orchestrator.ray_adapters" in imports
    broken = {rule: found for rule, check in RULES.items() if (found := check(imports))}
    assert not broken, "\n".join(f"{rule}: {'; '.join(found)}" for rule, found in broken.items())


def test_each_rule_catches_a_violation() -> None:
    source = {
        "orchestrator.study": "def load():\n    from ray.tune import Tuner\n",
        "orchestrator.searchers.random": "import ax.service\n",
        "orchestrator.searchers.local": "def f():\n    from optuna.samplers import TPESampler\n",
        "trainers.synthetic": "from orchestrator.errors import StudyError\n",
        "search_spaces.elm": "def f():\n    import orchestrator.pareto\n",
        "search_spaces.sub_network": "def f():\n    from trainers.supernet.families import compact_config\n",
        "cluster.jobs": "from orchestrator import errors\n",
        "orchestrator.a": "from orchestrator import b\n",
        "orchestrator.b": "from . import a\n",
    }
    imports = {m: imports_in(m, text) for m, text in source.items()}
    found = {rule: check(imports) for rule, check in RULES.items()}
    assert all(found.values()), [rule for rule, hits in found.items() if not hits]
    assert found["no import cycles among project modules"] == ["orchestrator.a -> orchestrator.b"]
    # An import inside a function or under TYPE_CHECKING counts for a boundary, not for a cycle.
    lazy = {"orchestrator.a": "def f():\n    import orchestrator.b\n",
            "orchestrator.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import orchestrator.a\n"}
    assert cycles({m: imports_in(m, text) for m, text in lazy.items()}) == []
