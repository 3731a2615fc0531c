"""Shared fixtures: the Holidays subset, composed configs, a private feature cache."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from search_lab.cli import compose_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


@pytest.fixture(scope="session")
def holidays_dir() -> Path:
    """The dataset named by HOLIDAYS_DIR; skipped when absent, except in CI where that fails."""
    value = os.environ.get("HOLIDAYS_DIR")
    path = Path(value) if value else None
    if path is None or not path.is_dir():
        reason = f"HOLIDAYS_DIR is unset or not a folder ({value!r}); point it at holidays-small"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the dataset: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def wang_dir() -> Path:
    """The Wang/Corel-1k folder (images/, labels.csv) named by WANG_DIR; skipped when absent,
    except in CI where that fails."""
    value = os.environ.get("WANG_DIR")
    path = Path(value) if value else None
    if path is None or not (path / "labels.csv").is_file():
        reason = f"WANG_DIR is unset or holds no labels.csv ({value!r}); point it at wang-corel1k"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the dataset: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture
def make_config(tmp_path: Path, holidays_dir: Path):
    """Factory for configs on the real dataset with a private cache and no progress bar."""

    def make(*overrides: str, cache: Path | None = None, name: str = "config") -> dict[str, Any]:
        return compose_config(
            [
                f"dataset.root={holidays_dir}",
                f"cache_dir={cache or tmp_path / 'cache'}",
                "progress=false",
                *overrides,
            ],
            name,
        )

    return make


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium for a module's tests (the browser tests' pages)."""
    from playwright.sync_api import sync_playwright

    from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def _main_module_kept() -> Iterator[None]:
    """Put ``__main__`` back after each test: AppTest leaves its script there, and a process
    pool spawned by a later test would run that script in its workers (and break)."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main
