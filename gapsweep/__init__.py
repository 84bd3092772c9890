"""The ``gapsweep`` command layer: argument parsing, printing and the one error reporter, on top
of the library (``orchestrator`` → ``workers`` / ``db``), which never imports it.

    gapsweep run sweeps/quickstart.yaml      # the console script: gapsweep.main:main
    python -m gapsweep run sweeps/quickstart.yaml
"""
