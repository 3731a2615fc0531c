"""Benchmarks, apart from the core: they measure the package; the package never imports them.

- :mod:`~search_lab.benchmarks.speed` (``python -m search_lab.bench``): decoding, extraction,
  query latency and the end-to-end ``evaluate`` command.
- :mod:`~search_lab.benchmarks.ann` (``python -m search_lab.bench_ann``): every search method
  side by side, recall against queries per second; report and chart in
  :mod:`~search_lab.benchmarks.ann_report`.
- :mod:`~search_lab.benchmarks.integrity` (``python -m search_lab.bench_integrity``): cost of
  checksum verification on load.
- :mod:`~search_lab.benchmarks.ray_extraction` (``python -m search_lab.bench_ray``): extraction
  on Ray against the local executor.
- :mod:`~search_lab.benchmarks.scale` (``python -m search_lab.bench_scale``): peak memory of an
  out-of-core index build.
- :mod:`~search_lab.benchmarks.library` (``python -m search_lab.benchmarks.library``): a photo
  library at scale (build, update, search from the command line and the app, duplicates);
  :mod:`~search_lab.benchmarks.update_in_place`: index updates in place against rebuilds.
- :mod:`~search_lab.benchmarks.ray_scale` (``python -m search_lab.bench_ray_scale``): a large
  collection indexed through Ray, killed half way and resumed, with every process's peak memory.
- :mod:`~search_lab.benchmarks.rerank` (``python -m search_lab.benchmarks.rerank
  {local,merge,chain,gate,variants}``): re-ranking's local feature and merge, and the
  ``recommended`` recipe's expansion and its alternatives, scored on the tune sides.
- :mod:`~search_lab.benchmarks.backbones`: milliseconds per image of the EfficientNet-Lite
  backbones; :mod:`~search_lab.benchmarks.duplicates`: near-duplicate finding on planted sets
  against imagededup's perceptual hash.

Shared pieces: :mod:`~search_lab.benchmarks.common` (machine, load, configuration, the
command-line frame) and :mod:`~search_lab.benchmarks.memory` (peak resident memory).
"""

import lazy_loader

# the commands (each has ``main``); the rest are their shared pieces
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=[
        "ann",
        "duplicates",
        "integrity",
        "library",
        "ray_extraction",
        "ray_scale",
        "rerank",
        "scale",
        "speed",
        "update_in_place",
    ],
)
