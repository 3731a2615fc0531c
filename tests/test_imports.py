"""Importing the package changes nothing outside it: no environment variable, no resolver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import importlib, json, os, pkgutil
from omegaconf.basecontainer import BaseContainer
import streamlit  # noqa: F401  (Streamlit sets MPLBACKEND when imported: its change, not ours)
before = dict(os.environ)
resolvers = set(BaseContainer._resolvers)
import search_lab
names = [m.name for m in pkgutil.walk_packages(search_lab.__path__, "search_lab.")
         if ".app.pages." not in m.name and not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
added = sorted(set(BaseContainer._resolvers) - resolvers)
print(json.dumps({"modules": len(names), "changed": changed, "resolvers": added}))
"""


def test_importing_every_module_leaves_the_environment_and_resolvers_alone() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["modules"] > 30 and result["changed"] == []
    assert result["resolvers"] == []  # the entry points register sweep_subdir, not an import
