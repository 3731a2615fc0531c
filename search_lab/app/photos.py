"""Your own photos in the app: which folders it may read, and indexing one in the background.

Anyone who can reach the page could otherwise make the server read its whole disk, so the
folders the page may index are those of one setting, ``roots`` in ``conf/app.yaml`` (default:
the project's ``data`` folder; ``SEARCH_LAB_ROOTS``, a ``:``-separated list, overrides it). A
path is resolved first (symbolic links, ``..``) and refused with one line unless it lies inside
one of them. An indexing job runs in a thread of the app's server, not of the page: leaving
the page does not stop it, and coming back shows its progress; the feature cache keeps what
was extracted. The index lands in the app's index folder, so the Search page lists it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_lab.app.paths import indexes_dir
from search_lab.cli import RECOMMENDED
from search_lab.core import CONF_DIR, PROJECT_DIR, ConfigError, SearchLabError
from search_lab.data import Dataset

ROOTS_ENV = "SEARCH_LAB_ROOTS"
APP_CONFIG = CONF_DIR / "app.yaml"
RECIPES = {
    "recommended": [RECOMMENDED],
    "hsv": ["feature=hsv"],
    "cnn": ["feature=cnn"],
}
"""What the page offers, as build_index overrides: the recommended recipe (CNN, colour and
geometric re-ranking), the fast colour histogram, and the plain CNN descriptor."""


def recipes() -> list[str]:
    """The recipes offered here, the default first: ``recommended`` when its CNN can run,
    else the colour histogram alone (:func:`search_lab.cli.recipes.cnn_missing`)."""
    from search_lab.cli import cnn_missing  # composes a config: Hydra, once

    return list(RECIPES) if cnn_missing() is None else ["hsv"]


def allowed_roots() -> list[Path]:
    """The folders the page may index (resolved): ``$SEARCH_LAB_ROOTS`` or ``app.yaml``'s
    ``roots``; relative ones are taken from the project folder. Cached per setting."""
    mtime = APP_CONFIG.stat().st_mtime_ns if APP_CONFIG.is_file() else 0
    return list(_roots(os.environ.get(ROOTS_ENV) or "", mtime))


@functools.lru_cache(maxsize=8)
def _roots(env: str, mtime: int) -> tuple[Path, ...]:
    """:func:`allowed_roots` for this environment value and ``app.yaml`` version."""
    if env:
        listed = [p for p in env.split(os.pathsep) if p]
    elif mtime:
        from omegaconf import OmegaConf

        listed = [str(p) for p in OmegaConf.load(APP_CONFIG).get("roots") or []]
    else:
        listed = []
    return tuple(dict.fromkeys((PROJECT_DIR / Path(p).expanduser()).resolve() for p in listed))


def confine(text: str, roots: list[Path]) -> Path:
    """The folder ``text`` names, resolved, if it lies inside one of ``roots``.

    Raises
    ------
    ConfigError
        One line: empty, outside every root (after resolving links and ``..``), or not a folder.
    """
    text = text.strip()
    if not text:
        raise ConfigError("type the path of a folder on the server")
    if "\x00" in text:
        raise ConfigError("a folder path cannot hold a NUL character")
    path = Path(text).expanduser()
    resolved = (path if path.is_absolute() else PROJECT_DIR / path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots) or "none"
        raise ConfigError(
            f"{text} is outside the folders this app may read ({shown}); "
            f"add it to roots in {APP_CONFIG.relative_to(PROJECT_DIR)} (or {ROOTS_ENV})"
        )
    if not resolved.is_dir():
        raise ConfigError(f"{text} is not a folder")
    return resolved


def index_name(folder: Path, recipe: str) -> str:
    """The index folder's name: ``photos-<folder name>-<hash of its path>-<recipe>``."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", folder.name).strip("_")[:40] or "root"
    digest = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"photos-{slug}-{digest}-{recipe}-cosine-exact"


def build_config(folder: Path, recipe: str) -> dict[str, Any]:
    """The build_index configuration for ``folder`` (plain layout) and ``recipe``."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    from search_lab.cli import compose_config

    target = indexes_dir() / index_name(folder, recipe)
    cfg = compose_config(
        ["progress=false", "dataset.layout=plain", *RECIPES[recipe]], "build_index"
    )
    cfg["dataset"]["root"] = str(folder)  # set here: a path may hold '=' or quotes
    cfg["index_dir"] = str(target)
    return cfg


@dataclass
class Job:
    """An indexing job: its folder and target, and how far it got (read by the page)."""

    folder: Path
    recipe: str
    index_dir: Path
    state: str = "starting"  # starting (reading the folder) | extracting | local | done | failed
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    message: str = ""
    first: tuple[float, int] | None = None  # (time, count) of the first image extracted
    extracted: float | None = None  # when extraction ended (local features may follow)

    @property
    def running(self) -> bool:
        return self.state not in ("done", "failed")

    def rate(self) -> float:
        """Images extracted per second since the first one (hashing the folder comes before)."""
        if self.first is None:
            return 0.0
        elapsed = (self.extracted or self.ended or time.monotonic()) - self.first[0]
        return (self.done - self.first[1]) / elapsed if elapsed > 0 else 0.0

    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


NO_GROUND_TRUTH = (
    "This is a plain collection (a folder of photos): it has no ground truth, so no image "
    "is marked relevant and no average precision is computed."
)

EVALUATED_ONLY = (
    "Runs of `python -m search_lab.evaluate` on labelled datasets. A plain collection (Your "
    "photos) has no ground truth to score, so it has no runs here."
)


def is_plain(dataset: Dataset | None) -> bool:
    """True for a collection without queries (the plain layout): nothing to score."""
    return dataset is not None and not dataset.queries


_JOBS: dict[str, Job] = {}
_LOCK = threading.Lock()


def jobs() -> list[Job]:
    """Every job this server started, newest first."""
    with _LOCK:
        return sorted(_JOBS.values(), key=lambda j: -j.started)


def start(folder: Path, recipe: str) -> Job:
    """Start indexing ``folder`` in a background thread, or return its job if it is running."""
    cfg = build_config(folder, recipe)
    key = cfg["index_dir"]
    with _LOCK:
        if key in _JOBS and _JOBS[key].running:
            return _JOBS[key]
        job = _JOBS[key] = Job(folder, recipe, Path(key))
    threading.Thread(target=_run, args=(job, cfg), daemon=True, name=f"index {key}").start()
    return job


def _run(job: Job, cfg: dict[str, Any]) -> None:
    """Build or update the index (only new and changed photos are extracted, chunk by chunk
    into the content-keyed store: a job cut short resumes where it stopped), recording
    progress and the outcome on ``job``; with re-ranking, the local features too, so that the
    first search does not wait for them."""
    from search_lab.retrieval import build_pipeline, index_local_features, update_index

    def on_image(done: int, total: int) -> None:
        if job.first is None:
            job.first = (time.monotonic(), done)
        job.state, job.done, job.total = "extracting", done, total

    try:
        engine, report = update_index(build_pipeline(cfg, on_image), job.index_dir)
        job.extracted, job.state = time.monotonic(), "local"
        local = index_local_features(engine, cfg.get("rerank"))  # None without re-ranking
        skipped = len(engine.manifest["skipped"])
        done = f"{len(engine.names)} images indexed ({skipped} files skipped): {report.line()}"
        job.message = done + (f"; {local}" if local else "")
        job.state = "done"
    except SearchLabError as err:
        job.message, job.state = str(err), "failed"
    except Exception as err:
        job.message, job.state = f"{type(err).__name__}: {err}", "failed"
    finally:
        job.ended = time.monotonic()
