"""Vectors of the search-method benchmark: a seeded clustered mixture, Holidays CNN descriptors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search_lab.benchmarks.common import compose


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


def holidays_sets(root: Path, n_queries: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """CNN descriptors of a Holidays folder (1280-d, and PCA to 128) via the project's cache.

    The same configuration as ``python -m search_lab.evaluate feature=cnn`` (its cache is
    reused); the queries are the collection's first ``n_queries`` vectors (each finds itself).
    """
    from search_lab.retrieval import index_collection

    out = []
    for label, extra in (
        ("holidays cnn 1280-d", []),
        ("holidays cnn PCA 128", ["post.pca_dim=128"]),
    ):
        cfg = compose(["feature=cnn", f"dataset.root={root}", "progress=false", *extra])
        vectors = np.ascontiguousarray(index_collection(cfg).vectors, dtype=np.float32)
        out.append((label, vectors, vectors[:n_queries]))
    return out
