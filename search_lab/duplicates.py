"""Entry point only: ``python -m search_lab.duplicates`` runs ``search_lab.cli.duplicates.main``."""

if __name__ == "__main__":
    import sys

    from search_lab.cli.duplicates import main

    sys.exit(main())
