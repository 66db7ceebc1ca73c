"""Command-line interface (``espressivo --help``)."""

from espressivo.cli.main import app, main

__all__ = ["app", "main"]
