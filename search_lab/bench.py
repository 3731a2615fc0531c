"""Entry point only: ``python -m search_lab.bench`` runs ``search_lab.benchmarks.speed.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.benchmarks.speed import main

    sys.exit(main())
