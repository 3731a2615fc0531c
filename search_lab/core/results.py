"""The one results writer and reader: metrics.json, rankings.dat (Holidays format), summaries.

Every file is written atomically (temporary file, then rename), so an interrupted run never
leaves a half-written result that a sweep or the app would read as finished.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from search_lab.core import readers
from search_lab.core.files import atomic_write_bytes
from search_lab.core.logs import shown

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
RANKINGS_FILE = "rankings.dat"
_UNCARRIED = re.compile(r"[\s%\ud800-\udfff]")  # separators, the escape itself, raw bytes


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null, numpy scalars and tuples become plain values."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_bytes(path, (json.dumps(_clean(data), indent=2) + "\n").encode())


def read_json_object(
    path: str | Path, *, max_bytes: int = readers.JSON_MAX_BYTES
) -> dict[str, Any]:
    """Read a JSON object written by :func:`write_json`, bounded (:mod:`search_lab.core.readers`).

    Raises FileNotFoundError when missing, UnreadableFileError (a ValueError) when it is not a
    regular file, too large or deep, not JSON, or not an object.
    """
    value = readers.read_json(path, max_bytes=max_bytes)
    return readers.expect(value, dict, f"the content of {path}")


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (tables, reports)."""
    return write_bytes(path, text.encode())


def write_report(
    json_path: str | Path, md_path: str | Path, result: Mapping[str, Any], markdown: str
) -> str:
    """Write a benchmark's figures (JSON) and its table (Markdown) atomically; returns the table."""
    write_json(json_path, result)
    write_text(md_path, markdown)
    return markdown


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` through a temporary file and a rename: the one atomic write of results."""
    path = Path(path)
    atomic_write_bytes(path, data)
    return path


def rankings_name(name: str) -> str:
    """``name`` as the space-separated rankings format can carry it, reversibly.

    Whitespace of any kind (spaces, line breaks), ``%`` and undecodable bytes are
    percent-encoded as UTF-8 (``a b.jpg`` -> ``a%20b.jpg``); every other name is unchanged,
    Holidays names included. ``urllib.parse.unquote`` gives the name back.
    """
    return _UNCARRIED.sub(
        lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogateescape")), name
    )


def rankings_lines(rankings: Iterable[tuple[str, Sequence[str]]]) -> str:
    """Holidays result format: ``QUERY 0 IMG0 1 IMG1 ...`` per query, ranks from 0.

    Names the format cannot carry are percent-encoded (:func:`rankings_name`), with one
    warning, so every query stays exactly one line. Each distinct name is encoded once (a
    category benchmark repeats every name in every line).
    """
    lines, encoded, prefixes = [], {}, []
    for query, results in rankings:
        for name in (query, *results):
            if name not in encoded:
                encoded[name] = rankings_name(name)
        prefixes += [f"{rank} " for rank in range(len(prefixes), len(results))]
        pairs = " ".join(map(str.__add__, prefixes, map(encoded.__getitem__, results)))
        lines.append(f"{encoded[query]} {pairs}".rstrip())
    escaped = sorted(name for name, enc in encoded.items() if name != enc)
    if escaped:
        example = escaped[0]
        log.warning(
            "%s: %d file names hold spaces, line breaks or %%, which the space-separated format "
            "cannot carry: written percent-encoded (e.g. %r as %r)",
            RANKINGS_FILE,
            len(escaped),
            example,
            rankings_name(example),
        )
    return "\n".join(lines) + "\n"


def write_rankings(path: str | Path, rankings: Iterable[tuple[str, Sequence[str]]]) -> Path:
    """Write rankings (query name, result names best first) in the official Holidays format."""
    return write_text(path, rankings_lines(rankings))


def summary_lines(metrics: Mapping[str, Any]) -> list[str]:
    """A one-screen human summary of a metrics dict."""
    ks = list(metrics.get("precision_at", {}))
    ci = metrics.get("map_ci95")
    interval = f"   95% CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
    lines = [
        f"mAP            {metrics['map']:.4f}{interval}   ({metrics['n_queries']} queries, "
        f"{metrics['n_images']} images, {metrics['n_skipped']} skipped)",
        "precision@k    " + "  ".join(f"@{k} {metrics['precision_at'][k]:.4f}" for k in ks),
        "recall@k       " + "  ".join(f"@{k} {metrics['recall_at'][k]:.4f}" for k in ks),
    ]
    if "ann_recall_at" in metrics:
        lines.append(
            "ANN recall@k   "
            + "  ".join(f"@{k} {v:.4f}" for k, v in metrics["ann_recall_at"].items())
        )
    if "subsets" in metrics:
        sub = metrics["subsets"]
        lines.append(
            f"subsets        {len(sub['map'])} x {sub['groups']} groups: mAP mean "
            f"{sub['map_mean']:.4f}  min {sub['map_min']:.4f}  std {sub['map_std']:.4f}"
        )
    timing = "  ".join(
        f"{key[:-2]} {metrics[key]:.2f}s"
        for key in ("extract_s", "build_s", "search_s")
        if key in metrics
    )
    lines.append(f"time           {timing}")
    if metrics.get("skipped"):
        lines.append("skipped        " + ", ".join(shown(n) for n in sorted(metrics["skipped"])))
    return lines
