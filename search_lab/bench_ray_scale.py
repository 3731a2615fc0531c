"""``python -m search_lab.bench_ray_scale`` (the code: ``benchmarks.ray_scale``)."""

import sys

from search_lab.benchmarks.ray_scale import main

if __name__ == "__main__":
    sys.exit(main())
