"""Entry point only: ``python -m search_lab.evaluate`` runs ``search_lab.cli.evaluate.main``."""

if __name__ == "__main__":
    from search_lab.cli.evaluate import main
    from search_lab.cli.glue import entry

    entry(main, "config")
