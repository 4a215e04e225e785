"""The `hookwise` command line, one module per kind of work; importing them registers
their commands on `main`."""

from hookwise.cli import authoring, database, history, operate, serve
from hookwise.cli.common import main

__all__ = ["authoring", "database", "history", "main", "operate", "serve"]
