"""Entry point only: ``python -m search_lab.build_index`` runs
``search_lab.cli.build_index.cli``."""

if __name__ == "__main__":
    from search_lab.cli.build_index import cli

    cli()
