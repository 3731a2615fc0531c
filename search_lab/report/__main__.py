"""``python -m search_lab.report``."""

import sys

from search_lab.report.command import main

sys.exit(main())
