"""`minift --help` and every subcommand's `--help` answer without importing torch (the parser reads only pure-data
modules), and each help text shows the defaults the code really uses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from minift.cli import build_parser

SUBCOMMANDS = ["pretrain", "finetune", "compare", "methods", "eval", "merge", "generate", "data", "data export",
               "align", "rag", "rag compare", "continual", "risks", "risks bias", "risks unalign",
               "risks hallucination"]

PROBE = """
import sys
from minift.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "numpy", "tokenizers", "matplotlib") if m in sys.modules)
print("HEAVY", heavy)
"""


@pytest.mark.parametrize("command", ["", *SUBCOMMANDS])
def test_help_imports_no_torch(command):
    argv = [*command.split(), "--help"]
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: minift" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []", f"`minift {command} --help` imported heavy modules"


def test_finetune_help_shows_the_real_defaults(capsys):
    from minift.finetune.config import DEFAULT_EPOCHS, FinetuneConfig

    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"({DEFAULT_EPOCHS} when --max-steps is not given either)" in text
    assert f"(default: {FinetuneConfig.batch_size})" in text and "minift methods" in text


def test_methods_lists_every_method_with_its_lr(capsys):
    from minift.peft import METHODS

    args = build_parser().parse_args(["methods"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for name, cls in METHODS.items():
        row = next(line for line in out.splitlines() if line.startswith(f"| {name} |"))
        assert f"| {cls.default_lr:.4g} |" in row
        assert ("| yes |" in row) == cls.mergeable
