"""Which method should I use? Run every method on one base and task, score them the same way, put them side by side.

    compare(base, task, methods, seeds, out_dir)
      for each method m and seed k:  finetune(FinetuneConfig(base, task, method=m, seed=k, **overrides))
                                     → out_dir/<m>/seed<k>/  (a normal fine-tuning run directory)
      then one row per method       → out_dir/results.json, out_dir/table.md,
                                      out_dir/metric_vs_params.png, out_dir/forgetting_vs_metric.png

Every method gets the same data, the same evaluation and the same budget (finetune's default number of epochs
unless overrides say otherwise). Only the learning rate and the method's options differ: they come from
each method's config (`default_lr`; fewer trainable numbers each carry more of the change, so they get larger
steps), and table.md lists under the results the lr, options and steps every method actually ran with. What each
method trains:

    full              every weight (and the new classification head, which every method trains)
    lora              A (r × d_in) and B (d_out × r) beside attn.q and attn.v, update (α/r)·B A
    dora              LoRA's A and B plus one magnitude per output row of attn.q and attn.v
    qlora             LoRA's A and B over a base whose linear layers are frozen in NF4 (4.127 bits per weight)
    adapter-houlsby   a bottleneck network (d → d/16 → d) after attention and after the MLP of every block
    adapter-pfeiffer  one bottleneck network after the MLP of every block
    prefix            P learned key and value rows in every attention layer
    prompt            P learned input vectors in front of the text
    ia3               scaling vectors on attn.k, attn.v and the MLP's inner activation
    loreft            an edit h + Rᵀ(W h + b − R h) of the residual stream at the first and last prompt tokens
    direft            the unconstrained edit h + W₂ᵀ(W₁ h + b) at the same positions

The columns of a row (results.json keeps all of them; table.md shows the main ones):
    trainable_params, trainable_pct   numbers the optimizer updates (a new classification head included), and
                                      100 · trainable / total
    optimizer_state_bytes             AdamW's two fp32 moments: 8 bytes per trainable number
    peak_memory_mb                    CPU: peak resident set size of the run's process (Linux: VmHWM, see
                                      `own_peak_rss_mb`); CUDA: peak bytes allocated by tensors. With isolate=True
                                      (default) every run has its own process, so the number is that run's own; in
                                      one shared process (isolate=False) the peak is reset before each run where
                                      Linux allows (`reset_peak_rss`), but what the process already holds (earlier
                                      runs, imports) counts for every run
    step_ms, tokens_per_s             seconds per optimizer step (forward + backward + update, evaluation excluded;
                                      from last.pt's train_time / steps) and input positions per second
    metric_mean ± metric_std          the task's test metric (accuracy, or exact match for instruction tasks); the
                                      std is the sample std over seeds (n − 1 in the denominator; None for 1 seed)
    extra_metrics                     the task's other headline numbers, means over seeds (`runs.headline`:
                                      macro-F1; qa's heldout exact match; json's compliance; style's adherence)
    forgetting_before/after/delta     next-token loss on the pretraining corpus's validation windows before and
                                      after fine-tuning, Δ = after − before (> 0: general modelling got worse);
                                      a real model: on the fixed general-English sample instead
    greedy_same                       a real model: the share of general questions answered word for word as the
                                      base answered them (None for a preset, whose forgetting is the loss alone)
    weights_bytes, adapter_bytes      what a run saves: the adapter file, or for full the whole model directory
    base_weight_bytes                 the model's weights in memory while it trains (qlora: 4-bit layers packed)
    mergeable                         can the update be folded into the base weights (zero extra latency)?
                                      None for full: its result already is a plain model
    wall_seconds                      one whole run: loading, training, evaluation, saving (mean over seeds)

The table and the plots are drawn by `minift.compare.report`; the `minift compare` command is in minift/cli/.

Re-running skips every cell whose results.json exists; a cell run with other settings (or, as its compare.json
records, under other finetune defaults: lr, epochs) is an error, not silently reused. force=True runs them all
again. An interrupted cell (no results.json yet) starts over.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from minift import errors
from minift.compare.report import markdown, save_plots
from minift.errors import ConfigError, MiniftError
from minift.files import PathLike, atomic_write_text, load_json, save_json, torch_load
from minift.finetune.config import DEFAULT_EPOCHS, FinetuneConfig
from minift.finetune.evaluation import headline
from minift.finetune.run import finetune
from minift.peft import METHODS
from minift.training.costs import own_peak_rss_mb, reset_peak_rss

DEFAULT_METHODS = ("full", *METHODS)  # full fine-tuning, then every registered PEFT method in registration order
FORMAT = "minift-compare-1"
OWN_ARGS = ("base", "task", "method", "seed", "method_options", "freeze_until")  # not overridable for all cells


def check_methods(methods) -> list[str]:
    """A comma-separated string or a list of names → a list; unknown, repeated or no names are a ConfigError."""
    names = [m.strip() for m in methods.split(",") if m.strip()] if isinstance(methods, str) else list(methods)
    known = ["full", *METHODS]
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    repeated = sorted({m for m in names if names.count(m) > 1})
    if repeated or not names:
        raise ConfigError(f"list each method once (repeated: {', '.join(repeated)})" if repeated
                          else "no methods given; e.g. full,lora")
    return names


def _seeds(seeds) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"seeds must be ≥ 1 (the number of seeds per method), got {seeds}")
        return list(range(seeds))
    values = list(seeds)
    if not values or len(set(values)) != len(values) or not all(isinstance(s, int) for s in values):
        raise ConfigError(f"seeds must be a count or a list of distinct integers, got {seeds!r}")
    return values


def _defaults(config: FinetuneConfig) -> dict:
    """finetune's defaults this config relies on; a cell remembers them (compare.json) to notice when they change."""
    return {"lr": config.resolved_lr, "default_epochs": DEFAULT_EPOCHS}


def _changed(cell: Path, config: FinetuneConfig) -> list[str]:
    """How a finished cell's settings differ from the ones planned now: its config, and the defaults it ran with."""
    old, new = FinetuneConfig.from_dict(load_json(cell / "results.json")["config"]).to_dict(), config.to_dict()
    diff = [f"{k}={old[k]!r} (now {new[k]!r})" for k in new if old[k] != new[k] and k != "threads"]  # speed only
    if not diff and (cell / "compare.json").is_file():
        was, now = load_json(cell / "compare.json").get("defaults", {}), _defaults(config)
        diff = [f"finetune's default {k}={was[k]!r} (now {now[k]!r})" for k in now if k in was and was[k] != now[k]]
    return diff


# -- running one cell ----------------------------------------------------------------------------------------------

def _run_cell(config: FinetuneConfig, out: Path, force: bool, isolate: bool) -> float | None:
    """One fine-tuning run; returns its peak RSS in MiB where Linux tells (see `own_peak_rss_mb`), else None.
    isolate: in a fresh Python process, so its memory is its own and nothing (memory, caches, random state) leaks
    from one method into the next."""
    if not isolate:
        reset = reset_peak_rss()
        finetune(config, out, force=force, progress=False)
        return own_peak_rss_mb() if reset else None
    code = "import sys; from minift.compare.run import _cell_main; sys.exit(_cell_main(sys.argv[1:]))"
    env = dict(os.environ)
    if config.threads is not None:  # the child starts with them (then finetune's use_threads has nothing to do)
        env["OMP_NUM_THREADS"] = str(config.threads)
    elif "OMP_NUM_THREADS" not in env:  # the child uses as many threads as this process
        import torch
        env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(config.to_dict()), str(out), str(int(force))],
                          env=env, capture_output=True, text=True)
    if proc.returncode == 0:
        return json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    where = f"{config.method} (seed {config.seed}, {out})"
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    name, _, message = last.partition(": ")
    cls = getattr(errors, name, None)
    if proc.returncode == 2 and isinstance(cls, type) and issubclass(cls, MiniftError):
        raise cls(f"{where}: {message}")
    raise RuntimeError(f"{where} crashed (exit status {proc.returncode}):\n{proc.stderr[-3000:]}")


def _cell_main(argv: list[str]) -> int:
    """Entry point of an isolated cell: argv = [config JSON, out_dir, force 0|1]; prints {"peak_rss_mb"}."""
    config_json, out, force = argv
    try:
        finetune(FinetuneConfig.from_dict(json.loads(config_json)), out, force=force == "1", progress=False)
    except MiniftError as e:
        print(f"{type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(json.dumps({"peak_rss_mb": own_peak_rss_mb()}))
    return 0


# -- the whole comparison ------------------------------------------------------------------------------------------

def compare(base: str, task: str | None, methods: Sequence[str] | str = DEFAULT_METHODS, seeds: int | Sequence[int] = 1,
            out_dir: PathLike = "compare", force: bool = False,
            progress: bool = True, isolate: bool = True, **overrides) -> list[dict]:
    """Fine-tune every method × seed (see the module docstring), then write results.json, table.md and the plots.
    seeds: a count N (seeds 0 … N−1) or a list. overrides: FinetuneConfig fields applied to every cell (max_steps,
    epochs, n_train, n_eval, batch_size, device, data instead of task, ...). Returns one row per method."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # the cells' own processes would inherit torchrun's variables
        raise ConfigError("compare runs every method in its own process and is not data-parallel; run it without "
                          "torchrun")
    methods, seed_list = check_methods(methods), _seeds(seeds)
    bad = sorted(set(overrides) & set(OWN_ARGS))
    if bad:
        raise ConfigError(f"{', '.join(bad)} cannot be overridden for every cell: compare sets them itself")
    unknown = sorted(set(overrides) - {f.name for f in fields(FinetuneConfig)})
    if unknown:
        raise ConfigError(f"unknown settings {unknown}; overrides are FinetuneConfig fields such as max_steps, "
                          "epochs, n_train, n_eval, batch_size, device")
    out = Path(out_dir)
    cells = [(m, s, FinetuneConfig(base=base, task=task, method=m, seed=s, **overrides), out / m / f"seed{s}")
             for m in methods for s in seed_list]  # every config is validated before anything runs
    for m, s, config, cell in cells:
        changed = [] if force or not (cell / "results.json").is_file() else _changed(cell, config)
        if changed:
            raise ConfigError(f"{cell} was run with other settings: {', '.join(changed)}; use another out dir, the "
                              "same settings, or force=True (--force) to run it again")
    todo = [c for c in cells if force or not (c[3] / "results.json").is_file()]
    with tqdm(total=len(cells), initial=len(cells) - len(todo), desc="compare", unit="run",
              disable=not progress) as bar:
        for m, s, config, cell in todo:
            bar.set_postfix_str(f"{m} seed {s}")
            peak = _run_cell(config, cell, force=force or (cell / "finetune.json").is_file(), isolate=isolate)
            # how its peak memory was measured, and the defaults it ran with
            save_json(cell / "compare.json", {"isolated": isolate, "peak_rss_mb": peak, "defaults": _defaults(config)})
            bar.update(1)
    return aggregate(out, base, methods, seed_list, overrides)


def aggregate(out: Path, base: str, methods: list[str], seeds: list[int], overrides: dict | None = None
              ) -> list[dict]:
    """The finished runs out/<method>/seed<k>/ → out/results.json, out/table.md and the plots; one row per method."""
    out = Path(out)
    cells = {m: [out / m / f"seed{s}" for s in seeds] for m in methods}
    records = {m: [load_json(c / "results.json") for c in cells[m]] for m in methods}
    rows = [summarize(m, records[m], cells[m]) for m in methods]
    first = records[methods[0]][0]
    meta = {"format": FORMAT, "base": base, "task": first["task"], "kind": first["kind"], "metric": rows[0]["metric"],
            "seeds": list(seeds), "overrides": overrides or {}, "device": first["device"],
            "isolated": [r["method"] for r in rows if r["isolated"]],
            "peak_reset": os.access("/proc/self/clear_refs", os.W_OK),
            "baselines": {k: b["accuracy"] for k, b in first.get("baselines", {}).items()}}
    save_json(out / "results.json", {**meta, "rows": rows})
    atomic_write_text(out / "table.md", markdown(rows, meta) + "\n")
    save_plots(rows, meta, out)
    return rows


def summarize(method: str, records: list[dict], cells: list[Path]) -> dict:
    """The runs of one method (one per seed) → one row: means over seeds, the metric's sample std."""
    first = records[0]
    heads = [headline(r["metrics"]) for r in records]
    name, *others = heads[0]  # test_accuracy or test_exact_match first; then e.g. heldout_exact_match
    values = [h[name] for h in heads]
    state = [torch_load(c / "last.pt")["state"] for c in cells]
    # the options that matter most for the method, and the ones the user set, with the values the run really used
    ran = first["method_config"] or {}
    key_options = METHODS[method].key_options if method in METHODS else ()
    shown = dict.fromkeys([*key_options, *first["config"]["method_options"]])
    mean = statistics.fmean
    return {
        "method": method, "seeds": [r["config"]["seed"] for r in records],
        "trainable_params": first["trainable_params"], "total_params": first["total_params"],
        "trainable_pct": first["trainable_pct"], "optimizer_state_bytes": first["optimizer_state_bytes"],
        "peak_memory_mb": max(_peak_mb(r, c) or 0.0 for r, c in zip(records, cells)) or None,
        "peak_memory_kind": first["peak_memory_kind"],
        "step_ms": mean(1000 * st["train_time"] / max(st["step"], 1) for st in state),
        "tokens_per_s": mean(r["tokens_per_s"] for r in records),
        "metric": name, "metric_values": values, "metric_mean": mean(values),
        "metric_std": statistics.stdev(values) if len(values) > 1 else None,
        "extra_metrics": {k: mean(h[k] for h in heads) for k in others},
        "forgetting_before": mean(r["forgetting"]["before_loss"] for r in records),
        "forgetting_after": mean(r["forgetting"]["after_loss"] for r in records),
        "forgetting_delta": mean(r["forgetting"]["delta_loss"] for r in records),
        "greedy_same": (mean(r["forgetting"]["greedy_same"] for r in records)
                        if all("greedy_same" in r["forgetting"] for r in records) else None),
        "weights_bytes": first["weights_bytes"], "adapter_bytes": first["adapter_bytes"],
        "base_weight_bytes": first.get("base_weight_bytes"),
        "mergeable": first["mergeable"], "lr": first["lr"], "steps": first["steps"],
        "options": {k: ran[k] for k in shown if k in ran},
        "method_config": first["method_config"],
        "wall_seconds": mean(r["wall_seconds"] for r in records),
        "runs": [str(Path(c.parent.name) / c.name) for c in cells],
        "isolated": all(_isolated(c) for c in cells),
    }


def _peak_mb(record: dict, cell: Path) -> float | None:
    """CUDA: finetune's peak allocated bytes. CPU: the run's own peak RSS as compare measured it (compare.json),
    else finetune's ru_maxrss."""
    marker = load_json(cell / "compare.json") if (cell / "compare.json").is_file() else {}
    if record["peak_memory_kind"] == "process_rss" and marker.get("peak_rss_mb"):
        return marker["peak_rss_mb"]
    return record["peak_memory_mb"]


def _isolated(cell: Path) -> bool:
    """Whether the run in `cell` had a process of its own (compare.json; False when compare did not run it)."""
    return (cell / "compare.json").is_file() and load_json(cell / "compare.json").get("isolated") is True
