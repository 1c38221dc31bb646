"""The ``blechrs`` command line: one subcommand per stage, progress bars, one-line errors."""

from blechrs.cli.main import main

__all__ = ["main"]
