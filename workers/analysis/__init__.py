"""Analyses of trained and compiled networks: faithfulness and loss landscapes."""
