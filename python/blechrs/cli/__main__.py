"""``python -m blechrs.cli``: the command line."""

import sys

from blechrs.cli import main

sys.exit(main())
