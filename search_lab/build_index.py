"""Entry point only: ``python -m search_lab.build_index`` runs
``search_lab.cli.build_index.main``."""

if __name__ == "__main__":
    from search_lab.cli.build_index import main
    from search_lab.cli.glue import entry

    entry(main, "build_index")
