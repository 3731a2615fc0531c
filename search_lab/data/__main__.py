"""Entry point only: ``python -m search_lab.data`` runs :func:`search_lab.cli.data.main`."""

import sys

from search_lab.cli.data import main

sys.exit(main())
