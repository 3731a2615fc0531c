"""Entry point only: ``python -m search_lab.bench`` runs :func:`search_lab.benchmarks.speed.main`."""

if __name__ == "__main__":
    import sys

    from search_lab.benchmarks.speed import main

    sys.exit(main())
