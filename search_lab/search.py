"""``python -m search_lab.search``: the command lives in :mod:`search_lab.cli.search`."""

import sys

from search_lab.cli.search import main

if __name__ == "__main__":
    sys.exit(main())
