"""Entry point only: ``python -m search_lab.bench_scale`` runs
``search_lab.benchmarks.scale.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.benchmarks.scale import main

    sys.exit(main())
