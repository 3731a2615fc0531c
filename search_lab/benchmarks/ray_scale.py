"""A large collection indexed through Ray, killed half way and resumed: ``python -m
search_lab.bench_ray_scale --images DIR [--feature cnn] [--kill-at 0.5] [--reference]
[key=value ...]`` (more ``build_index`` overrides, e.g. ``feature.size=160``).

``DIR`` is a dataset folder (e.g. 100,000 synthetic images written by ``python -m
search_lab.data.datasets distractors --count 100000 --dest DIR/all``). ``build_index executor=ray``
runs in a child process; every process of its tree (the driver, Ray's own processes, the workers) is
sampled twice a second for its peak resident memory (``VmHWM``). When ``--kill-at`` of the shards
are in the feature cache, the whole tree is killed with SIGKILL (a lost machine), then the same
command runs again and must resume from the cached shards. ``--reference`` also builds the index
uninterrupted into a fresh cache and compares the two forests byte for byte (cheap with hsv); either
way a seeded sample of images is extracted locally and compared with the vectors stored in the
index. Writes ``bench/ray_scale-<feature>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from search_lab.benchmarks.common import load_avg, machine, measure_and_report

PROJECT = Path(__file__).resolve().parents[2]
SHARD = 200


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def role(pid: int, driver: int) -> str:
    """driver, worker (a Ray task process) or ray (Ray's own services)."""
    if pid == driver:
        return "driver"
    try:
        cmd = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode()
    except OSError:
        return "gone"
    return "worker" if "default_worker" in cmd or cmd.startswith("ray::") else "ray"


def hwm_mb(pid: int) -> float:
    """Peak resident memory of ``pid`` so far (MB); 0 once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def build(args: argparse.Namespace, cache: Path, index: Path, kill_at: float | None) -> dict:
    """One ``build_index executor=ray`` run, sampled; killed once ``kill_at`` of shards exist."""
    total = -(-sum(1 for _ in args.images.rglob("*.jpg")) // SHARD)
    cmd = [sys.executable, "-m", "search_lab.build_index", "executor=ray",
           f"executor.shard_size={SHARD}", f"feature={args.feature}", "index=annoy",
           f"dataset.root={args.images}", f"cache_dir={cache}", f"index_dir={index}",
           "progress=false", "hydra.run.dir=/tmp/search_lab_ray_scale",
           *args.overrides]  # fmt: skip
    start, peaks, killed = time.perf_counter(), {}, False
    proc = subprocess.Popen(cmd, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    while proc.poll() is None:
        for pid in tree(proc.pid):
            kind = role(pid, proc.pid)
            peaks[pid] = (kind, max(peaks.get(pid, ("", 0.0))[1], hwm_mb(pid)))
        done = len(list(cache.glob("*.npz"))) if cache.is_dir() else 0
        if kill_at is not None and done >= kill_at * total:
            for pid in tree(proc.pid):
                os.kill(pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.5)
    output = proc.communicate()[0]
    if not killed and proc.returncode != 0:
        raise SystemExit(f"build_index failed ({proc.returncode}):\n{output[-3000:]}")
    by_role: dict[str, list[float]] = {}
    for kind, mb in peaks.values():
        by_role.setdefault(kind, []).append(mb)
    return {"seconds": round(time.perf_counter() - start, 1), "killed": killed,
            "shards_total": total, "shards_cached": len(list(cache.glob("*.npz"))),
            "peak_mb": {k: round(max(v), 1) for k, v in by_role.items()},
            "workers": len(by_role.get("worker", [])),
            "log": [ln for ln in output.splitlines() if "shards" in ln or "built" in ln],
            }  # fmt: skip


def sample_check(index: Path, count: int = 200) -> dict[str, Any]:
    """Largest difference between the index's vectors and a local extraction of a sample."""
    from search_lab.retrieval import SearchEngine, extract_files

    engine = SearchEngine.load(index)
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(len(engine.names), size=min(count, len(engine.names)), replace=False))
    names = [engine.names[i] for i in ids]
    local = extract_files(engine.root, names, engine.config["feature"], progress=False)
    stored = np.stack([engine.index._forest.get_item_vector(int(i)) for i in ids])
    diff = np.abs(engine.post.transform(local.vectors) - stored).max()
    return {"sample": len(ids), "max_abs_diff": float(diff), "items": engine.index.size}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Kill and resume; optionally an uninterrupted reference; the sample check."""
    work = args.work
    runs = {"killed": build(args, work / "cache", work / "index", args.kill_at)}
    runs["resumed"] = build(args, work / "cache", work / "index", None)
    result = {"machine": machine(), "feature": args.feature, "images": str(args.images),
              "overrides": args.overrides, "runs": runs,
              "check": sample_check(work / "index")}  # fmt: skip
    if args.reference:
        runs["reference"] = build(args, work / "cache-ref", work / "index-ref", None)
        forests = [(work / d / "annoy.ann").read_bytes() for d in ("index", "index-ref")]
        result["same_forest_bytes"] = forests[0] == forests[1]
    result["load_avg_end"] = load_avg()
    return result


def report(result: dict[str, Any]) -> str:
    """The Markdown table of the runs."""
    extra = " ".join(result["overrides"])
    lines = [f"# {result['feature']} {extra}: indexed through Ray, killed and resumed", "",
             "| run | seconds | shards cached at the end | driver MB | worker MB (max) | "
             "Ray services MB (max) | workers |", "|---|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    for name, r in result["runs"].items():
        p = r["peak_mb"]
        cells = [name, r["seconds"], f"{r['shards_cached']} of {r['shards_total']}",
                 p.get("driver"), p.get("worker"), p.get("ray"), r["workers"]]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    c = result["check"]
    lines += ["", f"Index items: {c['items']}; {c['sample']} sampled images extracted locally "
              f"differ from the indexed vectors by at most {c['max_abs_diff']:.2e}."]  # fmt: skip
    if "same_forest_bytes" in result:
        lines.append(f"Resumed forest byte-identical to the uninterrupted one: "
                     f"{result['same_forest_bytes']}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="dataset folder")
    parser.add_argument("--feature", default="cnn")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of shards cached")
    parser.add_argument("--reference", action="store_true", help="also build uninterrupted")
    parser.add_argument("--work", type=Path, default=Path("/tmp/search_lab_ray_scale"))
    parser.add_argument("--out", type=Path, default=PROJECT / "bench")
    parser.add_argument("overrides", nargs="*", help="more build_index overrides (key=value)")
    args = parser.parse_args(argv)
    if not args.images.is_dir():
        parser.error(f"--images {args.images} is not a folder")
    stem = args.out / f"ray_scale-{args.feature}"
    return measure_and_report(
        lambda: bench(args), report, stem.with_suffix(".json"), stem.with_suffix(".md")
    )


if __name__ == "__main__":
    sys.exit(main())
