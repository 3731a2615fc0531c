"""The Hydra entry glue: a plain run's config is composed once, and a bad one is one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from search_lab.cli.glue import entry
    from search_lab.core import CONF_DIR

    calls = []
    original = ConfigLoaderImpl.load_configuration

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("overrides", args[1] if len(args) > 1 else None))
        return original(self, *args, **kwargs)

    ConfigLoaderImpl.load_configuration = counting

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def main(cfg):
        print("ran", HydraConfig.get().mode, cfg.feature.name, cfg.metric.name)

    sys.argv = ["evaluate", *sys.argv[1:]]
    entry(main, "config")
    print("compositions", len(calls))
    print("restored", ConfigLoaderImpl.load_configuration is counting)
    """
)


def run(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_plain_run_composes_its_config_once(tmp_path: Path) -> None:
    done = run(tmp_path, "feature=lbp", "metric=euclidean")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "ran RunMode.RUN lbp euclidean" in lines
    assert "compositions 1" in lines  # Hydra alone composes twice
    assert "restored True" in lines  # Hydra's own methods are back once the command ends


def test_a_bad_override_is_one_line_before_any_run(tmp_path: Path) -> None:
    done = run(tmp_path, "feature.binz=3")
    assert done.returncode == 2 and "ran" not in done.stdout
    assert done.stderr.strip().splitlines() == [
        "error: Could not override 'feature.binz'. To append to your config use +feature.binz=3"
    ]
