"""The package layering, read from the source with `ast` (no imports run), so that it fails with the import named.

    foundation (minift/__init__, errors, files, lazy, plots, tables, workshop)
      ← data ← model ← training, quant ← base, peft ← finetune ← compare ← cli ← __main__

A module may import from its own package and from packages on its left, never from one on its right or beside it
(base and peft do not import each other). Nothing imports the cli. The model imports no file formats (reading and
writing weights is the base's job). There are no import cycles between modules, function-level imports included.
Imports under `if TYPE_CHECKING:` are for type checkers only and never run, so they are not counted.
ARCHITECTURE.md explains the rules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "minift"
FOUNDATION = {"minift", "minift.errors", "minift.files", "minift.lazy", "minift.plots", "minift.tables", "minift.workshop"}
RANK = {"data": 1, "model": 2, "training": 3, "quant": 3, "base": 4, "peft": 4, "finetune": 5, "align": 6, "retrieval": 6, "continual": 6,
        "compare": 7, "risks": 7, "cli": 8, "__main__": 9}
# weight-file formats and the package that reads them (the tokenizer's own JSON files are not weights)
FILE_FORMATS = {"pickle", "struct", "safetensors", "gguf", "numpy", "minift.base"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth; `from minift.x import y` names minift.x.y
    when y is a module, else minift.x."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # drop `if TYPE_CHECKING:` blocks
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports (from minift.… import …)"
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((node.lineno, sub if sub in MODULES else node.module))
    return found


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT.parent)) if path.is_relative_to(ROOT.parent) else str(path)


def stage(module: str) -> str | None:
    """The package a minift module belongs to (None for the foundation)."""
    if module in FOUNDATION:
        return None
    return module.split(".")[1]


def test_every_module_has_a_stage():
    unknown = sorted(m for m in MODULES if m not in FOUNDATION and stage(m) not in RANK)
    assert not unknown, f"modules outside the stage map (add the package to RANK and ARCHITECTURE.md): {unknown}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_layers(module):
    mine = stage(module)
    for line, target in imports(MODULES[module]):
        if not target.startswith("minift") or target not in MODULES:
            continue
        theirs = stage(target)
        where = f"{shown(MODULES[module])}:{line} imports {target}"
        assert theirs != "cli" or mine in ("cli", "__main__"), f"{where}: nothing imports the command line"
        if mine is None:  # the foundation imports only the foundation
            assert theirs is None, f"{where}: the foundation must not import a stage"
        elif theirs is not None and theirs != mine:
            assert RANK[theirs] < RANK[mine], (f"{where}: {mine} (layer {RANK[mine]}) may only import from layers "
                                               f"below it, not from {theirs} (layer {RANK[theirs]})")


def test_model_imports_no_file_formats():
    for module, path in MODULES.items():
        if stage(module) == "model":
            for line, target in imports(path):
                assert not any(target == f or target.startswith(f + ".") for f in FILE_FORMATS), \
                    f"{shown(path)}:{line} imports {target}: the model reads and writes no files"


def test_no_import_cycles():
    graph = {m: {t for _, t in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    # package __init__s that only name their modules lazily are not edges; eager ones are
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if t in path[:-1] or state.get(t) == 1:
                cycle = path[path.index(t):] + [t] if t in path else path + [t]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_checker_catches_a_bad_import(tmp_path, monkeypatch):
    """The rule above can fail: a data module importing the model is reported with its line."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom minift.model.gpt import GPT\n")
    monkeypatch.setitem(MODULES, "minift.data.bad", bad)
    with pytest.raises(AssertionError, match=r"bad.py:2 imports minift.model.gpt: data \(layer 1\)"):
        test_imports_follow_the_layers("minift.data.bad")
