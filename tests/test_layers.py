"""The rule of the layers: the core imports no user interface, no config framework, no entry layer.

Core = every module of ``search_lab`` outside the entry layers (``cli/``, ``app/``,
``benchmarks/``, ``report/``) and the thin ``python -m`` shims that forward to them. Read from
the source (every ``import``, including those inside functions), so a lazy import cannot hide.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "search_lab"
ENTRY_LAYERS = ("cli", "app", "benchmarks", "report")
FORBIDDEN = ("streamlit", "hydra", "omegaconf", *(f"search_lab.{layer}" for layer in ENTRY_LAYERS))


def _is_main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``: runs as a command only, never when imported."""
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth, outside its ``__main__`` block."""
    tree = ast.parse(path.read_text(), str(path))
    tree.body = [n for n in tree.body if not _is_main_block(n)]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _is_shim(path: Path) -> bool:
    """A ``python -m`` shim: only a docstring, imports from an entry layer, ``__all__`` and a
    ``__main__`` block (kept so that documented commands and old imports still work)."""
    body = ast.parse(path.read_text()).body
    layers = [["search_lab", layer] for layer in ENTRY_LAYERS]
    entry = [
        n
        for n in body
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[:2] in layers
    ]
    allowed = (ast.Expr, ast.Import, ast.ImportFrom, ast.Assign, ast.If)
    return (
        bool(entry)
        and all(isinstance(n, allowed) for n in body)
        and not any(
            isinstance(n, ast.Assign) and n.targets[0].id != "__all__"  # type: ignore[attr-defined]
            for n in body
        )
    )


def core_modules() -> list[Path]:
    """Every core source file."""
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] not in ENTRY_LAYERS and not _is_shim(p)
    ]


def test_the_core_imports_no_ui_no_hydra_and_no_entry_layer() -> None:
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(
            n for n in _imports(p) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)
        )
        for p in core_modules()
    }
    assert len(offenders) > 30  # the core is most of the package
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_core_loads_neither_streamlit_nor_hydra() -> None:
    modules = [
        "search_lab."
        + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).replace(".__init__", "")
        for p in core_modules()
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m.rstrip('.'))\n"
        "print(sorted(m for m in ('streamlit', 'hydra', 'omegaconf') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
