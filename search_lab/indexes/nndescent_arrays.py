"""A prepared pynndescent index as plain arrays (``nndescent.npz``): no pickle, checked on read.

pynndescent's own way to save an index is ``pickle``, and unpickling a file runs whatever code
the file names: anyone handing over an index folder (recomputing its checksums) could run code
in ``search``, ``evaluate`` or the app. Here the state pynndescent pickles (its
``__getstate__``: the reordered data, the k-NN graph, the pruned search graph, the search
trees, random states and settings) is written as numpy arrays plus one JSON object of scalar
settings, and read back with ``allow_pickle=False``. The loaded object is rebuilt through
``NNDescent.__setstate__`` (which recreates the numba search functions from the data), so it
answers exactly as the built one did.

Hostile numbers cannot run code, but pynndescent's compiled search trusts its arrays (no
bounds checks): :func:`check_state` verifies shapes, dtypes, every graph and tree index, and
that each tree child follows its parent (no loop), before pynndescent sees them.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.core import IndexMismatchError, atomic_write_bytes

LEGACY_FILE = "nndescent.pkl"
"""The pickle older versions wrote; refused with the command that rebuilds the folder."""
SETTINGS = "settings_json"
TREE_FIELDS = ("hyperplanes", "offsets", "children", "indices")
ARRAYS = ("_raw_data", "_vertex_order", "rng_state", "search_rng_state")
DERIVED = frozenset(
    {
        "_input_dtype", "_distance_func", "_distance_correction", "_deheap_function",
        "_rerank_function", "_tree_search", "_true_distance_func", "_visited", "_dist_args",
        "_search_function", "_query_finisher_fn", "_query_ones", "_fast_plan",
    }
)  # fmt: skip
"""State pynndescent recreates from the rest (functions, workspaces): not written."""
MAX_SETTINGS_BYTES = 1 << 16


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def state_arrays(graph: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the scalar settings of a prepared ``NNDescent`` (its pickled state).

    Raises ValueError naming a part of the state that is neither (a pynndescent upgrade that
    added one must be handled here, at build time, not discovered at load).
    """
    state = graph.__getstate__()
    arrays = {name: np.asarray(state[name]) for name in ARRAYS}
    arrays["_min_distance"] = np.asarray(state["_min_distance"], np.float32)
    arrays["knn_indices"], arrays["knn_distances"] = map(np.asarray, state["_neighbor_graph"])
    csr = state["_search_graph"]
    arrays |= {"graph_data": csr.data, "graph_indices": csr.indices, "graph_indptr": csr.indptr}
    for t, tree in enumerate(state["_search_forest"]):
        arrays |= {f"tree{t}_{name}": np.asarray(tree[i]) for i, name in enumerate(TREE_FIELDS)}
        arrays[f"tree{t}_leaf_size"] = np.asarray(int(tree[4]), np.int64)
    handled = {*ARRAYS, "_min_distance", "_neighbor_graph", "_search_graph", "_search_forest"}
    settings = {}
    for key, value in state.items():
        if key in handled or key in DERIVED:
            continue
        if not _plain(value):
            raise ValueError(f"nndescent index: cannot store {key!r} ({type(value).__name__})")
        settings[key] = value
    settings["n_search_trees_saved"] = len(state["_search_forest"])
    return arrays, settings


def write_graph(path: Path, graph: Any) -> None:
    """Write a prepared ``NNDescent`` to ``path`` as an ``.npz`` of plain arrays, atomically."""
    arrays, settings = state_arrays(graph)
    blob = np.frombuffer(json.dumps(settings).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{SETTINGS: blob})
    atomic_write_bytes(path, buffer.getvalue())


def _load_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and settings of ``path``; IndexMismatchError if it is not such a file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, TypeError, EOFError, MemoryError, zipfile.BadZipFile) as err:
        raise IndexMismatchError(f"{path} is not an NN-descent index (not a numpy .npz)") from err
    try:
        blob = arrays.pop(SETTINGS)
        if blob.dtype != np.uint8 or blob.ndim != 1 or blob.size > MAX_SETTINGS_BYTES:
            raise ValueError("its settings are not a short JSON text")
        settings = json.loads(blob.tobytes())
    except (ValueError, KeyError, RecursionError) as err:
        raise IndexMismatchError(f"{path} is not an NN-descent index ({err!r})") from err
    if not isinstance(settings, dict) or not all(map(_plain, settings.values())):
        raise IndexMismatchError(f"{path} is not an NN-descent index (bad settings)")
    return arrays, settings


def _need(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise IndexMismatchError(f"{path} is damaged or was not written by search_lab: {what}")


def _array(arrays: dict[str, np.ndarray], name: str, kind: str, shape: tuple) -> np.ndarray:
    """``arrays[name]`` when its dtype kind and shape (None: any length) fit, else ValueError."""
    value = arrays.get(name)
    if value is None or value.dtype.kind != kind or value.ndim != len(shape):
        raise ValueError(f"{name} is missing or of the wrong type")
    if any(want is not None and got != want for got, want in zip(value.shape, shape, strict=True)):
        raise ValueError(f"{name} has shape {value.shape}")
    return value


def _in_range(values: np.ndarray, low: int, high: int) -> bool:
    return values.size == 0 or (int(values.min()) >= low and int(values.max()) < high)


def _check_tree(arrays: dict[str, np.ndarray], t: int, n: int, dim: int, path: Path) -> tuple:
    """Tree ``t`` as pynndescent's flat tuple, after checking it can be walked safely."""
    kids = _array(arrays, f"tree{t}_children", "i", (None, 2))
    nodes = len(kids)
    planes = _array(arrays, f"tree{t}_hyperplanes", "f", (nodes, None))
    offsets = _array(arrays, f"tree{t}_offsets", "f", (nodes,))
    points = _array(arrays, f"tree{t}_indices", "i", (None,))
    leaf = int(_array(arrays, f"tree{t}_leaf_size", "i", ()))
    inner = kids[:, 0] > 0
    order = np.arange(nodes)[:, None]
    _need(planes.shape[1] == dim or not inner.any(), path, f"tree {t} has planes of another size")
    _need(_in_range(points, 0, n), path, f"tree {t} names points outside 0..{n - 1}")
    _need(bool((kids[inner] > order[inner]).all()), path, f"tree {t} has a node loop")
    _need(_in_range(kids[inner], 1, nodes), path, f"tree {t} names nodes it does not hold")
    bounds = -kids[~inner]
    ok = bool(((bounds[:, 0] <= bounds[:, 1]) & (bounds[:, 1] <= len(points))).all())
    _need(ok and leaf > 0, path, f"tree {t} has leaves outside its point list")
    return planes, offsets, kids, points, leaf


def check_state(path: Path, arrays: dict[str, np.ndarray], settings: dict, shape: tuple) -> dict:
    """The state ``NNDescent.__setstate__`` takes, built from checked arrays and settings."""
    from scipy.sparse import csr_array

    n, dim = shape
    _need(settings.get("dim") == dim and settings.get("_is_sparse") is False, path, "its shape")
    _need(settings.get("quantization") is None, path, "a quantized index")
    data = _array(arrays, "_raw_data", "f", (n, dim)).astype(np.float32, copy=False)
    _need(bool(np.isfinite(data).all()), path, "its vectors hold NaN or infinity")
    order = _array(arrays, "_vertex_order", "i", (n,))
    _need(bool((np.bincount(order.clip(0, n), minlength=n + 1)[:n] == 1).all()), path, "order")
    knn = _array(arrays, "knn_indices", "i", (n, None))
    _need(_in_range(knn, -1, n), path, f"its k-NN graph names items outside 0..{n - 1}")
    indptr = _array(arrays, "graph_indptr", "i", (n + 1,))
    indices = _array(arrays, "graph_indices", "i", (None,))
    weights = _array(arrays, "graph_data", "u", (len(indices),))
    ok = indptr[0] == 0 and indptr[-1] == len(indices) and bool((np.diff(indptr) >= 0).all())
    _need(ok and _in_range(indices, 0, n), path, "its search graph names items it does not hold")
    trees = int(settings.pop("n_search_trees_saved", 0))
    _need(trees >= 1, path, "no search tree")
    state = {**settings, "_raw_data": data, "_vertex_order": order}
    state |= {k: _array(arrays, k, "i", (None,)) for k in ("rng_state", "search_rng_state")}
    state["_neighbor_graph"] = (knn, _array(arrays, "knn_distances", "f", knn.shape))
    state["_search_graph"] = csr_array((weights, indices, indptr), shape=(n, n))
    state["_search_forest"] = tuple(_check_tree(arrays, t, n, dim, path) for t in range(trees))
    state["_min_distance"] = np.float32(_array(arrays, "_min_distance", "f", ()))
    state |= {"_input_dtype": np.float32, "_dist_args": (), "_distance_correction": None}
    state["_visited"] = np.zeros(n // 8 + 1, np.uint8)
    return state


def read_graph(path: Path, metric: str, size: int, dim: int) -> Any:
    """The ``NNDescent`` saved by :func:`write_graph`, checked against the record's shape.

    Raises
    ------
    IndexMismatchError
        The file is not such an ``.npz``, was built for another metric, or holds arrays whose
        shapes, types or indices are wrong: one line naming the file.
    """
    from pynndescent import NNDescent

    arrays, settings = _load_npz(path)
    if settings.get("metric") != metric:
        raise IndexMismatchError(f"{path} was built for metric {settings.get('metric')!r}")
    try:
        state = check_state(path, arrays, settings, (size, dim))
    except ValueError as err:
        raise IndexMismatchError(
            f"{path} is damaged or was not written by search_lab: {err}"
        ) from err
    graph = NNDescent.__new__(NNDescent)
    try:
        graph.__setstate__(state)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
        raise IndexMismatchError(f"{path} cannot be read by pynndescent ({err})") from err
    return graph
