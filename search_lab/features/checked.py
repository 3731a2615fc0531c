"""Engines that passed the fidelity check on this machine, recorded so that a later process runs
the export without torch.

Why: checking an engine against torch needs torch (about 1.4 s to import here) and the network
(about 0.5 s more) in every process that runs it: a third of the network pool's run over a few
hundred images, and most of a single ``search`` query. Once a process has checked an export, it
records the outcome under a key computed without torch: the network's description, a digest of
its weights file, the engine and torch versions, the thread count, the CPU, and a digest of the
code that builds, exports and checks the network. A process whose key has a record runs the
recorded export (verified by checksum, as every load is) directly; without a record, or on any
doubt (tampered record, damaged export), it takes the full path, which checks again.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
from functools import cache
from pathlib import Path
from typing import Any

import xxhash

from search_lab.core import atomic_write_json, integrity

log = logging.getLogger(__name__)

RECORD_FORMAT = 1
CODE = (
    "data/synth.py",
    "features/backbones.py",
    "features/checked.py",
    "features/cnn.py",
    "features/engines.py",
    "features/export.py",
    "features/pooling.py",
    "features/quantize.py",
)
"""Modules (under ``search_lab/``) whose code decides what is exported, what torch's reference
is, which probe images the check runs on, and how it is checked."""
ENVIRONMENT = ("ONEDNN_", "DNNL_", "OV_", "ORT_")
"""Prefixes of environment variables that can change an engine's kernels (e.g.
``ONEDNN_MAX_CPU_ISA``): part of the key. Not ``OMP_``: loading torch sets its wait policy."""


@cache
def code_digest() -> str:
    """XXH3-128 of the :data:`CODE` modules' source: editing any of them voids every record."""
    package = Path(__file__).resolve().parents[1]
    h = xxhash.xxh3_128()
    for name in CODE:
        h.update(name.encode() + b"\0" + (package / name).read_bytes())
    return h.hexdigest()


@cache
def cpu_identity() -> str:
    """The CPU's model and instruction-set flags (engines pick kernels by them)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("model name", "flags", "Features", "CPU part") and name not in fields:
                    fields[name] = value.strip()
                if not line.strip() and fields:
                    break  # the first processor tells
    except OSError:
        pass
    text = json.dumps([platform.machine(), sorted(fields.items())])
    return xxhash.xxh3_128(text.encode()).hexdigest()


def package_version(name: str) -> str | None:
    """Installed version of a distribution, read without importing it; None if absent."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def record_key(
    network: dict[str, Any], engine: str, threads: int | None, bound: float
) -> dict[str, Any]:
    """Everything the check's outcome for ``engine`` on ``network`` depends on, without torch.

    ``network`` describes the network as it is run (backbone, layer, weights file and its
    digest, pooling, precision, input sides, ...); ``bound`` is what the check demanded; the
    rest is the software and the machine.
    """
    return {
        "format": RECORD_FORMAT,
        **network,
        "bound": bound,
        "engine": engine,
        "engine_version": package_version(engine),
        "torch": package_version("torch"),
        "torchvision": package_version("torchvision"),
        "efficientnet_lite": package_version("efficientnet-lite-pytorch"),
        "onnx": package_version("onnx"),
        "threads": threads,
        "cpu": cpu_identity(),
        "environment": sorted((k, v) for k, v in os.environ.items() if k.startswith(ENVIRONMENT)),
        "code": code_digest(),
    }


class Checks:
    """Records in ``<exports folder>/checked/``: ``<hash of the record key>.json`` holding the
    key, the export's own key, what the check measured, and a checksum of all three."""

    def __init__(self, exports_folder: str | os.PathLike) -> None:
        self.folder = Path(exports_folder) / "checked"

    def _path(self, key: dict[str, Any]) -> Path:
        blob = json.dumps(key, sort_keys=True, default=str).encode()
        return self.folder / f"{xxhash.xxh3_128(blob).hexdigest()[:24]}.json"

    @staticmethod
    def _body_digest(body: dict[str, Any]) -> str:
        return integrity.digest(json.dumps(body, sort_keys=True, default=str).encode())

    def export_key(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The export key recorded for ``key``; None when there is no valid record (a damaged
        or edited one is logged once and ignored: the caller checks the engine again)."""
        path = self._path(key)
        try:
            record = json.loads(path.read_text())
            body = {k: record[k] for k in ("key", "export", "measured")}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("engine check record %s is unreadable (%s): checking again", path, err)
            return None
        if record.get(integrity.HASH) != self._body_digest(body):
            log.warning("engine check record %s fails its checksum: checking again", path)
            return None
        if body["key"] != json.loads(json.dumps(key, default=str)):
            return None  # a hash collision or a hand-copied file: not this network's record
        return body["export"]

    def add(self, key: dict[str, Any], export_key: dict[str, Any], measured: str) -> None:
        """Record that the export of ``export_key`` passed for ``key`` (``measured``: how
        close it came). A folder that cannot be written only costs later processes the check."""
        body = {"key": key, "export": export_key, "measured": measured}
        body = json.loads(json.dumps(body, default=str))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self._path(key), {**body, integrity.HASH: self._body_digest(body)})
        except OSError as err:
            log.info("engine check not recorded in %s (%s)", self.folder, err.strerror or err)
