"""Turn each lesson `lessons/NN_topic.py` (percent format) into `lessons/NN_topic.ipynb`, with outputs.

The `.py` file is the source a learner (and git) reads; the notebook is generated from it, executed, and keeps its
outputs (text and matplotlib figures) so it can be read without running anything.

Percent format (the subset jupytext calls "percent"):

    # %%                     starts a code cell (any text after `# %%` is a title and is ignored)
    # %% [markdown]          starts a markdown cell; each of its lines is `# text` (or a bare `#` for a blank line)

Usage (from the repository root):

    python scripts/build_notebooks.py              # execute every lesson in full mode, write the notebooks
    python scripts/build_notebooks.py --quick      # the same with MINIFT_QUICK=1 (small settings, seconds)
    python scripts/build_notebooks.py --only 01    # just the lessons whose name starts with 01
    python scripts/build_notebooks.py --no-execute # cells only, no outputs
    python scripts/build_notebooks.py --check      # exit 1 if a notebook's cells differ from its source
    python scripts/build_notebooks.py --refresh-markdown --only 05   # prose edits only: copy the source's markdown
                                                   # cells into the notebook, keep every stored output; refused
                                                   # when a code cell changed (that needs a real rebuild)

Figures: the kernel is started without MPLBACKEND, so ipykernel selects matplotlib's inline backend and every
figure a cell draws (lessons end a plot with `plt.show()`) is stored in the notebook as a PNG. No magic is needed
in the lesson source, which therefore also runs as a plain script (`MPLBACKEND=Agg python lessons/01_...py`).

Determinism: cell ids are derived from the cell's position, execution timings are not recorded, and the kernel's
version details are dropped from the metadata, so rebuilding an unchanged lesson on the same machine gives the
same file.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
LESSON_GLOB = "[0-9][0-9]_*.py"

_CELL = re.compile(r"^# %%(?P<rest>.*)$")


class PercentFormatError(ValueError):
    """A lesson file that is not valid percent format; the message names the file and line."""


def parse_percent(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Split a percent-format file into cells: a list of (cell_type, source), cell_type "code" or "markdown".

    Leading and trailing blank lines of each cell are dropped; empty code cells are dropped. Markdown lines lose
    their `# ` prefix. A markdown line that is not a comment raises PercentFormatError (file and line number).
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    cells: list[tuple[str, list[str], int]] = []  # (type, lines, line number of the marker)
    current: tuple[str, list[str], int] = ("code", [], 1)  # text before the first marker is a code cell
    for lineno, line in enumerate(lines, 1):
        m = _CELL.match(line)
        if m:
            cells.append(current)
            rest = m.group("rest").strip()
            kind = "markdown" if rest.startswith("[markdown]") or rest.startswith("[md]") else "code"
            current = (kind, [], lineno)
            continue
        if current[0] == "markdown":
            if line.strip() == "" or line.rstrip() == "#":
                line = ""
            elif line.startswith("# "):
                line = line[2:]
            else:
                raise PercentFormatError(
                    f"{path}, line {lineno}: a markdown cell (started on line {current[2]}) may hold only comment "
                    f"lines ('# text' or '#'), got {line!r}; start a code cell with '# %%' before code"
                )
        current[1].append(line.rstrip())
    cells.append(current)

    out = []
    for kind, body, _ in cells:
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        if body:
            out.append((kind, "\n".join(body)))
    return out


def lesson_paths(only: str | None = None) -> list[Path]:
    paths = sorted(LESSONS.glob(LESSON_GLOB))
    if only:
        paths = [p for p in paths if p.name.startswith(only)]
    return paths


def build_notebook(cells: list[tuple[str, str]], mode: str | None):
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    for i, (kind, source) in enumerate(cells):
        cell = v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source)
        cell.id = f"cell-{i:03d}"  # stable ids: a rebuild does not churn every cell
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    if mode:
        nb.metadata["minift"] = {
            "mode": mode,
            "generated_by": "scripts/build_notebooks.py from the .py file of the same name; edit that file",
        }
    nbformat.validate(nb)
    return nb


def execute(nb, cwd: Path, quick: bool, timeout: int) -> None:
    from nbclient import NotebookClient

    # the kernel inherits this process's environment
    os.environ["MINIFT_QUICK"] = "1" if quick else "0"
    for name in ("MINIFT_DEMO", "MINIFT_SEED", "MINIFT_RESULTS"):  # a stored notebook is full (or quick) mode, seed 0
        os.environ.pop(name, None)
    os.environ.pop("MPLBACKEND", None)  # let ipykernel pick the inline backend so figures land in the notebook
    # tqdm.auto warns once per kernel that ipywidgets is missing (it then draws text bars): noise, not lesson
    os.environ["PYTHONWARNINGS"] = "ignore:IProgress not found"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    nb.metadata["language_info"] = {"name": "python"}  # drop the interpreter version the kernel reported
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = merge_streams([clean_output(o) for o in cell.outputs if not is_progress_bar(o)])


def merge_streams(outputs: list) -> list:
    """Join consecutive pieces of the same stream. How the kernel splits printed text into messages depends on
    timing, so without this two runs that print the same text store different JSON."""
    merged = []
    for o in outputs:
        prev = merged[-1] if merged else None
        if (o.get("output_type") == "stream" and prev is not None and prev.get("output_type") == "stream"
                and prev.get("name") == o.get("name")):
            prev["text"] += o["text"]
        else:
            merged.append(o)
    return merged


def is_progress_bar(output) -> bool:
    """A tqdm bar (stderr text redrawn with carriage returns, then a closing newline): useful live, noise once
    stored."""
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return False
    text = output.get("text", "")
    return "\r" in text or not text.strip()


def clean_output(output):
    """Replace this machine's directories in text outputs (a warning's file name, say) with neutral names, so the
    stored notebook neither leaks nor depends on where it was built."""
    swaps = [(os.environ.get("MINIFT_HOME") or "\0", "$MINIFT_HOME"), (sys.prefix, "<python>"),
             (sys.base_prefix, "<python>"), (str(ROOT), "<minift>"), (str(Path.home()), "~"),
             (tempfile.gettempdir(), "<tmp>")]

    def scrub(text: str) -> str:
        for old, new in swaps:
            text = text.replace(old, new)
        return text
    if output.get("output_type") == "stream":
        output["text"] = scrub(output["text"])
    elif "text/plain" in output.get("data", {}):
        output["data"]["text/plain"] = scrub(output["data"]["text/plain"])
    if output.get("output_type") == "error":
        output["traceback"] = [scrub(line) for line in output["traceback"]]
    return output


def cells_of_notebook(path: Path) -> list[tuple[str, str]]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source) for c in nb.cells if c.cell_type in ("code", "markdown")]


def check(paths: list[Path]) -> list[str]:
    """Problems found: a missing notebook, or one whose cells differ from its source."""
    problems = []
    for py in paths:
        ipynb = py.with_suffix(".ipynb")
        if not ipynb.exists():
            problems.append(f"{ipynb.name}: missing; run scripts/build_notebooks.py --only {py.name[:2]}")
            continue
        want, got = parse_percent(py), cells_of_notebook(ipynb)
        if want != got:
            first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
            problems.append(f"{ipynb.name}: cells differ from {py.name} (source has {len(want)} cells, notebook "
                            f"{len(got)}; first difference at cell {first}); rebuild it")
    return problems


def refresh_markdown(py: Path) -> str | None:
    """Copy the markdown cells of `py` into its notebook, keeping the notebook's code cells and their outputs.
    Returns a problem (and writes nothing) when the cell kinds or any code cell differ: outputs would then describe
    code that is no longer there."""
    import nbformat

    from minift.files import atomic_path

    ipynb = py.with_suffix(".ipynb")
    if not ipynb.exists():
        return f"{ipynb.name}: missing; build it first"
    want = parse_percent(py)
    nb = nbformat.read(ipynb, as_version=4)
    cells = [c for c in nb.cells if c.cell_type in ("code", "markdown")]
    if [k for k, _ in want] != [c.cell_type for c in cells]:
        return f"{ipynb.name}: the cells of {py.name} are not the notebook's (added, removed or moved): rebuild it"
    changed = [i for i, ((kind, src), c) in enumerate(zip(want, cells)) if kind == "code" and src != c.source]
    if changed:
        return f"{ipynb.name}: code cell {changed[0]} of {py.name} changed: its outputs are stale; rebuild it"
    for (kind, src), c in zip(want, cells):
        if kind == "markdown":
            c.source = src
    with atomic_path(ipynb) as tmp:
        tmp.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        tmp.chmod(0o644)
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="run the lessons with MINIFT_QUICK=1 (small settings)")
    ap.add_argument("--only", metavar="PREFIX", help="only lessons whose file name starts with PREFIX, e.g. 01")
    ap.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    ap.add_argument("--check", action="store_true", help="compare notebooks with their sources; run nothing")
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default 900)")
    ap.add_argument("--refresh-markdown", action="store_true",
                    help="copy the sources' markdown cells into the notebooks, keep the outputs; run nothing")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from minift.files import atomic_path

    paths = lesson_paths(args.only)
    if not paths:
        print(f"no lessons match {LESSONS.name}/{args.only or ''}{LESSON_GLOB}", file=sys.stderr)
        return 2
    if args.check:
        problems = check(paths)
        for p in problems:
            print(p, file=sys.stderr)
        print(f"checked {len(paths)} notebook(s): {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    if args.refresh_markdown:
        problems = [p for p in map(refresh_markdown, paths) if p]
        for p in problems:
            print(p, file=sys.stderr)
        print(f"refreshed the markdown of {len(paths) - len(problems)} notebook(s)")
        return 1 if problems else 0

    import nbformat
    from nbclient.exceptions import CellExecutionError

    for py in paths:
        mode = None if args.no_execute else ("quick" if args.quick else "full")
        nb = build_notebook(parse_percent(py), mode)
        t0 = time.perf_counter()
        if not args.no_execute:
            try:
                execute(nb, LESSONS, args.quick, args.timeout)
            except CellExecutionError as e:
                print(f"{py.name}: a cell failed; the notebook was not written.\n{e}", file=sys.stderr)
                return 1
        with atomic_path(py.with_suffix(".ipynb")) as tmp:
            tmp.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
            tmp.chmod(0o644)  # the temporary file is created private; a notebook is for everyone to read
        print(f"{py.with_suffix('.ipynb').name}: written ({mode or 'not executed'}, "
              f"{time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
