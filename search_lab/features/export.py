"""The CNN graph exported once to ONNX, stored under the cache folder, verified on every load.

:class:`Exports` writes ``<folder>/<key>.onnx`` plus ``<key>.json`` (what it was built from and
its XXH3-128 checksum). The key hashes everything the file depends on: backbone, layer, a digest
of the network's weights (so a changed weights file is a new export), pooling and its exponent,
precision, the opset, the torch version that exported it, the engine and the engine's version.
Every load verifies the checksum and the recorded key; a damaged, edited or stale file is
exported again with one log line. One process exports while the others wait on a file lock; a
read-only folder is used as it is when its export is valid, else the export goes to a
temporary folder for this process (one log line). Input height and width are dynamic axes
(fully connected layers: batch only), so every scale of a multi-scale recipe runs on one graph.

EfficientNet-Lite's strided convs compute TensorFlow "same" padding in Python from the input
size, which a trace would freeze at the sample's size (0.5 relative error at other sizes); the
exported copy computes it from the traced shape instead (``_TracedSamePad``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash
from filelock import FileLock

from search_lab.core import (
    ConfigError,
    atomic_write_bytes,
    atomic_write_json,
    cache_root,
    integrity,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

OPSET = 17
EXPORT_FORMAT = 1  # bump when the exported graph changes for the same inputs


def default_folder() -> Path:
    """Where exports live without ``feature.export_dir``: ``$SEARCH_LAB_CACHE/engines``."""
    return cache_root() / "engines"


def weights_digest(module: torch.nn.Module) -> str:
    """XXH3-128 of every parameter and buffer (names, shapes, values) of ``module``."""
    h = xxhash.xxh3_128()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _traced_same_pad_class() -> type:
    import torch
    import torch.nn.functional as F

    class _TracedSamePad(torch.nn.Module):
        """A TF-"same" conv whose padding follows the input's shape inside a trace too."""

        def __init__(self, conv: torch.nn.Conv2d) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            c = self.conv
            if c.stride == (1, 1) and all(k == 1 for k in c.kernel_size):
                return F.conv2d(x, c.weight, c.bias, 1, 0, c.dilation, c.groups)
            pads: list[Any] = []
            for axis, k, s, d in zip((-1, -2), c.kernel_size[::-1], c.stride[::-1],
                                     c.dilation[::-1], strict=True):  # fmt: skip
                i = x.shape[axis]  # a traced value while exporting, an int otherwise
                total = ((i + s - 1) // s - 1) * s + (k - 1) * d + 1 - i
                if isinstance(total, torch.Tensor):
                    total = torch.clamp(total, min=0)
                else:
                    total = max(total, 0)
                pads += [total // 2, total - total // 2]
            return F.conv2d(F.pad(x, pads), c.weight, c.bias, c.stride, 0, c.dilation, c.groups)

    return _TracedSamePad


def _traceable(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every dynamic-same-padding conv (EfficientNet-Lite) made traceable."""
    wrapper = _traced_same_pad_class()
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ == "Conv2dDynamicSamePadding":
                setattr(parent, name, wrapper(child))
    return module


def graph_module(forward: Callable, pool: Callable | None) -> torch.nn.Module:
    """A copy of the network up to its layer, then ``pool`` (None: fully connected output).

    ``forward`` is what :func:`~search_lab.features.backbones.load_model` returns: a module or
    a module's bound method. The copy is on the CPU, float32, in eval mode, export-ready.
    """
    import copy

    import torch

    owner = getattr(forward, "__self__", forward)
    method = getattr(forward, "__name__", "forward") if owner is not forward else "forward"
    if not isinstance(owner, torch.nn.Module):
        raise ConfigError(f"cnn: cannot export {forward!r}: not a torch module")

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _traceable(copy.deepcopy(owner).cpu().float().eval())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = getattr(self.net, method)(x)
            return pool(y) if pool is not None and y.ndim == 4 else y

    return Graph().eval()


def export_onnx(graph: torch.nn.Module, *, fixed_side: int | None) -> bytes:
    """The ONNX bytes of ``graph``: dynamic batch, and dynamic size unless ``fixed_side``."""
    import torch

    side = fixed_side or 224
    sample = torch.zeros(2, 3, side * 3 // 4 if fixed_side is None else side, side)
    axes: dict[int, str] = {0: "batch"}
    if fixed_side is None:
        axes.update({2: "height", 3: "width"})
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notes: fidelity is checked
        torch.onnx.export(
            graph, (sample,), buffer, dynamo=False, opset_version=OPSET,
            input_names=["images"], output_names=["vectors"],
            dynamic_axes={"images": axes, "vectors": {0: "batch"}},
        )  # fmt: skip
    return buffer.getvalue()


class Exports:
    """Exported graphs in ``folder``: ``<key>.onnx`` and ``<key>.json``, verified on every load."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()

    @staticmethod
    def name(key: dict[str, Any]) -> str:
        """File stem of the export described by ``key`` (a hash of it)."""
        blob = json.dumps({"format": EXPORT_FORMAT, **key}, sort_keys=True, default=str)
        return xxhash.xxh3_128(blob.encode()).hexdigest()[:24]

    def valid(self, folder: Path, key: dict[str, Any]) -> tuple[Path | None, str]:
        """(path, "") of a verified export in ``folder``, else (None, why it is not usable)."""
        stem = self.name(key)
        path, meta_path = folder / f"{stem}.onnx", folder / f"{stem}.json"
        if not path.is_file() and not meta_path.is_file():
            return None, ""
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("key") != json.loads(json.dumps(key, default=str)):
                return None, "written for another model, engine or engine version"
            if integrity.file_digest(path) != meta.get(integrity.HASH):
                return None, "checksum mismatch (truncated or edited)"
        except (OSError, ValueError, AttributeError) as err:
            return None, f"unreadable ({err})"
        return path, ""

    def get(self, key: dict[str, Any], build: Callable[[], bytes]) -> Path:
        """Path of the verified export for ``key``, calling ``build()`` once if it is missing.

        Processes exporting the same key at once take turns on a file lock: the first exports,
        the others find its file. A damaged or stale export is rebuilt (one warning).
        """
        path, _ = self.valid(self.folder, key)
        if path is not None:
            return path
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.folder / f"{self.name(key)}.lock"))
            with lock:
                return self._build(self.folder, key, build)
        except OSError as err:  # a read-only folder (or file system): export for this run only
            tmp = Path(tempfile.mkdtemp(prefix="search_lab-engines."))
            log.warning(
                "engine export folder %s is not writable (%s): exporting to %s for this run",
                self.folder, err.strerror, tmp,
            )  # fmt: skip
            return self._build(tmp, key, build)

    def _build(self, folder: Path, key: dict[str, Any], build: Callable[[], bytes]) -> Path:
        path, why = self.valid(folder, key)  # another process may have exported meanwhile
        if path is not None:
            return path
        stem = self.name(key)
        if why:
            log.warning("engine export %s is not usable (%s): exporting again", stem, why)
        data = build()
        path = atomic_write_bytes(folder / f"{stem}.onnx", data)
        meta = {"key": key, integrity.HASH: integrity.digest(data), "bytes": len(data)}
        atomic_write_json(folder / f"{stem}.json", meta, indent=1)
        log.info("exported %s/%s for %s (%d bytes)", folder, stem, key.get("engine"), len(data))
        return path
