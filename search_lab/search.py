"""Entry point only: ``python -m search_lab.search`` runs ``search_lab.cli.search.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.cli.search import main

    sys.exit(main())
