"""Geometric re-ranking measured: ``python -m search_lab.benchmarks.rerank {local,merge}``.

``local``: SIFT against ORB on a seeded sample of queries of one side of holidays-small: the
share of relevant pairs each verifies, the share of unrelated pairs, and the cost (what chose
``rerank.local``). ``merge``: the inliers of every query's top 100 under a recipe, counted
once, then the mAP of every merge setting (what chose ``rerank.weight``, ``min_inliers``,
``saturate``; run it on the tune side only). ``chain``: on top of a recipe's chain, the mAP of
every query-expansion setting of :data:`CHAIN_GRID`, each without re-ranking and with the default
verification merged at a few weights (each pair's inliers counted once across settings; what
chose the second round of ``recommended``, docs/results.md; tune side only). ``gate``: expansion
switched per query by how strongly its first results verify; ``variants``: expansion kept to
k-reciprocal neighbours, fused with the unexpanded similarity, or with more weight on the image
itself, and diffusion over the k-NN graph (both tried on the third round's recipe, Lite0 over 20
neighbours, and not kept: docs/results.md). ``chain`` with ``feature.cnn.backbone=...`` is
what chose the fourth round's backbone and expansion.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Iterator

import numpy as np

from search_lab.benchmarks.common import exit_status
from search_lab.cli import compose_config
from search_lab.evaluation import pick_queries, ranked_ids, score_ranked
from search_lab.features import expand_queries, neighbour_weights
from search_lab.retrieval import (
    SV_DEFAULTS,
    RerankOptions,
    build_pipeline,
    collection_keypoints,
    index_collection,
    inliers,
)

GRID = {
    "weight": [0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.0],
    "min_inliers": [6, 8, 10, 12, 15],
    "saturate": [20, 50, 100],
}
"""The settings tried (the two runs quoted in docs/results.md, together)."""

CHAIN_GRID = {
    "expand": [10, 20, 30, 40],
    "expand_alpha": [1.0, 2.0, 3.0],
    "expand_floor": [0.0, 0.1, 0.2, 0.3],
}
"""The expansion settings ``chain`` tries (``post.expand``, ``expand_alpha``, ``expand_floor``)."""


def local(side: str, queries: int, unrelated: int) -> None:
    """Verified shares of relevant and unrelated pairs, and costs, for each local feature."""
    from search_lab.data import load_dataset, split_dataset

    root = os.environ.get("HOLIDAYS_DIR", "data/holidays")
    data = split_dataset(load_dataset(root), side, fraction=0.5, seed=0)
    rng = np.random.default_rng(0)
    qs = sorted(rng.choice(data.queries, queries, replace=False).tolist())
    pool = sorted(rng.choice(len(data.names), unrelated, replace=False).tolist())
    need = sorted(set(qs) | set(pool) | {r for q in qs for r in data.relevant[q]})
    for name in ("sift", "orb"):
        opts = RerankOptions.from_config({**SV_DEFAULTS, "local": name})
        start = time.perf_counter()
        kp = {i: opts.local.of_file(data.root / data.names[i]) for i in need}
        extract = (time.perf_counter() - start) / len(need)
        pairs = [(q, r, True) for q in qs for r in data.relevant[q]]
        pairs += [(q, r, False) for q in qs for r in pool if data.groups[r] != data.groups[q]]
        start = time.perf_counter()
        found = [(inliers(kp[q], kp[r], opts), good) for q, r, good in pairs]
        verify = (time.perf_counter() - start) / len(pairs)
        pos = np.array([n for n, good in found if good])
        neg = np.array([n for n, good in found if not good])
        print(
            f"{name}: {extract * 1e3:.0f} ms/image, {verify * 1e3:.1f} ms/pair; relevant "
            f"verified {np.mean(pos >= opts.min_inliers):.2f} of {len(pos)} (median "
            f"{np.median(pos):.0f} inliers); unrelated verified "
            f"{np.mean(neg >= opts.min_inliers):.3f} of {len(neg)} (max {neg.max()}); "
            f"load {os.getloadavg()[0]:.1f}"
        )


def merged_order(
    ids: np.ndarray, dists: np.ndarray, counts: np.ndarray, weight: float, least: int, sat: int
) -> np.ndarray:
    """``ids`` (queries x ranked rows) with each row's first ``counts.shape[1]`` results sorted
    again by ``-distance + weight * min(inliers, sat) / sat`` (inliers below ``least``: 0), as
    :func:`search_lab.retrieval.rerank_row` scores them; the rest keep their order."""
    head = counts.shape[1]
    new = ids.copy()
    verified = np.where(counts >= least, np.minimum(counts, sat), 0)
    for q in range(len(ids)):
        order = np.argsort(-(-dists[q, :head] + weight * verified[q] / sat), kind="stable")
        new[q, :head] = ids[q, :head][order]
    return new


class _Scorer:
    """A recipe's collection and queries on one side, and the inliers of the pairs seen so far."""

    def __init__(self, overrides: list[str]) -> None:
        pipe = build_pipeline(compose_config([*overrides, "progress=false"]))
        self.col = index_collection(pipe)
        self.names = self.col.features.names
        row = {n: i for i, n in enumerate(self.names)}
        self.queries = pick_queries(self.col.data, set(row), None)
        self.qrows = [row[self.col.data.names[q]] for q in self.queries]
        self.opts = RerankOptions.from_config(
            {**SV_DEFAULTS, "min_inliers": min(GRID["min_inliers"])}
        )
        self.seen: dict[tuple[int, int], int] = {}
        self._kps = None

    def counts(self, ids: np.ndarray, candidates: int) -> np.ndarray:
        """Inliers of each query with its first ``candidates`` results (0 for itself)."""
        if self._kps is None:
            col = self.col
            self._kps = collection_keypoints(
                self.opts.local, col.data.root, self.names, col.fingerprint, col.cache
            )
        head = min(candidates + 1, len(self.names))
        out = np.zeros((len(self.qrows), head), np.int64)
        for q, qr in enumerate(self.qrows):
            for j, c in enumerate(ids[q, :head].tolist()):
                if c != qr and (qr, c) not in self.seen:
                    self.seen[qr, c] = inliers(self._kps[qr], self._kps[c], self.opts)
                out[q, j] = 0 if c == qr else self.seen[qr, c]
        return out

    def map(self, ids: np.ndarray) -> float:
        col = self.col
        ranked = ranked_ids(col.data, self.names, ids)
        return score_ranked(
            ranked, self.queries, col.data.relevant, [1], protocol=col.data.protocol
        )["map"]


def merge(overrides: list[str], candidates: int) -> None:
    """mAP of every merge setting of :data:`GRID`, from inliers counted once."""
    sc = _Scorer(overrides)
    ids, dists = sc.col.index.search(sc.col.vectors[sc.qrows], len(sc.names))
    counts = sc.counts(ids, candidates)
    print(f"no re-ranking: mAP {sc.map(ids):.4f}")
    for w, least, sat in itertools.product(*GRID.values()):
        mean_ap = sc.map(merged_order(ids, dists, counts, w, least, sat))
        print(f"weight={w} min_inliers={least} saturate={sat}: mAP {mean_ap:.4f}")


def chain(overrides: list[str], candidates: int, weights: list[float]) -> None:
    """mAP of every expansion setting of :data:`CHAIN_GRID` on the recipe's chain (its own
    expansion switched off first), without re-ranking and with it at each merge ``weights``."""
    sc = _Scorer([*overrides, "post.expand=0"])
    base = sc.col.vectors.astype(np.float64)  # the chain up to the expansion: unit rows
    for k, alpha, floor in itertools.product(*CHAIN_GRID.values()):
        x = expand_queries(base, base, k, alpha, floor)
        sims = x[sc.qrows] @ x.T
        label = f"post.expand={k} post.expand_alpha={alpha} post.expand_floor={floor}"
        _print_chain(sc, label, _ranked(sims), sims, weights, candidates)


GATES = [12, 15, 20, 30]
"""``gate``: the fewest inliers of a query's strongest match in its top 20 that mark it as an
instance query."""


def gate(overrides: list[str], weights: list[float]) -> None:
    """Query expansion gated by verification, per query: a query whose strongest match in its
    first 20 results without expansion has at least ``t`` inliers is taken for an instance
    query and searched without expansion on either side (``none``) or expanded with its
    verified matches only (``verified``); any other query keeps the third round's chain
    (queries and collection expanded over 20 neighbours by cos^alpha). Then the default
    verification is merged at each of ``weights``. Tune side only."""
    sc = _Scorer([*overrides, "post.expand=0"])
    base = sc.col.vectors.astype(np.float64)  # the chain up to the expansion: unit rows
    least = SV_DEFAULTS["min_inliers"]
    qrows = np.asarray(sc.qrows)
    plain = base[qrows] @ base.T
    ids0 = _ranked(plain)
    top = sc.counts(ids0, 20)
    strongest = top.max(axis=1)
    shares = ", ".join(f">= {t}: {np.mean(strongest >= t):.3f}" for t in GATES)
    print(f"share of queries whose strongest match in the top 20 has inliers {shares}")
    for alpha in (2.0, 3.0):
        x = expand_queries(base, base, 20, alpha, 0.0)
        recipe = x[qrows] @ x.T
        _print_chain(sc, f"alpha={alpha} ungated", _ranked(recipe), recipe, weights)
        for t, mode in itertools.product(GATES, ["none", "verified"]):
            sims = recipe.copy()
            for q in np.flatnonzero(strongest >= t):
                v = ids0[q, : top.shape[1]][top[q] >= least] if mode == "verified" else []
                y = base[qrows[q]] + np.maximum(base[v] @ base[qrows[q]], 0) ** alpha @ base[v]
                sims[q] = (y / np.linalg.norm(y)) @ base.T
            _print_chain(sc, f"alpha={alpha} gate={t} {mode}", _ranked(sims), sims, weights)


VARIANTS = {
    "reciprocal": {"kr": [5, 10, 20, 30], "alpha": [1.0, 2.0, 3.0]},
    "fused": {"beta": [0.25, 0.5, 0.75], "alpha": [1.0, 2.0, 3.0]},
    "self": {"weight": [3.0, 4.0], "alpha": [1.0, 2.0, 3.0]},
    "diffusion": {"k": [20, 50, 100], "alpha": [0.8, 0.9], "kq": [5, 10]},
}
"""``variants``: the settings tried for each kind of expansion (over 20 neighbours) and of
diffusion (graph neighbours ``k``, ``alpha``, the query's neighbours ``kq``)."""


def _neighbour_weights(sims: np.ndarray, k: int, alpha: float, kr: int = 0) -> np.ndarray:
    """:func:`search_lab.features.neighbour_weights`; with ``kr``, kept only on columns whose
    own ``kr`` most similar (square ``sims``) hold the row: k-reciprocal neighbours."""
    weights = neighbour_weights(sims, k, alpha)
    if kr:
        kth = -np.sort(-sims, axis=1)[:, min(kr, sims.shape[1]) - 1]
        weights[sims < kth[None, :] - 1e-9] = 0.0
    return weights


def self_weighted_expansion(x: np.ndarray, k: int, alpha: float, weight: float) -> np.ndarray:
    """Unit rows ``x`` expanded over themselves with ``x`` itself counted ``weight`` times:
    ``(weight - 2) * x`` added to the recipe's ``x + sum`` before normalising (2: the recipe)."""
    out = (weight - 1) * x + _neighbour_weights(x @ x.T, k, alpha) @ x
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def reciprocal_expansion(x: np.ndarray, k: int, alpha: float, kr: int) -> np.ndarray:
    """Unit rows ``x`` expanded as :func:`search_lab.features.expand_queries` does (over
    themselves), keeping of each row's ``k`` nearest only those that have the row among their
    own ``kr`` nearest (itself counted first): k-reciprocal neighbours."""
    out = x + _neighbour_weights(x @ x.T, k, alpha, kr) @ x
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def diffusion_scores(
    base: np.ndarray, rows: np.ndarray, k: int, alpha: float, kq: int, gamma: float = 3.0
) -> np.ndarray:
    """Diffusion over the mutual k-NN graph of the unit rows ``base`` (edges ``cos ** gamma``,
    symmetrically normalised to ``S``), from each of ``rows``' ``kq`` nearest (``y``): the
    solution ``f`` of ``f = alpha * S f + y``, scaled to a maximum of 1 per query."""
    sims = base @ base.T
    graph = _neighbour_weights(sims, k, gamma)
    np.fill_diagonal(graph, 0.0)
    graph = np.minimum(graph, graph.T)
    degree = np.sqrt(np.maximum(graph.sum(axis=1), 1e-12))
    transition = graph / degree[:, None] / degree[None, :]
    start = _neighbour_weights(sims[rows], kq, gamma)
    f = np.linalg.solve(np.eye(len(base)) - alpha * transition, start.T).T
    return f / f.max(axis=1, keepdims=True)


def variant_similarities(base: np.ndarray, rows: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """(label, similarities of ``rows`` of the unit vectors ``base`` to all of them) for no
    expansion, the recipe's (20 neighbours, alpha 2) and every setting of :data:`VARIANTS`.

    ``fused``: ``(1 - beta) * cos(x, y) + beta * cos(expanded x, expanded y)``, the cosine of
    the two vectors side by side; ``self``: each vector counted ``weight`` times in its own
    expansion instead of twice (the recipe's ``x + sum``, whose sum holds ``x`` itself);
    ``diffusion``: :func:`diffusion_scores` (re-ranking merges ``1 - score`` as the distance).
    """
    plain = base[rows] @ base.T
    yield "no expansion", plain
    shipped = expand_queries(base, base, 20, 2.0)
    yield "the recipe (20, alpha 2)", shipped[rows] @ shipped.T
    for kr, alpha in itertools.product(*VARIANTS["reciprocal"].values()):
        x = reciprocal_expansion(base, 20, alpha, kr)
        yield f"reciprocal kr={kr} alpha={alpha}", x[rows] @ x.T
    for beta, alpha in itertools.product(*VARIANTS["fused"].values()):
        x = expand_queries(base, base, 20, alpha)
        yield f"fused beta={beta} alpha={alpha}", (1 - beta) * plain + beta * (x[rows] @ x.T)
    for weight, alpha in itertools.product(*VARIANTS["self"].values()):
        x = self_weighted_expansion(base, 20, alpha, weight)
        yield f"self weight={weight} alpha={alpha}", x[rows] @ x.T
    for k, alpha, kq in itertools.product(*VARIANTS["diffusion"].values()):
        yield f"diffusion k={k} alpha={alpha} kq={kq}", diffusion_scores(base, rows, k, alpha, kq)


def variants(overrides: list[str], weights: list[float]) -> None:
    """mAP of every expansion variant of :data:`VARIANTS` on the recipe's chain, without
    re-ranking and with the default verification merged at each of ``weights``. Tune side only."""
    sc = _Scorer([*overrides, "post.expand=0"])
    base = sc.col.vectors.astype(np.float64)  # the chain up to the expansion: unit rows
    for label, sims in variant_similarities(base, np.asarray(sc.qrows)):
        _print_chain(sc, label, _ranked(sims), sims, weights)


def _ranked(sims: np.ndarray) -> np.ndarray:
    return np.argsort(-sims, axis=1, kind="stable")


def _print_chain(
    sc: _Scorer,
    label: str,
    ids: np.ndarray,
    sims: np.ndarray,
    weights: list[float],
    candidates: int = 100,
) -> None:
    """One line: mAP of a ranking without re-ranking, then with it merged at each weight."""
    dists = 1.0 - np.take_along_axis(sims, ids, axis=1)
    line = f"{label}: mAP {sc.map(ids):.4f}"
    if weights:
        counts = sc.counts(ids, candidates)
        defaults = SV_DEFAULTS["min_inliers"], SV_DEFAULTS["saturate"]
        for w in weights:
            line += (
                f", rerank.weight={w} {sc.map(merged_order(ids, dists, counts, w, *defaults)):.4f}"
            )
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; bad input (configuration, dataset folder) is one line and exit 2."""
    parser = argparse.ArgumentParser(prog="python -m search_lab.benchmarks.rerank")
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("local", help="SIFT against ORB on a sample of queries")
    one.add_argument("--side", default="tune")
    one.add_argument("--queries", type=int, default=12)
    one.add_argument("--unrelated", type=int, default=10)
    two = sub.add_parser("merge", help="mAP of the merge settings from inliers counted once")
    two.add_argument("overrides", nargs="*", default=["+experiment=best", "dataset.split=tune"])
    two.add_argument("--candidates", type=int, default=100)
    three = sub.add_parser("chain", help="mAP of expansion settings, without and with sv")
    three.add_argument(
        "overrides", nargs="*", default=["+experiment=recommended", "dataset.split=tune"]
    )
    three.add_argument("--candidates", type=int, default=100)
    three.add_argument(
        "--weights", type=float, nargs="*", default=[0.25], help="merge weights (none: no sv)"
    )
    four = sub.add_parser("gate", help="expansion gated per query by its verified matches")
    four.add_argument(
        "overrides", nargs="*", default=["+experiment=recommended", "dataset.split=tune"]
    )
    four.add_argument("--weights", type=float, nargs="*", default=[0.25, 0.5])
    five = sub.add_parser("variants", help="other expansions, and diffusion, without and with sv")
    five.add_argument(
        "overrides", nargs="*", default=["+experiment=recommended", "dataset.split=tune"]
    )
    five.add_argument("--weights", type=float, nargs="*", default=[0.25, 0.5])
    args = parser.parse_args(argv)
    commands = {
        "local": lambda: local(args.side, args.queries, args.unrelated),
        "merge": lambda: merge(args.overrides, args.candidates),
        "chain": lambda: chain(args.overrides, args.candidates, args.weights),
        "gate": lambda: gate(args.overrides, args.weights),
        "variants": lambda: variants(args.overrides, args.weights),
    }
    return exit_status(commands[args.what])


if __name__ == "__main__":
    raise SystemExit(main())
