"""``python -m search_lab.evaluate``: the command lives in :mod:`search_lab.cli.evaluate`."""

from search_lab.cli.evaluate import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    from search_lab.cli.glue import entry

    entry(main, "config")
