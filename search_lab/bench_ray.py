"""Entry point only: ``python -m search_lab.bench_ray`` runs
``search_lab.benchmarks.ray_extraction.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.benchmarks.ray_extraction import main

    sys.exit(main())
