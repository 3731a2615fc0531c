"""Worker processes the app spawns (the CNN's extraction pool when a folder is indexed from the
Your photos page) import ``app.py`` as their main module: nothing of the app may run there."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys, types
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    def state(_):
        import sys
        main = sys.modules["__mp_main__"]
        return main.__file__, sorted(m for m in sys.modules if m.startswith("search_lab.app"))

    if __name__ == "__main__":
        sys.modules["probe"] = sys.modules["__main__"]
        state.__module__ = "probe"
        fake = types.ModuleType("__main__")  # what Streamlit's script runner installs
        fake.__file__ = sys.argv[1]
        sys.modules["__main__"] = fake
        with ProcessPoolExecutor(1, get_context("spawn")) as pool:
            print(json.dumps(pool.submit(state, 0).result()))
    """
)


def test_a_spawned_worker_imports_the_app_without_running_it(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "probe.py"), str(ROOT / "app.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    main_file, app_modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert main_file == str(ROOT / "app.py")  # the worker did import app.py as its main module
    assert app_modules == []  # no page ran
    assert "ScriptRunContext" not in done.stderr  # and no Streamlit call was made outside a run
