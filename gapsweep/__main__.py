"""``python -m gapsweep``: the same as the ``gapsweep`` console script."""

import sys

from gapsweep.main import main

sys.exit(main())
