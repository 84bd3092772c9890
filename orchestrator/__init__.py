"""Sweep specs, planning, Ray scheduling, tracking, aggregation and the `gapsweep` CLI."""
