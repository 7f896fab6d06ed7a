"""scripts/lesson_ranges.py runs a lesson per seed, gathers what minift.workshop reported, and writes each number
as mean ± half the range: checked on a two-line stand-in for a lesson (no model, so it takes a second)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from minift import workshop

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("lesson_ranges", ROOT / "scripts" / "lesson_ranges.py")
ranges = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ranges)


def test_seeds_are_run_recorded_and_summarised(tmp_path):
    lesson = tmp_path / "99_stand_in.py"
    lesson.write_text("from minift.workshop import claim, mode, report, seed\n"
                      "report('accuracy', 0.5 + seed() / 10)\nclaim('runs in demo mode', mode() == 'demo')\n",
                      encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    for s in (0, 1, 2):
        assert ranges.run_one(lesson, s, "demo", out, threads=1)["rc"] == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["value"] for r in rows if r["kind"] == "number"] == [0.5, 0.6, 0.7]
    assert all(r["ok"] for r in rows if r["kind"] == "claim") and {r["seed"] for r in rows} == {0, 1, 2}
    text = ranges.summarize(out)
    assert "## 99_stand_in (demo; seeds [0, 1, 2]" in text
    assert "- accuracy: 0.600 ± 0.100 (0.500–0.700)" in text


def test_the_workshop_helpers(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MINIFT_QUICK", raising=False)
    monkeypatch.setenv("MINIFT_DEMO", "1")
    monkeypatch.setenv("MINIFT_SEED", "2")
    monkeypatch.setenv("MINIFT_RESULTS", str(tmp_path / "r.jsonl"))
    assert workshop.mode() == "demo" and workshop.pick(1, 2, 3) == 2 and workshop.seed() == 2
    monkeypatch.setenv("MINIFT_QUICK", "1")  # quick wins over demo: the test suite sets it
    assert workshop.mode() == "quick"
    assert workshop.report("x", None) is None and workshop.report("y", 3) == 3.0
    with pytest.raises(workshop.LessonClaimError, match="claim failed: false"):
        workshop.claim("false", False)
    kept = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["name"], r.get("value"), r.get("ok")) for r in kept] == [("x", None, None), ("y", 3.0, None),
                                                                        ("false", None, False)]
    text = workshop.show_code(workshop.pick)
    assert text.startswith("def pick(quick, demo, full):") and "minift/workshop.py, line" in capsys.readouterr().out
    assert workshop.show_code(workshop.claim, start="ok = bool", stop="raise").splitlines()[0].strip() == "ok = bool(ok)"
    monkeypatch.setenv("MINIFT_SEED", "one")
    with pytest.raises(ValueError, match="MINIFT_SEED"):
        workshop.seed()
