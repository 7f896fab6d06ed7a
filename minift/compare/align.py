"""Which alignment method? Every chosen method on one preference set, scored the same way, side by side.

    compare_alignment(AlignConfig(task=…, …), methods, out_dir)
      for each method m:  align(config with method=m) → out_dir/<m>/   (a normal alignment run directory)
      then one row per method → out_dir/results.json, out_dir/table.md

Every method gets the same starting model (the same SFT step when asked), the same data and budget, and the same
scoring (align/run.py): the columns are the held-out pair accuracy, the implicit rewards of chosen and rejected,
the rule judge on greedy answers before and after, the win rate over the starting model (by the rules and, with a
reward model, by it), the KL on the policy's answers, the answer length, the change of the pretraining loss, and
the wall time of the run. A finished method is not run again unless `force`; its settings must match.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from minift.align.config import ALIGN_METHODS, AlignConfig
from minift.align.run import align
from minift.errors import ConfigError
from minift.files import atomic_write_text, load_json, make_dir, save_json
from minift.tables import markdown_table


def check_align_methods(methods: Sequence[str] | str) -> list[str]:
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    unknown = [m for m in names if m not in ALIGN_METHODS]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"alignment methods must be distinct names from {', '.join(ALIGN_METHODS)}; got {names}")
    return names


def _row(method: str, r: dict) -> dict:
    pct = "{:.0%}".format
    row = {"method": method, "pairs ranked right": pct(r["pair_accuracy"]) if "pair_accuracy" in r else "—",
           "chosen / rejected reward": (f"{r['pair_rewards_chosen']:+.2f} / {r['pair_rewards_rejected']:+.2f}"
                                        if "pair_rewards_chosen" in r else "—")}
    if "judge_policy" in r:
        row["judged good: start → aligned"] = f"{pct(r['judge_reference'])} → {pct(r['judge_policy'])}"
        row["win rate"] = pct(r["win_rate"])
    if "rm_win_rate" in r:
        row["win rate (reward model)"] = pct(r["rm_win_rate"])
    row.update({"KL": f"{r['kl_policy_answers']:.2f}",
                "answer length": f"{r['length_reference']:.1f} → {r['length_policy']:.1f}",
                "pretraining loss Δ": f"{r['forgetting']['delta_loss']:+.3f}",
                "wall time": f"{r['wall_seconds']:.0f} s"})
    return row


def compare_alignment(config: AlignConfig, methods: Sequence[str] | str, out_dir, force: bool = False,
                      progress: bool = False) -> list[dict]:
    """Run (or reuse) one alignment run per method and write results.json and table.md (module docstring)."""
    names = check_align_methods(methods)
    out = make_dir(Path(out_dir))
    records = {}
    for m in names:
        cell, cfg = out / m, replace(config, method=m, options={})
        if (cell / "results.json").is_file() and not force:
            r = load_json(cell / "results.json")
            if r.get("config") != cfg.to_dict():
                raise ConfigError(f"{cell} was run with other settings; pass --force to run it again")
        else:
            r = align(cfg, cell, force=True, progress=progress)
        records[m] = r
    rows = [_row(m, r) for m, r in records.items()]
    save_json(out / "results.json", {"config": config.to_dict(), "methods": names,
                                     "runs": {m: {k: v for k, v in r.items() if k != "samples"}
                                              for m, r in records.items()}})
    what = config.task or config.data
    note = (f"\nBase `{config.base}`" + (f" after {config.sft_epochs:g} SFT epochs on {config.sft_on}" if
                                          config.sft_epochs else "") + f", preference data `{what}`, update "
            f"{config.update}; scored on the held-out prompts (docs/alignment.md explains every column).\n")
    atomic_write_text(out / "table.md", markdown_table(rows) + "\n" + note)
    return rows
