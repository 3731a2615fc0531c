"""Scale benchmark of Annoy against exact search: ``python -m search_lab.bench_ann [options]``.

For each collection size, clustered synthetic vectors (a seeded Gaussian mixture, float32) are
indexed by :class:`~search_lab.indexes.AnnoyIndex` for a few ``n_trees`` values and queried
for several ``search_k`` values, one query at a time; exact numpy search is timed on the same
vectors, one query at a time and batched (matrix products in blocks), and its batched results
are the ground truth of recall@k. Results go to a JSON file and a Markdown table beside it,
written with the one results writer (:mod:`search_lab.results`).

Measured per Annoy build: seconds to add the items and grow the trees (``n_jobs`` threads),
the size of ``annoy.ann`` on disk, the peak resident memory the build added to the process
(see :class:`PeakRSS`) and the time to memory-map the saved file. Per ``search_k``: queries per
second, latency percentiles and recall@k against exact search.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import annoy
import numpy as np
import psutil

from search_lab.indexes import AnnoyIndex
from search_lab.results import write_json, write_text

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("bench/ann.json")
QUICK_OUT = Path("bench/ann-quick.json")


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture whose components are flat: low-rank spread plus a little noise.

    Component c draws ``mean_c + spread * B_c z + noise * e`` with ``z`` ~ N(0, I) in
    ``intrinsic_dim`` dimensions, ``B_c`` a random orthonormal (dim, intrinsic_dim) basis and
    ``e`` ~ N(0, I) in ``dim`` dimensions; means are N(0, I). Real descriptors behave like this
    (clusters of low intrinsic dimension); isotropic 128-d components would make every
    nearest neighbour about as far as any other point of its cluster, a test of nothing.
    """

    dim: int = 128
    components: int = 1000
    intrinsic_dim: int = 24
    spread: float = 2.0
    noise: float = 0.1
    seed: int = 0

    def sample(self, n: int, stream: int) -> np.ndarray:
        """``n`` float32 vectors (N, dim); the same ``stream`` gives the same vectors.

        The mixture's parameters depend on ``seed`` alone, so items and queries drawn with
        different streams come from one distribution.
        """
        params = np.random.default_rng([self.seed, 0])
        means = params.standard_normal((self.components, self.dim), dtype=np.float32)
        rng = np.random.default_rng([self.seed, 1 + stream])
        counts = rng.multinomial(n, np.full(self.components, 1.0 / self.components))
        out = np.empty((n, self.dim), np.float32)
        start = 0
        for c, count in enumerate(counts):
            # the basis is drawn whether or not the component is used: same mixture for every n
            basis, _ = np.linalg.qr(params.standard_normal((self.dim, self.intrinsic_dim)))
            if count == 0:
                continue
            z = rng.standard_normal((count, self.intrinsic_dim), dtype=np.float32)
            block = out[start : start + count]
            block[:] = means[c] + self.spread * (z @ basis.T.astype(np.float32))
            block += self.noise * rng.standard_normal((count, self.dim), dtype=np.float32)
            start += count
        rng.shuffle(out)  # in place, by rows: components interleaved, no copy
        return out


def _proc_status(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status in bytes, or None where there is no procfs."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


class PeakRSS:
    """Peak resident memory (RSS) added to this process inside a ``with`` block, in bytes.

    Annoy allocates in C++, which ``tracemalloc`` never sees, so the operating system is asked:
    on Linux the kernel's high-water mark (``VmHWM``) is reset to the current RSS by writing
    ``5`` to ``/proc/self/clear_refs`` and read back at the end, which catches even a brief
    peak. Elsewhere a thread samples ``psutil`` RSS every 10 ms (may miss short peaks).
    The result is ``peak - RSS before``: memory already resident (the input vectors) is not
    counted; pages of a memory-mapped file being written count while they are resident.
    """

    def __enter__(self) -> PeakRSS:
        self._process = psutil.Process()
        self.before = self._process.memory_info().rss
        self.peak = self.before
        self._kernel = False
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._kernel = _proc_status("VmHWM") is not None
        except OSError:
            pass
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not self._kernel:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        rss = self._process.memory_info().rss
        hwm = _proc_status("VmHWM") if self._kernel else None
        self.peak = max(self.peak, rss, hwm or 0)
        self.method = "VmHWM after clear_refs" if self._kernel else "psutil RSS sampled every 10 ms"

    @property
    def added(self) -> int:
        """Peak RSS minus RSS before the block, in bytes."""
        return self.peak - self.before


def exact_batched(
    items: np.ndarray, queries: np.ndarray, k: int, *, block: int = 64
) -> tuple[np.ndarray, float]:
    """Exact top-k (squared euclidean) for all queries, ``block`` queries per matrix product.

    Returns ids (Q, k) sorted by distance and the seconds taken (norms included). A block of
    ``block x N`` float32 distances bounds memory (256 MB at 1M items).
    """
    start = time.perf_counter()
    sq = np.einsum("ij,ij->i", items, items)
    ids = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), block):
        d = queries[s : s + block] @ items.T
        d *= -2.0  # in place: no second block-sized temporary
        d += sq  # ||q||^2 is the same for every item: it does not rank
        top = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(d, top, 1).argsort(axis=1)
        ids[s : s + block] = np.take_along_axis(top, order, 1)
    return ids, time.perf_counter() - start


MATVECS: dict[str, Any] = {
    "blas": lambda items, q: items @ q,
    "einsum": lambda items, q: np.einsum("ij,j->i", items, q),
}
"""Matrix-vector products for exact single-query search: BLAS (may wake threads per call, slow
under load) and numpy's own single-threaded loop; the faster one is the baseline."""


def exact_single(
    items: np.ndarray, queries: np.ndarray, k: int, *, matvec: str = "blas"
) -> tuple[np.ndarray, list[float]]:
    """Exact top-k one query at a time (a matrix-vector product each); ids and seconds per query.

    Item norms are computed once beforehand, as an exact index would store them. ``matvec``
    names an entry of :data:`MATVECS`.
    """
    product = MATVECS[matvec]
    sq = np.einsum("ij,ij->i", items, items)
    ids = np.empty((len(queries), k), np.int64)
    seconds = []
    for i, q in enumerate(queries):
        start = time.perf_counter()
        d = product(items, q)
        d *= -2.0
        d += sq
        top = np.argpartition(d, k - 1)[:k]
        ids[i] = top[np.argsort(d[top])]
        seconds.append(time.perf_counter() - start)
    return ids, seconds


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (Q, k) found in the same row of ``found``."""
    hits = [len(set(f[f >= 0]) & set(t)) for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits) / truth.size)


def _latency(seconds: Sequence[float]) -> dict[str, float]:
    ms = 1e3 * np.asarray(seconds)
    return {
        "qps": float(len(ms) / (ms.sum() / 1e3)),
        "ms_p50": float(np.percentile(ms, 50)),
        "ms_p95": float(np.percentile(ms, 95)),
    }


def bench_size(
    n: int,
    mixture: Mixture,
    queries: np.ndarray,
    *,
    k: int,
    trees: Sequence[int],
    search_ks: Sequence[int],
    single_queries: int,
    n_jobs: int,
    work_dir: Path,
) -> dict[str, Any]:
    """Every measurement for one collection size; see the module docstring."""
    log.info("n=%d: sampling items", n)
    items = mixture.sample(n, stream=0)
    truth, batched_s = exact_batched(items, queries, k)
    singles = {}
    for matvec in MATVECS:
        single_ids, single_s = exact_single(items, queries[:single_queries], k, matvec=matvec)
        singles[matvec] = {
            **_latency(single_s),
            "agrees_with_batched": recall(single_ids, truth[: len(single_ids)]),
        }
    fastest = max(singles, key=lambda name: singles[name]["qps"])
    exact = {
        "batched_qps": len(queries) / batched_s,
        "batched_s": batched_s,
        "single": {"matvec": fastest, **singles[fastest]},
        "single_by_matvec": singles,
        "single_queries": len(single_s),
    }
    log.info(
        "n=%d: exact %.1f q/s single (%s), %.0f q/s batched",
        n,
        exact["single"]["qps"],
        fastest,
        exact["batched_qps"],
    )
    builds = []
    for n_trees in trees:
        index = AnnoyIndex(metric="euclidean", n_trees=n_trees, seed=mixture.seed, n_jobs=n_jobs)
        start = time.perf_counter()
        with PeakRSS() as mem:
            index.build(items)
        build_s = time.perf_counter() - start
        folder = work_dir / f"annoy-{n}-{n_trees}"
        folder.mkdir(parents=True, exist_ok=True)
        index.save(folder)
        del index  # drop the in-memory forest; queries run on the memory-mapped file, as in the app
        loaded = AnnoyIndex(metric="euclidean", n_trees=n_trees)
        start = time.perf_counter()
        loaded.load(folder)
        load_ms = 1e3 * (time.perf_counter() - start)
        settings = []
        for search_k in search_ks:
            loaded.search_k = search_k
            found = np.empty((len(queries), k), np.int64)
            seconds = []
            for i, q in enumerate(queries):
                t0 = time.perf_counter()
                found[i] = loaded.search(q[None, :], k)[0][0]
                seconds.append(time.perf_counter() - t0)
            row = {
                "search_k": search_k,
                **_latency(seconds),
                f"recall_at_{k}": recall(found, truth),
            }
            row["speedup_vs_exact_single"] = row["qps"] / exact["single"]["qps"]
            settings.append(row)
            log.info(
                "n=%d trees=%d search_k=%d: %.0f q/s, recall@%d %.3f",
                n,
                n_trees,
                search_k,
                row["qps"],
                k,
                row[f"recall_at_{k}"],
            )
        builds.append(
            {
                "n_trees": n_trees,
                "build_s": build_s,
                "index_mb": (folder / AnnoyIndex.FOREST_FILE).stat().st_size / 2**20,
                "build_peak_rss_mb": mem.added / 2**20,
                "rss_method": mem.method,
                "load_ms": load_ms,
                "settings": settings,
            }
        )
        del loaded
        shutil.rmtree(folder, ignore_errors=True)
    return {"n_items": n, "items_mb": items.nbytes / 2**20, "exact": exact, "annoy": builds}


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, load and library versions of the machine running the benchmark."""
    cpu = platform.processor() or platform.machine()
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "annoy": _annoy_version(),
        "platform": platform.platform(),
    }


def _annoy_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("annoy")
    except PackageNotFoundError:
        return getattr(annoy, "__version__", "unknown")


def target_check(run: dict[str, Any], k: int, *, min_recall: float, min_speedup: float) -> dict:
    """The fastest setting of ``run`` with recall@k >= ``min_recall``; is it fast enough?"""
    best = None
    for build in run["annoy"]:
        for s in build["settings"]:
            if s[f"recall_at_{k}"] >= min_recall and (best is None or s["qps"] > best["qps"]):
                best = {"n_trees": build["n_trees"], **s}
    return {
        "n_items": run["n_items"],
        "min_recall": min_recall,
        "min_speedup": min_speedup,
        "best": best,
        "met": bool(best and best["speedup_vs_exact_single"] >= min_speedup),
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: machine, data, one table per size, and the target verdict."""
    m, cfg, k = report["machine"], report["config"], report["config"]["k"]
    mix = cfg["mixture"]
    lines = [
        "# Annoy vs exact search at scale",
        "",
        f"Command: `{report['command']}` — total {report['elapsed_s']:.0f} s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, load average "
        f"{m['load_avg_1m_at_start']} at start; Python {m['python']}, numpy {m['numpy']}, "
        f"annoy {m['annoy']}. {report.get('note', '')}".rstrip(),
        "",
        f"Data: {mix['dim']}-d float32 vectors from a Gaussian mixture of {mix['components']} "
        f"flat components (intrinsic dimension {mix['intrinsic_dim']}, spread {mix['spread']}, "
        f"noise {mix['noise']}, "
        f"seed {mix['seed']}); {cfg['queries']} queries from the same mixture; euclidean "
        f"distance; recall@{k} against exact search. Annoy builds with n_jobs={cfg['n_jobs']}; "
        "queries are answered one at a time on the memory-mapped `annoy.ann`, on one thread. "
        "Exact single = a float32 matrix-vector product and a partial sort per query, over the "
        "first queries only, timed twice: through BLAS (which may wake a thread per call, "
        "slow when the machine is busy) and through numpy's single-threaded einsum; "
        "× exact single divides by the faster of the two. Exact batched = matrix products "
        "over 64 queries at a time (BLAS, every core).",
        "",
        "Build s: adding the N items from Python plus growing the trees. Build peak RSS: the "
        "most resident memory the build added to the process (kernel high-water mark reset "
        "before the build, minus RSS before it); the input vectors, already in memory, are not "
        "counted. Index MB: size of `annoy.ann` (the vectors plus the trees).",
        "",
    ]
    for run in report["runs"]:
        ex = run["exact"]
        lines += [
            f"## {run['n_items']:,} items ({run['items_mb']:.0f} MB of vectors)",
            "",
            f"| method | n_trees | search_k | build s | index MB | build peak RSS MB "
            f"| queries/s | p50 ms | p95 ms | × exact single | recall@{k} |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
            *(
                f"| exact, one query at a time, {name} ({ex['single_queries']} queries) "
                f"| | | | | | {s['qps']:.1f} | {s['ms_p50']:.2f} | {s['ms_p95']:.2f} "
                f"| {s['qps'] / ex['single']['qps']:.2f} | 1.000 |"
                for name, s in ex["single_by_matvec"].items()
            ),
            f"| exact, batched | | | | | | {ex['batched_qps']:.1f} | | "
            f"| {ex['batched_qps'] / ex['single']['qps']:.1f} | 1.000 |",
        ]
        for b in run["annoy"]:
            for s in b["settings"]:
                sk = f"{s['search_k']}" if s["search_k"] > 0 else f"-1 (= {k * b['n_trees']})"
                lines.append(
                    f"| annoy | {b['n_trees']} | {sk} | {b['build_s']:.1f} | {b['index_mb']:.0f} "
                    f"| {b['build_peak_rss_mb']:.0f} | {s['qps']:.0f} | {s['ms_p50']:.2f} "
                    f"| {s['ms_p95']:.2f} | {s['speedup_vs_exact_single']:.1f} "
                    f"| {s[f'recall_at_{k}']:.3f} |"
                )
        loads = [b["load_ms"] for b in run["annoy"]]
        if loads:
            lines += [
                "",
                f"Loading a saved forest (memory-mapped, not read): {min(loads):.2f}–"
                f"{max(loads):.2f} ms.",
            ]
        lines.append("")
    for t in report["targets"]:
        best = t["best"]
        verdict = "met" if t["met"] else "NOT met"
        detail = (
            f"n_trees={best['n_trees']}, search_k={best['search_k']}: {best['qps']:.0f} q/s, "
            f"{best['speedup_vs_exact_single']:.1f}× exact single, recall@{k} "
            f"{best[f'recall_at_{k}']:.3f}"
            if best
            else f"no setting reaches recall@{k} {t['min_recall']}"
        )
        lines.append(
            f"Target at {t['n_items']:,} items (≥ {t['min_speedup']:g}× exact single at "
            f"recall@{k} ≥ {t['min_recall']}): **{verdict}** — fastest such setting {detail}."
        )
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` replaces the sizes and grid with a seconds-long run."""
    p = argparse.ArgumentParser(prog="python -m search_lab.bench_ann", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--trees", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--search-k", type=int, nargs="+", default=[-1, 2000, 10_000, 50_000])
    p.add_argument(
        "--single-queries",
        type=int,
        default=200,
        help="queries timed for exact one-at-a-time search (it is slow)",
    )
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--n-jobs", type=int, default=-1, help="Annoy build threads; -1 = every core")
    p.add_argument("--components", type=int, default=Mixture.components)
    p.add_argument("--intrinsic-dim", type=int, default=Mixture.intrinsic_dim)
    p.add_argument("--spread", type=float, default=Mixture.spread)
    p.add_argument("--noise", type=float, default=Mixture.noise)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"JSON report (Markdown beside it); default {DEFAULT_OUT}",
    )
    p.add_argument("--note", default="", help="a sentence added to the report (e.g. load)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"5k items, 50 queries, 2 settings; default out {QUICK_OUT}",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.queries, args.trees, args.search_k = [5000], 50, [10], [-1, 1000]
        args.single_queries, args.components = 50, 50
    args.out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    for name in ("sizes", "trees"):
        if any(v <= 0 for v in getattr(args, name)):
            p.error(f"--{name} must be positive")
    if args.queries <= 0 or args.k <= 0 or min(args.sizes) < args.k:
        p.error("--queries and --k must be positive and every size at least k")
    return args


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the benchmark described by ``args``; writes the JSON and Markdown reports."""
    started = time.perf_counter()
    mixture = Mixture(
        components=args.components,
        intrinsic_dim=args.intrinsic_dim,
        spread=args.spread,
        noise=args.noise,
        seed=args.seed,
    )
    report: dict[str, Any] = {
        "command": command,
        "machine": machine(),
        "note": args.note,
        "config": {
            "sizes": args.sizes,
            "queries": args.queries,
            "k": args.k,
            "trees": args.trees,
            "search_k": args.search_k,
            "single_queries": min(args.single_queries, args.queries),
            "n_jobs": args.n_jobs,
            "metric": "euclidean",
            "mixture": asdict(mixture),
        },
        "runs": [],
    }
    queries = mixture.sample(args.queries, stream=1)
    work = Path(tempfile.mkdtemp(prefix="bench_ann."))
    try:
        for n in args.sizes:
            report["runs"].append(
                bench_size(
                    n,
                    mixture,
                    queries,
                    k=args.k,
                    trees=args.trees,
                    search_ks=args.search_k,
                    single_queries=args.single_queries,
                    n_jobs=args.n_jobs,
                    work_dir=work,
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["targets"] = [
        target_check(r, args.k, min_recall=0.9, min_speedup=10.0) for r in report["runs"]
    ]
    report["elapsed_s"] = time.perf_counter() - started
    write_json(args.out, report)
    write_text(args.out.with_suffix(".md"), markdown(report))
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point: parse options, run, print where the reports went and the verdicts."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "search_lab.bench_ann", *(argv or [])])
    report = run(args, command)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} in {report['elapsed_s']:.0f} s")
    for t in report["targets"]:
        print(f"{t['n_items']} items: target {'met' if t['met'] else 'NOT met'}")
    return report


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
