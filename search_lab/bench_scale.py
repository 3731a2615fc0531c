"""``python -m search_lab.bench_scale`` (the code: ``benchmarks.scale``)."""

import sys

from search_lab.benchmarks.scale import main

if __name__ == "__main__":
    sys.exit(main())
