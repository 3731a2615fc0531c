"""``python -m search_lab.compare``: the command lives in :mod:`search_lab.cli.compare`."""

import sys

from search_lab.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
