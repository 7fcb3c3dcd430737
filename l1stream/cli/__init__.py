"""The command line: argument parsing (:mod:`~l1stream.cli.parser`) and commands
(:mod:`~l1stream.cli.commands`).  Uses the library; nothing imports the CLI."""

from l1stream.cli.commands import main

__all__ = ["main"]
