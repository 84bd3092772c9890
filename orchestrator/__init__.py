"""The engine: sweep specs, plans, Ray scheduling, the sweep engine, analyses, tracking, reports.

A library that speaks in values and events and never prints (``gapsweep`` is the command layer on
top of it). Importing it imports ``workers``, which sets the project's XLA flags
(``workers.xla_flags``).
"""

import workers as _workers  # noqa: F401
