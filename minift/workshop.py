"""What a lesson asks of its surroundings: the mode it runs in, its seed, the claims it checks, the numbers it
reports, the library code it shows, and figures a room can read.

Three modes, chosen by environment variables so that a notebook and a script behave the same:

    full   (default)          the lesson as written: real settings, ≤ 10 minutes on 2 CPU cores
    demo   MINIFT_DEMO=1      workshop mode: smaller settings that still give meaningful numbers, ≤ 90 s per lesson
                              on 2 cores once the bases are cached (`minift warmup` before class)
    quick  MINIFT_QUICK=1     a smoke test for the test suite: seconds, numbers that mean nothing

    MINIFT_SEED=s             the lesson's seed (default 0); scripts/lesson_ranges.py runs seeds 0, 1, 2
    MINIFT_RESULTS=FILE       `report` and `claim` also append one JSON line per number / claim to FILE

    pick(quick=…, demo=…, full=…)   the setting for the current mode
    claim("text", ok)                a key claim of the lesson, checked: prints ✓, or raises LessonClaimError
    report("name", value)            a headline number, printed and (with MINIFT_RESULTS) recorded
    show_code(obj)                   the source of a library function or class, printed (inspect.getsource), so a
                                     lesson that calls `finetune()` first shows the lines that matter
    projector_style()                matplotlib defaults readable on a projector (large fonts, thick lines)

Nothing here imports torch or matplotlib at import time.
"""

from __future__ import annotations

import inspect
import json
import os
import textwrap

MODES = ("quick", "demo", "full")


class LessonClaimError(AssertionError):
    """A lesson's key claim did not hold: the lesson's text and its numbers disagree."""


def mode() -> str:
    """'quick' if MINIFT_QUICK=1, else 'demo' if MINIFT_DEMO=1, else 'full'."""
    if os.environ.get("MINIFT_QUICK") == "1":
        return "quick"
    if os.environ.get("MINIFT_DEMO") == "1":
        return "demo"
    return "full"


def pick(quick, demo, full):
    """The value for the current mode: `pick(quick=2, demo=20, full=60)`."""
    return {"quick": quick, "demo": demo, "full": full}[mode()]


def seed() -> int:
    """The lesson's seed: MINIFT_SEED (an integer ≥ 0), 0 when unset."""
    raw = os.environ.get("MINIFT_SEED", "0")
    if not raw.isdigit():
        raise ValueError(f"MINIFT_SEED must be a non-negative integer, got {raw!r}")
    return int(raw)


def _record(entry: dict) -> None:
    path = os.environ.get("MINIFT_RESULTS")
    if path:  # one line per write, appended: several lessons and seeds can share one file
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"mode": mode(), "seed": seed(), **entry}) + "\n")


def report(name: str, value: float | None, unit: str = "", fmt: str = ".3f") -> float | None:
    """Print a headline number ("name: value unit") and record it; returns the value. None (a number that does
    not exist for this run, such as a bias with no "yes" at all) prints as "—" and is recorded as null."""
    value = None if value is None else float(value)
    shown = "—" if value is None else f"{value:{fmt}}"
    print(f"→ {name}: {shown}{(' ' + unit) if unit else ''}")
    _record({"kind": "number", "name": name, "value": value, "unit": unit})
    return value


def claim(statement: str, ok: bool, detail: str = "") -> None:
    """Check one of the lesson's key claims. Prints '✓ statement' or raises LessonClaimError naming it.

    In quick mode only claims about mechanics (an identity, a closed form, a shape) can hold; a lesson makes its
    claims about *results* under `if mode() != "quick"`."""
    ok = bool(ok)
    _record({"kind": "claim", "name": statement, "ok": ok})
    if not ok:
        raise LessonClaimError(f"claim failed: {statement}" + (f" ({detail})" if detail else ""))
    print(f"✓ {statement}" + (f" ({detail})" if detail else ""))


def show_code(obj, start: str | None = None, stop: str | None = None) -> str:
    """Print the source of `obj` (a function, class or method of the library), from the first line containing
    `start` to the first later line containing `stop` (both kept; None: the whole object). Returns the text."""
    lines = textwrap.dedent(inspect.getsource(obj)).splitlines()
    i = 0 if start is None else next((k for k, line in enumerate(lines) if start in line), None)
    if i is None:
        raise ValueError(f"{start!r} is not in the source of {obj.__qualname__}")
    j = len(lines) if stop is None else next((k + 1 for k in range(i + 1, len(lines)) if stop in lines[k]), None)
    if j is None:
        raise ValueError(f"{stop!r} does not follow {start!r} in the source of {obj.__qualname__}")
    path = inspect.getsourcefile(obj) or "?"
    where = path[path.rfind("minift"):].replace(os.sep, "/")
    first = inspect.getsourcelines(obj)[1] + i
    text = "\n".join(lines[i:j])
    print(f"# {where}, line {first} ({obj.__module__}.{obj.__qualname__})\n{text}")
    return text


def projector_style() -> None:
    """matplotlib defaults for a room: fonts of 13–15 pt, thicker lines, legends with a frame, figures that lay
    themselves out (no label cut off)."""
    import matplotlib

    matplotlib.rcParams.update({
        "font.size": 13, "axes.titlesize": 15, "axes.labelsize": 14, "xtick.labelsize": 12, "ytick.labelsize": 12,
        "legend.fontsize": 12, "legend.framealpha": 0.9, "lines.linewidth": 2.2, "lines.markersize": 7,
        "figure.dpi": 100, "figure.constrained_layout.use": True, "axes.grid": True, "grid.alpha": 0.3,
    })
