"""How a comparison is shown: the markdown table and the two plots (`minift.compare` computes the rows).

The table has one row per method and the columns described in compare.py's docstring, plus any further headline
numbers of the task (qa: exact match on the held-out facts; json: schema compliance) and the wall time of a run.
The plots: the task metric against trainable parameters (log scale), and forgetting (Δ pretraining loss) against the
task metric. Both are drawn on Agg figures, so they need no display and leave a notebook's pyplot state alone.
"""

from __future__ import annotations

from pathlib import Path

from minift.plots import figure, save

PLOTS = ("metric_vs_params.png", "forgetting_vs_metric.png")


def human_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _label(key: str) -> str:
    return key.replace("test_", "test ").replace("heldout_", "heldout ").replace("_", " ")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def markdown(rows: list[dict], meta: dict) -> str:
    """The comparison as a markdown table, with what it was measured on underneath."""
    extra = list(rows[0].get("extra_metrics", {}))  # e.g. qa's heldout exact match, json's compliance
    greedy = all(r.get("greedy_same") is not None for r in rows)  # a real model's second forgetting measure
    probe = "general-English loss" if greedy else "pretraining loss"  # a real model: minift/data/english.py
    head = ["method", "trainable", "% of model", "optimizer state", "weights in memory", "peak memory", "step time", "tokens/s",
            _label(meta["metric"]), *map(_label, extra), f"{probe} before → after (Δ)",
            *(["general answers unchanged"] if greedy else []), "saved weights", "mergeable", "wall time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        score = f"{r['metric_mean']:.3f}" + (f" ± {r['metric_std']:.3f}" if r["metric_std"] is not None else "")
        mem = "—" if r["peak_memory_mb"] is None else \
            f"{r['peak_memory_mb']:.0f} MB " + ("CUDA" if r["peak_memory_kind"] == "cuda_allocated" else "RSS")
        saved = human_bytes(r["weights_bytes"]) + (" (whole model)" if r["adapter_bytes"] is None else "")
        merge = {True: "yes", False: "no", None: "— (is the model)"}[r["mergeable"]]
        wall = _duration(r["wall_seconds"]) if r.get("wall_seconds") is not None else "—"
        cells = [r["method"], f"{r['trainable_params']:,}", f"{r['trainable_pct']:.3g}%",
                 human_bytes(r["optimizer_state_bytes"]),
                 human_bytes(r["base_weight_bytes"]) if r.get("base_weight_bytes") else "—", mem, f"{r['step_ms']:.0f} ms", f"{r['tokens_per_s']:,.0f}",
                 score, *(f"{r['extra_metrics'][k]:.3f}" for k in extra),
                 f"{r['forgetting_before']:.3f} → {r['forgetting_after']:.3f} ({r['forgetting_delta']:+.3f})",
                 *([f"{100 * r['greedy_same']:.0f} %"] if greedy else []), saved, merge, wall]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = meta["seeds"]
    lines += ["", f"Base `{meta['base']}`, task `{meta['task']}`, {len(seeds)} seed(s) {seeds}"
              + (" (mean ± sample std)" if len(seeds) > 1 else "") + f", device {meta['device']}; " + _memory_note(
                  rows, meta) + "; wall time: one whole run (loading, training, evaluation, saving), mean over seeds."]
    if meta["baselines"]:
        found = ", ".join(f"{k} {v:.3f}" for k, v in meta["baselines"].items())
        lines.append(f"Baselines on the same test set: {found}.")
    if meta["overrides"]:
        lines.append("Settings for every run: " + ", ".join(f"{k}={v}" for k, v in meta["overrides"].items()) + ".")
    lines += ["", "| method | lr | options | steps |", "|---|---|---|---|"]
    for r in rows:
        options = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "—"
        lines.append(f"| {r['method']} | {r['lr']:g} | {options} | {r['steps']} |")
    return "\n".join(lines)


def _memory_note(rows: list[dict], meta: dict) -> str:
    shared = [r["method"] for r in rows if r["method"] not in meta["isolated"]]
    if not shared:
        return "each run in its own process"
    how = "counted from what the process already held" if meta["peak_reset"] else "a running maximum"
    who = "all runs" if len(shared) == len(rows) else ", ".join(shared)
    return f"{who} in one shared process (peak RSS {how})"


def _points(ax, xs: list[float], ys: list[float], names: list[str], log_x: bool = False) -> None:
    """One coloured point per method with its name beside it. Each name takes the first spot (right of its point:
    above, below, further above, ...) where it does not overlap a name placed before it, measured in points on
    the page, so clustered methods stay readable; a moved name gets a thin line to its point."""
    for i, (x, y) in enumerate(zip(xs, ys)):
        ax.plot(x, y, "o", color=f"C{i % 10}")
    if log_x:
        ax.set_xscale("log")
    ax.autoscale_view()
    to_pt = 72 / ax.figure.dpi
    placed: list[tuple[float, float, float, float]] = []  # label boxes (x0, y0, x1, y1) in points
    for i, (x, y, name) in enumerate(zip(xs, ys, names)):
        px, py = (v * to_pt for v in ax.transData.transform((x, y)))
        for dy in (4, -13, 14, -23, 24, -33, 34, -43, 44):
            box = (px + 5, py + dy, px + 5 + 5 * len(name), py + dy + 9)  # 8-pt text: ~5 pt per character
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, dy), fontsize=8,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color=f"C{i % 10}") if dy != 4 else None)


def draw_metric_vs_params(ax, rows: list[dict], meta: dict) -> None:
    """Task metric against trainable parameters (log x), one labelled point per method (error bar: the std over
    seeds); baselines dashed."""
    xs, ys = [r["trainable_params"] for r in rows], [r["metric_mean"] for r in rows]
    for i, r in enumerate(rows):
        if r["metric_std"]:
            ax.errorbar(xs[i], ys[i], yerr=r["metric_std"], color=f"C{i % 10}", capsize=3)
    for name, value in meta["baselines"].items():
        ax.axhline(value, ls="--", lw=1, color="grey" if name == "majority" else "black", label=f"baseline: {name}")
    _points(ax, xs, ys, [r["method"] for r in rows], log_x=True)
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(meta["metric"].replace("_", " "))
    ax.set_title(f"{meta['task']} on {meta['base']}: score vs trainable parameters")
    ax.grid(alpha=0.3)
    if meta["baselines"]:
        ax.legend(fontsize=8, loc="best")


def draw_forgetting_vs_metric(ax, rows: list[dict], meta: dict) -> None:
    """Forgetting (Δ pretraining loss) against the task metric: the best corner is bottom right."""
    ax.axhline(0, color="grey", lw=1)
    _points(ax, [r["metric_mean"] for r in rows], [r["forgetting_delta"] for r in rows], [r["method"] for r in rows])
    ax.set_xlabel(meta["metric"].replace("_", " "))
    ax.set_ylabel("forgetting: Δ pretraining loss (nats/token)")
    ax.set_title("forgetting vs task score (better: bottom right)")
    ax.grid(alpha=0.3)


def save_plots(rows: list[dict], meta: dict, out: Path) -> None:
    """Both plots as PNGs (minift/plots.py: no display needed; a notebook's pyplot state is left alone)."""
    for name, draw in zip(PLOTS, (draw_metric_vs_params, draw_forgetting_vs_metric)):
        fig, (ax,) = figure(7, 4.5)
        draw(ax, rows, meta)
        save(fig, out / name)
