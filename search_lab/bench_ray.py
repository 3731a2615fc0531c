"""``python -m search_lab.bench_ray`` (the code: ``benchmarks.ray_extraction``)."""

import sys

from search_lab.benchmarks.ray_extraction import main

if __name__ == "__main__":
    sys.exit(main())
