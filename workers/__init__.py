"""Everything that runs on a worker: data, model, training, evaluation, compilation.

Importing it sets the XLA flags the project's numerics depend on (``workers.xla_flags``), before
any JAX computation can start XLA's backend.
"""

from workers import xla_flags as _xla_flags

_xla_flags.apply()
