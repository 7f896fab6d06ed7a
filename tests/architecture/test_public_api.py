"""The public API: every name a package lists resolves, README's table lists exactly those names, and importing
minift (or the CLI) loads nothing heavy until a name is touched."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
PACKAGES = ["minift", "minift.data", "minift.model", "minift.training", "minift.quant", "minift.base", "minift.peft",
            "minift.finetune", "minift.compare"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_listed_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} lists no public names"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="has no attribute"):
        module.no_such_name  # noqa: B018


def readme_table() -> dict[str, set[str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Public API"):]
    rows = re.findall(r"^\| `(minift[\w.]*)` \| (.+) \|$", section, flags=re.M)
    return {pkg: set(re.findall(r"`(\w+)`", names)) for pkg, names in rows}


def test_readme_lists_the_public_api():
    table = readme_table()
    assert sorted(table) == sorted(PACKAGES)
    for package, names in table.items():
        assert names == set(importlib.import_module(package).__all__), package


def test_importing_minift_is_light():
    code = ("import sys, minift, minift.cli, minift.finetune, minift.base, minift.compare, minift.training;"
            "print(sorted(m for m in ('torch', 'numpy', 'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
