"""``python -m search_lab.tune``: the command lives in :mod:`search_lab.cli.tune`."""

import sys

from search_lab.cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
