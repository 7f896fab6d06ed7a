"""Run lessons in workshop mode over several seeds; report each headline number as mean ± spread and each lesson's
runtime.

    python scripts/lesson_ranges.py                       every lesson, seeds 0 1 2, demo mode
    python scripts/lesson_ranges.py --only 03 05 --seeds 0 1 2 --out runs/ranges
    python scripts/lesson_ranges.py --mode full --only 04  the same, in full mode
    python scripts/lesson_ranges.py --summarize runs/ranges   the table again, from what is already there
    python scripts/lesson_ranges.py --solutions --seeds 0     the worked solutions (lessons/solutions/) instead

Each lesson runs as a script (MINIFT_DEMO=1 or full mode, MINIFT_SEED=s, MPLBACKEND=Agg) in a subprocess with
OMP_NUM_THREADS = --threads (default 2: the 2-core laptop the README's runtimes are for). The numbers the lesson
passes to `minift.workshop.report` are collected from MINIFT_RESULTS. Output, in --out:

    results.jsonl       every reported number and checked claim, tagged with lesson, seed and mode
    runtimes.jsonl      {"lesson", "seed", "mode", "seconds", "rc"} per run
    ranges.md           per lesson: wall time (min–max over seeds) and every number as mean ± half the range
                        (min–max), the table README and lessons/TEACHING.md quote

Runtimes depend on the machine and on what else runs: measure with nothing else busy. Numbers depend on the seed
and, in the last digits, on the CPU and the thread count (different kernels add in different orders).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lessons(only: list[str] | None, solutions: bool = False) -> list[Path]:
    found = sorted((ROOT / "lessons" / ("solutions" if solutions else "")).glob("[0-9][0-9]_*.py"))
    return [p for p in found if not only or p.name[:2] in only]


def run_one(lesson: Path, seed: int, mode: str, out: Path, threads: int) -> dict:
    env = dict(os.environ, MINIFT_SEED=str(seed), MINIFT_RESULTS=str(out / "results.part.jsonl"), MPLBACKEND="Agg",
               OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    env.pop("MINIFT_QUICK", None)
    env.pop("MINIFT_DEMO", None)
    if mode == "demo":
        env["MINIFT_DEMO"] = "1"
    part = out / "results.part.jsonl"
    part.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(lesson)], cwd=out, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / f"{lesson.stem}.{mode}.{seed}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    with open(out / "results.jsonl", "a", encoding="utf-8") as f:
        for line in part.read_text(encoding="utf-8").splitlines() if part.exists() else []:
            f.write(json.dumps({"lesson": lesson.stem, **json.loads(line)}) + "\n")
    part.unlink(missing_ok=True)
    row = {"lesson": lesson.stem, "seed": seed, "mode": mode, "seconds": round(seconds, 1), "rc": proc.returncode}
    with open(out / "runtimes.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    return row


def fmt(values: list[float]) -> str:
    lo, hi, mean = min(values), max(values), statistics.fmean(values)
    digits = 0 if abs(mean) >= 100 else 1 if abs(mean) >= 10 else 3
    if len(values) == 1 or hi == lo:
        return f"{mean:.{digits}f}" + (f" (all {len(values)} seeds)" if len(values) > 1 else "")
    return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def summarize(out: Path) -> str:
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    times = [json.loads(x) for x in (out / "runtimes.jsonl").read_text(encoding="utf-8").splitlines()]
    numbers: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("kind") == "number" and r["value"] is not None:
            numbers[(r["lesson"], r["mode"])][r["name"]].append(r["value"])
    lines = ["# Lesson results over seeds", ""]
    for (lesson, mode) in sorted({(t["lesson"], t["mode"]) for t in times}):
        ts = [t for t in times if t["lesson"] == lesson and t["mode"] == mode]
        secs = [t["seconds"] for t in ts]
        failed = [t["seed"] for t in ts if t["rc"] != 0]
        lines.append(f"## {lesson} ({mode}; seeds {sorted(t['seed'] for t in ts)}; "
                     f"{min(secs):.0f}–{max(secs):.0f} s per run" + (f"; FAILED for seeds {failed}" if failed else "")
                     + ")")
        lines += [f"- {name}: {fmt(vals)}" for name, vals in numbers[(lesson, mode)].items()]
        lines.append("")
    text = "\n".join(lines)
    (out / "ranges.md").write_text(text, encoding="utf-8")
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="lesson numbers, e.g. 03 05")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--mode", choices=("demo", "full"), default="demo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "lesson_ranges")
    ap.add_argument("--summarize", type=Path, help="only rebuild ranges.md from an earlier --out")
    ap.add_argument("--solutions", action="store_true", help="run lessons/solutions/NN_*.py instead of the lessons")
    args = ap.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for lesson in lessons(args.only, args.solutions):
        for s in args.seeds:
            row = run_one(lesson, s, args.mode, args.out.resolve(), args.threads)
            print(json.dumps(row), flush=True)
    print(summarize(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
