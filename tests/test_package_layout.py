"""The package reads as a table of contents: ranked sub-packages, no import circles, public names.

Read from the source, every ``import`` included (those inside functions and under
``TYPE_CHECKING`` too), so a lazy import cannot hide a circle or a reach into another
sub-package's modules. A name a sub-package exports lazily (``lazy_loader.attach`` in its
``__init__``) counts as an import of the module that defines it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "search_lab"
README = (ROOT / "README.md").read_text()

RANKED = (
    "core",
    "data",
    "features",
    "indexes",
    "retrieval",
    "evaluation",
    "cli",
    "report",
    "app",
    "benchmarks",
)
"""Bottom up: each sub-package may import only those before it (and itself)."""


def module_name(path: Path) -> str:
    """``search_lab.retrieval.engine`` for ``search_lab/retrieval/engine.py``."""
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def sub_package(module: str) -> str | None:
    """The sub-package a module belongs to (None for the top-level entry points)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANKED) else None


def is_entry_point(path: Path) -> bool:
    """A thin ``python -m`` entry point: a top-level module or a ``__main__.py``."""
    return path.parent == PACKAGE or path.name == "__main__.py"


@cache
def lazy_exports(package: str) -> dict[str, str]:
    """Name -> defining module of what ``package``'s ``__init__`` attaches lazily."""
    tree = ast.parse(MODULES[package].read_text())
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "attach":
            for kw in node.keywords:
                value = ast.literal_eval(kw.value)
                if kw.arg == "submodules":
                    found.update({m: f"{package}.{m}" for m in value})
                elif kw.arg == "submod_attrs":
                    found.update({n: f"{package}.{m}" for m, names in value.items() for n in names})
    return found


def targets(node: ast.ImportFrom) -> list[str]:
    """The modules an ``from X import a, b`` statement loads, lazy exports resolved."""
    found = []
    for alias in node.names:
        full = f"{node.module}.{alias.name}"
        if full in MODULES:
            found.append(full)
        elif node.module in MODULES and alias.name in lazy_exports(node.module):
            found.append(lazy_exports(node.module)[alias.name])
        else:
            found.append(node.module)
    return found


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every search_lab module ``module`` imports, at any depth of its source."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("search_lab"):
                found.update(t for t in targets(node) if t in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
    found.discard(module)
    return frozenset(found)


def circles(edges: Callable[[str], frozenset[str]] = imports_of) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                groups.append(sorted([v, *group]))

    for module in MODULES:
        if module not in index:
            visit(module)
    return groups


def test_no_module_imports_itself_back_even_lazily() -> None:
    assert circles() == []


def test_the_circle_finder_finds_a_circle() -> None:
    """A two-module circle added to the real graph is found (the check above can fail)."""
    a, b = "search_lab.core.errors", "search_lab.core.params"
    added = {a: frozenset({b}), b: frozenset({a})}
    assert [a, b] in circles(lambda m: imports_of(m) | added.get(m, frozenset()))


def test_the_package_top_is_a_table_of_contents() -> None:
    subs = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert sorted(RANKED) == subs and len(subs) <= 10
    for path in PACKAGE.glob("*.py"):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        text = path.read_text()
        assert text.startswith('"""Entry point only:'), f"{path.name} is not a thin entry point"
        assert len(text.splitlines()) <= 12, path.name
        assert f"python -m search_lab.{path.stem}" in README, f"README does not show {path.stem}"


def sub_package_imports() -> dict[tuple[str, str], set[str]]:
    """(importer's sub-package, imported one) -> the importing modules (entry points left out)."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        if is_entry_point(path) or (mine := sub_package(module)) is None:
            continue
        for target in imports_of(module):
            theirs = sub_package(target)
            if theirs is not None and theirs != mine:
                edges[mine, theirs].add(module)
    return edges


def test_each_sub_package_imports_only_those_ranked_below_it() -> None:
    rank = {name: i for i, name in enumerate(RANKED)}
    upward = {
        f"{a} -> {b}": sorted(mods)
        for (a, b), mods in sub_package_imports().items()
        if rank[b] > rank[a]
    }
    assert upward == {}


def test_code_outside_a_sub_package_imports_only_its_public_names() -> None:
    """``from search_lab.retrieval import SearchEngine``, never ``...retrieval.engine import``."""
    reaching = []
    for module, path in MODULES.items():
        if is_entry_point(path):
            continue
        mine = sub_package(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
                continue
            theirs = sub_package(node.module) if node.module.startswith("search_lab.") else None
            if theirs and theirs != mine and node.module != f"search_lab.{theirs}":
                reaching.append(f"{module}: from {node.module} import ...")
    assert reaching == []


def test_every_public_name_resolves() -> None:
    """Each lazily exported name exists in the module the ``__init__`` says defines it."""
    import importlib

    for sub in RANKED:
        package = importlib.import_module(f"search_lab.{sub}")
        for name in getattr(package, "__all__", []):
            assert getattr(package, name) is not None, f"search_lab.{sub}.{name}"
