"""Several continual variants on the same stream, side by side: `continual_sweep(configs, out)`.

Each variant runs from a fresh copy of the base in out/<name>/ (run.py); the sweep writes

    table.md                     one row per variant: learned, retained, changed, stale, forgetting, seconds/update
    sweep.json                   the same rows
    learning_vs_forgetting.png   every variant's trajectory on the same axes (measures.save_learning_vs_forgetting)

The base is loaded once and deep-copied per variant, so every variant starts from the same weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

from minift.continual.measures import save_learning_vs_forgetting
from minift.continual.run import ContinualConfig, continual
from minift.errors import ConfigError
from minift.files import PathLike, atomic_write_text, check_out_dir, save_json
from minift.tables import markdown_table

COLUMNS = ["variant", "learned", "retained", "changed", "stale", "forgetting", "s/update"]


def continual_sweep(configs: list[ContinualConfig], out_dir: PathLike, force: bool = False,
                    progress: bool = True) -> list[dict]:
    """Run every config (same base, same stream) into out_dir/<name>/; returns the table's rows."""
    from minift.base.cache import resolve_base

    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"two variants share a name ({', '.join(names)}); each method+mitigation once")
    stream_keys = {(c.base, c.n_updates, c.facts, c.paraphrases, c.seed) for c in configs}
    if len(stream_keys) != 1:
        raise ConfigError("the variants of a sweep must share the base and the stream (updates, facts, "
                          "paraphrases, seed)")
    out = Path(out_dir)
    for c in configs:
        check_out_dir(out / c.name, ("results.json",), force=force)
    check_out_dir(out, ("table.md", "sweep.json", "learning_vs_forgetting.png"), force=force)
    model, tok, preset = resolve_base(configs[0].base, progress=False)
    runs, rows, probe = {}, [], "pretraining text"
    for c in configs:
        record = continual(c, out / c.name, force=force, progress=progress,
                           model_and_tok=(copy.deepcopy(model), tok, preset))
        runs[c.name], probe = record["updates"], record["probe"]
        rows.append(row_of(record))
    save_json(out / "sweep.json", {"rows": rows, "configs": [c.to_dict() for c in configs]})
    atomic_write_text(out / "table.md", markdown_table(rows, COLUMNS) + "\n")
    save_learning_vs_forgetting(runs, out / "learning_vs_forgetting.png",
                                title=f"{configs[0].base}: learning vs forgetting, {configs[0].n_updates} updates",
                                probe=probe)
    return rows


def row_of(record: dict) -> dict:
    s = record["summary"]
    return {"variant": record["name"], "learned": s["learned"], "retained": s["retained"], "changed": s["changed"],
            "stale": s["stale"], "forgetting": s["forgetting"], "s/update": s["seconds_per_update"]}
