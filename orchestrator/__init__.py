"""Sweep specs, planning, Ray scheduling, tracking, aggregation and the `gapsweep` CLI.

Importing it imports ``workers``, which sets the project's XLA flags (``workers.xla_flags``).
"""

import workers as _workers  # noqa: F401
