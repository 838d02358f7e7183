"""``python -m colddiff``: the command line."""

import sys

from colddiff.cli import main

sys.exit(main())
