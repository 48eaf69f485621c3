"""The ``microstatedb`` command. Each sub-command lives in its own module with ``register``."""

from microstatedb.cli._main import main

__all__ = ["main"]
