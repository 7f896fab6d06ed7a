"""Lessons are product: every `lessons/NN_topic.py` has a generated notebook whose cells equal its source, every
lesson runs to the end in quick mode checking its key claims, and every lesson has exercises with worked solutions
(`lessons/solutions/NN_topic.py`) that run in quick mode too.

Quick mode runs each lesson as a plain script (MINIFT_QUICK=1, MPLBACKEND=Agg) in a subprocess, with the session's
temporary MINIFT_HOME, so the `quick` base model is pretrained at most once per test run and no user cache is read.
New lessons are picked up automatically by the glob.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
SOLUTIONS = sorted((ROOT / "lessons" / "solutions").glob("[0-9][0-9]_*.py"))
QUICK_TIMEOUT_S = 300  # generous: a quick lesson takes seconds, but the machine may be busy
# lessons on the 135M-parameter real model gain from a second core when the suite runs one test at a time (under
# pytest -n every lesson gets one thread); the toy lessons stay on one thread, where their small matrices run fastest
THREADS = {"10_real_model": "2"}


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


def test_there_are_lessons():
    assert [p.name for p in LESSONS][:2] == ["01_transformer.py", "02_pretraining.py"]


# -- the percent-format parser ---------------------------------------------------------------------------------

def test_parse_percent_cells(tmp_path):
    src = tmp_path / "99_demo.py"
    src.write_text(
        "# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n"
        "# %%\nimport os\n\nx = 1\n\n\n"
        "# %% a titled cell\nprint(x)  # a comment stays code\n"
        "# %%\n\n"  # empty cell: dropped
        "# %% [markdown]\n# closing words\n",
        encoding="utf-8",
    )
    assert builder.parse_percent(src) == [
        ("markdown", "# Title\n\nSome *text*."),
        ("code", "import os\n\nx = 1"),
        ("code", "print(x)  # a comment stays code"),
        ("markdown", "closing words"),
    ]


def test_parse_percent_rejects_code_in_markdown(tmp_path):
    src = tmp_path / "99_bad.py"
    src.write_text("# %% [markdown]\n# fine\nx = 1\n", encoding="utf-8")
    with pytest.raises(builder.PercentFormatError, match="line 3"):
        builder.parse_percent(src)


def test_notebook_round_trip(tmp_path):
    """build_notebook → nbformat text → cells read back are the parsed cells, and the ids are stable."""
    import nbformat

    cells = [("markdown", "# T\n\ntext"), ("code", "print(1)"), ("code", "x = 2\nx")]
    nb = builder.build_notebook(cells, mode=None)
    path = tmp_path / "nb.ipynb"
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    assert builder.cells_of_notebook(path) == cells
    assert nbformat.writes(builder.build_notebook(cells, mode=None)) == path.read_text(encoding="utf-8")


def test_stored_outputs_are_cleaned():
    """Progress bars are dropped, split prints are joined (deterministic JSON), and text after a figure stays
    after it."""
    from nbformat import v4

    outs = [v4.new_output("stream", name="stdout", text="a"), v4.new_output("stream", name="stdout", text="b\n"),
            v4.new_output("stream", name="stderr", text="\rtrain:  50%|#####     | 5/10"),
            v4.new_output("stream", name="stderr", text="\n"),
            v4.new_output("display_data", data={"text/plain": "<Figure>"}),
            v4.new_output("stream", name="stdout", text="c\n"),
            v4.new_output("stream", name="stderr", text="UserWarning: something real\n")]
    kept = builder.merge_streams([o for o in outs if not builder.is_progress_bar(o)])
    assert [(o.output_type, o.get("name"), o.get("text")) for o in kept] == [
        ("stream", "stdout", "ab\n"), ("display_data", None, None), ("stream", "stdout", "c\n"),
        ("stream", "stderr", "UserWarning: something real\n")]
    assert builder.clean_output(v4.new_output("stream", name="stderr", text=f"{builder.ROOT}/minift/x.py:3: W"))[
        "text"] == "<minift>/minift/x.py:3: W"


def test_refresh_markdown_keeps_outputs_and_refuses_changed_code(tmp_path):
    import nbformat

    src = tmp_path / "99_demo.py"
    src.write_text("# %% [markdown]\n# old words\n\n# %%\nprint(1)\n", encoding="utf-8")
    nb = builder.build_notebook(builder.parse_percent(src), mode="full")
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[1].execution_count = 1
    src.with_suffix(".ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    src.write_text("# %% [markdown]\n# new words\n\n# %%\nprint(1)\n", encoding="utf-8")
    assert builder.refresh_markdown(src) is None
    again = nbformat.read(src.with_suffix(".ipynb"), as_version=4)
    assert again.cells[0].source == "new words" and again.cells[1].outputs[0]["text"] == "1\n"
    src.write_text("# %% [markdown]\n# new words\n\n# %%\nprint(2)\n", encoding="utf-8")
    assert "code cell 1" in builder.refresh_markdown(src)


# -- the committed notebooks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_notebook_matches_source(lesson):
    ipynb = lesson.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `python scripts/build_notebooks.py --only {lesson.name[:2]}`"
    want = builder.parse_percent(lesson)
    got = builder.cells_of_notebook(ipynb)
    assert [k for k, _ in got] == [k for k, _ in want], "cell types differ: rebuild the notebook"
    for i, (w, g) in enumerate(zip(want, got)):
        if g != w:
            diff = "\n".join(list(difflib.unified_diff(w[1].splitlines(), g[1].splitlines(), lesson.name,
                                                        ipynb.name, lineterm=""))[:30])
            pytest.fail(f"{ipynb.name} cell {i} differs from {lesson.name}; rebuild the notebook "
                        f"(python scripts/build_notebooks.py --only {lesson.name[:2]}):\n{diff}")
    assert builder.check([lesson]) == []


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_notebook_was_executed(lesson):
    """The notebook carries its outputs: every code cell ran, none raised, and the plots are stored as images."""
    nb = json.loads(lesson.with_suffix(".ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] is not None for c in code), "rebuild without --no-execute"
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    if "plt.show()" in lesson.read_text(encoding="utf-8"):
        assert any("image/png" in o.get("data", {}) for o in outputs), "plots were not captured"


# -- every lesson runs in quick mode ---------------------------------------------------------------------------

def run_quick(script: Path, minift_home: Path, tmp_path: Path) -> list[dict]:
    """Run a lesson (or a solution) as a script in quick mode; return what it claimed and reported
    (minift.workshop writes them to MINIFT_RESULTS)."""
    # one intra-op thread: quick-mode models are too small to gain from two, and when other tests run at the
    # same time, two spinning threads per process make everything several times slower
    parallel = "PYTEST_XDIST_WORKER" in os.environ  # under pytest -n, the other worker needs the other core
    results = tmp_path / "results.jsonl"
    env = dict(os.environ, MINIFT_QUICK="1", MPLBACKEND="Agg", MINIFT_HOME=str(minift_home),
               MINIFT_RESULTS=str(results), PYTHONWARNINGS="ignore",
               OMP_NUM_THREADS="1" if parallel else THREADS.get(script.stem, "1"))
    env.pop("MINIFT_DEMO", None)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=QUICK_TIMEOUT_S)
    if proc.returncode != 0 and "minift.base.download.DownloadError" in proc.stderr:  # SmolLM2, offline
        pytest.skip(f"{script.name} needs SmolLM2, which could not be fetched here: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, f"{script.name} failed in quick mode:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert proc.stdout.strip(), "a lesson should print what it shows"
    return [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()] if results.exists() else []


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_quick_and_checks_its_claims(lesson, minift_home, tmp_path):
    """Quick mode cannot show results (its models train for seconds), so its claims are the mechanics: an
    identity, a closed form, a shape, a refusal. Every lesson checks at least two, and reports its headline
    numbers (the ones scripts/lesson_ranges.py gathers over seeds)."""
    records = run_quick(lesson, minift_home, tmp_path)
    claims = [r for r in records if r["kind"] == "claim"]
    assert len(claims) >= 2 and all(r["ok"] for r in claims), f"{lesson.name} checks too few claims: {claims}"
    assert all(r["mode"] == "quick" for r in records)
    assert any(r["kind"] == "number" for r in records), f"{lesson.name} reports no headline number"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_runs_quick(solution, tmp_path, monkeypatch, capsys):
    """Solutions run in this process (runpy), not as scripts like the lessons: each is a few short runs, and
    starting a Python with torch for each would cost more than the runs themselves."""
    from minift.base.download import DownloadError

    results = tmp_path / "results.jsonl"
    for name, value in dict(MINIFT_QUICK="1", MINIFT_RESULTS=str(results), MPLBACKEND="Agg").items():
        monkeypatch.setenv(name, value)
    for name in ("MINIFT_DEMO", "MINIFT_SEED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        runpy.run_path(str(solution), run_name="__main__")
    except DownloadError as e:  # SmolLM2, offline
        pytest.skip(f"{solution.name} needs SmolLM2, which could not be fetched here: {e}")
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert any(r["kind"] == "claim" for r in records), f"{solution.name} checks nothing"
    assert "mode: quick" in capsys.readouterr().out


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_has_exercises_with_solutions_and_says_what_to_expect(lesson):
    text = lesson.read_text(encoding="utf-8")
    solution = ROOT / "lessons" / "solutions" / lesson.name
    assert solution.is_file(), f"{lesson.name} has no worked solutions in lessons/solutions/"
    assert "*Expect:*" in solution.read_text(encoding="utf-8"), "each exercise says what to expect"
    assert "## What you should see" in text, f"{lesson.name} has no 'What you should see' section"
    assert "lessons/solutions/" in text, f"{lesson.name} does not point to its solutions"
