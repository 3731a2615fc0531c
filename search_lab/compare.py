"""Entry point only: ``python -m search_lab.compare`` runs ``search_lab.cli.compare.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.cli.compare import main

    sys.exit(main())
