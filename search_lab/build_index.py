"""``python -m search_lab.build_index``: the command lives in :mod:`search_lab.cli.build_index`."""

from search_lab.cli.build_index import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    from search_lab.cli.glue import entry

    entry(main, "build_index")
