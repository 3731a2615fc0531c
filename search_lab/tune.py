"""Entry point only: ``python -m search_lab.tune`` runs ``search_lab.cli.tune.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.cli.tune import main

    sys.exit(main())
