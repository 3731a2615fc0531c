"""Plain words for the app: escaped text, one-line labels, and configurations in words."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import pandas as pd

from search_lab.core import Registry
from search_lab.features import FEATURES
from search_lab.indexes import DISTANCES, INDEXES
from search_lab.retrieval import Hit

T = TypeVar("T")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MARKUP = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def plain(text: object) -> str:
    """``text`` escaped so Streamlit's Markdown shows it literally, on one line.

    Every ASCII punctuation character gets a backslash (CommonMark's escape, which Streamlit
    also honours for ``$`` LaTeX, ``:red[...]`` colours, ``:emoji:`` codes and ``<tags>``), and
    line breaks become spaces. Used for every file name, path, config value and error message
    a page shows in headings, captions, messages and tables.
    """
    return _MARKUP.sub(r"\\\1", _CONTROL.sub(" ", str(text)))


def plain_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` for ``st.table`` (which renders Markdown) with every text escaped."""
    out = frame.map(lambda value: plain(value) if isinstance(value, str) else value)
    out.index = [plain(label) for label in frame.index]
    out.columns = [plain(label) for label in frame.columns]
    return out


def breakable(text: str) -> str:
    """``text`` with a zero-width space after every ``/`` and ``,``, so a table cell may wrap a
    long path or override list there instead of growing past the screen."""
    return text.replace("/", "/\u200b").replace(",", ",\u200b")


def safe_label(name: str, limit: int = 80) -> str:
    """An uploaded file's name fit for one line: control characters replaced, at most ``limit``.

    The name is kept as typed otherwise; pages show it through :func:`plain`.
    """
    cleaned = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", name).strip() or "upload"
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def caption(
    hit: Hit, relevant: bool | None = None, similarity: float | None = None, weak: bool = False
) -> str:
    """Caption of a result thumbnail: rank, file name, similarity, distance, relevance, weakness.

    E.g. ``✓ #1 100001.jpg · 82% similar · d=0.0560`` or ``#9 … · d=0.4012 · weak match``.
    """
    mark = "✓ " if relevant else ""
    similar = "" if similarity is None else f" · {similarity:.0%} similar"
    flag = " · weak match" if weak else ""
    return f"{mark}#{hit.rank} {hit.name}{similar} · d={hit.distance:.4f}{flag}"


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Rows of a grid: ``items`` cut into lists of at most ``size``."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


AP_WORDS = {
    "holidays_trapezoid": "Holidays AP (trapezoid rule)",
    "standard_noninterpolated": "standard non-interpolated AP",
}


def plain_words(config: Mapping[str, Any]) -> dict[str, str]:
    """Feature, metric and index type of a config in words, e.g. ``HSV colour histogram``.

    The words are the registered classes' own (their ``label`` and ``shown`` parameters);
    a name no registry knows reads ``<name> features`` (``distance``, ``index``).
    """
    feature, metric, index = config["feature"]["name"], config["metric"]["name"], config["index"]
    return {
        "feature": _words(FEATURES, feature, {}, "features"),
        "metric": _words(DISTANCES, metric, {}, "distance"),
        "index": _words(INDEXES, index["name"], index, "index"),
    }


def _words(registry: Registry[Any], name: str, params: Mapping[str, Any], kind: str) -> str:
    """``name``'s label and shown ``params`` from ``registry``, else ``<name> <kind>``."""
    return registry.describe(name).words(params) if name in registry else f"{name} {kind}"


def method_words(config: Mapping[str, Any]) -> str:
    """The search method of a config in a sentence (from the registered index class)."""
    kind = config["index"]["name"]
    return INDEXES.describe(kind).description if kind in INDEXES else ""


def describe(config: Mapping[str, Any], n_images: int) -> str:
    """One line: ``HSV colour histogram, cosine distance, exact search (...), 648 images``."""
    words = plain_words(config)
    return f"{words['feature']}, {words['metric']}, {words['index']}, {n_images} images"
