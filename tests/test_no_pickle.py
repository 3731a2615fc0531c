"""No code runs from data: a static scan of the package for calls that unpickle or evaluate.

Unpickling a file runs whatever code it names, and every file search_lab reads back may come
from someone else (an index folder handed over with its checksums recomputed). The scan walks
the syntax tree of every module of ``search_lab`` and fails on ``pickle.load``/``loads`` (and
the same calls of ``dill``, ``cloudpickle``, ``joblib``, ``pandas.read_pickle``),
``allow_pickle=True``, ``torch.load`` without ``weights_only=True``, and ``eval``/``exec``.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "search_lab"
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}
LOADS = {"load", "loads", "Unpickler", "open"}


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a name or attribute chain, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _keyword_true(call: ast.Call, name: str) -> bool:
    return any(
        kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value is True
        for kw in call.keywords
    )


def findings(source: str) -> list[str]:
    """Each forbidden call of ``source`` as ``line: what``."""
    tree = ast.parse(source)
    imported = {  # from pickle import load (as x): the local names that unpickle
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS
        for alias in node.names
        if alias.name in LOADS
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        parts = name.split(".")
        unpickles = len(parts) == 2 and parts[0] in UNPICKLERS and parts[1] in LOADS
        if unpickles or name in imported or name.endswith("read_pickle"):
            found.append(f"{node.lineno}: {name}")
        elif name in {"eval", "exec", "builtins.eval", "builtins.exec"}:
            found.append(f"{node.lineno}: {name}(")
        elif _keyword_true(node, "allow_pickle"):
            found.append(f"{node.lineno}: allow_pickle=True")
        elif name == "torch.load" and not _keyword_true(node, "weights_only"):
            found.append(f"{node.lineno}: torch.load without weights_only=True")
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import pickle\npickle.load(f)", ["2: pickle.load"]),
        ("import pickle\nx = pickle.loads(b)", ["2: pickle.loads"]),
        ("from pickle import load as l\nl(f)", ["2: l"]),
        ("import numpy as np\nnp.load(p, allow_pickle=True)", ["2: allow_pickle=True"]),
        ("import torch\ntorch.load(p)", ["2: torch.load without weights_only=True"]),
        (
            "import torch\ntorch.load(p, weights_only=False)",
            ["2: torch.load without weights_only=True"],
        ),
        ("eval(open(p).read())", ["1: eval("]),
        ("import pandas as pd\npd.read_pickle(p)", ["2: pd.read_pickle"]),
        ("import numpy as np\nnp.load(p, allow_pickle=False)", []),
        ("import torch\ntorch.load(p, weights_only=True)", []),
        ("model.eval()", []),
        ("import pickle\npickle.dumps(x)", []),
    ],
)
def test_the_scan_finds_what_it_must(source: str, expected: list[str]) -> None:
    assert findings(textwrap.dedent(source)) == expected


def test_no_module_of_the_package_unpickles_or_evaluates() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50  # the scan sees the whole package
    bad = {
        str(path.relative_to(PACKAGE.parent)): hits
        for path in modules
        if (hits := findings(path.read_text(encoding="utf-8")))
    }
    assert bad == {}
