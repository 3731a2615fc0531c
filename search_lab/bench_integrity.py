"""Entry point only: ``python -m search_lab.bench_integrity`` runs
``search_lab.benchmarks.integrity.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.benchmarks.integrity import main

    sys.exit(main())
