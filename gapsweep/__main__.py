"""``python -m gapsweep``: the same as the ``gapsweep`` console script."""

import sys

import gapsweep

gapsweep.exit_on_interrupt_while_starting()        # before the imports below: Ctrl-C there exits

from gapsweep.main import main  # noqa: E402

sys.exit(main())
