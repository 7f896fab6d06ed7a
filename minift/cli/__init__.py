"""The tools on top, last: the `minift` command. parser.py declares every subcommand, option and default (without
importing torch, so `--help` is instant; arguments.py the value types); commands.py does the work of each, as a thin layer over the library."""

from minift.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
