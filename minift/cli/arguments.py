"""What a value on the `minift` command line may be: the parser class (negative numbers read as numbers, usage
errors in one line), the checked value types (positive integers, finite numbers, block lists, KEY=VALUE), and the
help formatter. Pure standard library, so `--help` stays instant; parser.py builds the subcommands from these.
"""

from __future__ import annotations

import argparse
import json
import math
import re


class _Parser(argparse.ArgumentParser):
    """argparse, reading "-1e-3" as a (negative) number, not as an unknown option: `--lr -1e-3` should say that a
    learning rate must be > 0, not "expected one argument". Subcommand parsers are made of this class too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.I)

    def error(self, message: str):
        """A usage error in one line (argparse prints the whole usage first), exit status 2 as argparse's."""
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def _number(text: str, kind: type, minimum: float, strict: bool = False):
    """Parse `text` as `kind` (int or float) and require ≥ minimum (> minimum with strict); argparse turns the
    ArgumentTypeError into a one-line usage error."""
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if value < minimum or (strict and value == minimum):
        raise argparse.ArgumentTypeError(f"expected a number {'>' if strict else '≥'} {minimum}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, 1)


def _non_negative_int(text: str) -> int:
    return _number(text, int, 0)


def _non_negative_float(text: str) -> float:
    return _number(text, float, 0)


def _positive_float(text: str) -> float:
    return _number(text, float, 0, strict=True)


def _probability(text: str) -> float:
    value = _number(text, float, 0)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected block indices separated by commas, e.g. 0,1, got {text!r}") \
            from None


def _key_value(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. dropout=0.1, got {text!r}")
    try:
        return key, json.loads(raw)  # numbers, true/false, lists; anything else is a string
    except json.JSONDecodeError:
        return key, raw


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after an option's help, except where there is no default worth showing (None, off)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _sub(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, formatter_class=_Formatter)


def _run_args(s) -> None:
    """The options of every command that runs a study into a directory: --out, --force, --quiet, --device."""
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--force", action="store_true", help="overwrite results already in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
