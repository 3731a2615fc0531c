"""Entry point only: ``python -m search_lab.bench_ann`` runs ``search_lab.benchmarks.ann.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.benchmarks.ann import main

    sys.exit(main())
