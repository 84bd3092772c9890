"""Neural compilation: graph programs compiled into GATv2 weights that execute them exactly."""
