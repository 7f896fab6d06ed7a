"""`minift compare` on the `quick` base: full vs LoRA, one seed, a few steps. Every column of results.json against an
independent number (closed-form parameter counts, the per-run results, the base's own pretraining loss), the table
and plots on disk, finished cells skipped on a re-run, --force re-running them, one-line errors."""

import json
import subprocess
import sys

import pytest

import minift.compare.run as cmp
from minift.cli.commands import cmd_compare
from minift.compare.report import PLOTS, markdown
from minift.cli import build_parser
from minift.base.pretrain import pretraining_val_loss
from minift.errors import ConfigError
from minift.finetune.config import FULL_FINETUNING_LR
from minift.peft import METHODS, LoRAConfig
from minift.files import torch_save_atomic

pytestmark = pytest.mark.xdist_group("compare")  # its module-scoped fixtures are built once under pytest -n

SMALL = ["--base", "quick", "--task", "sentiment", "--methods", "full,lora", "--max-steps", "4", "--n-train", "32",
         "--n-eval", "16", "--batch-size", "8", "--quiet"]
OVERRIDES = dict(max_steps=4, n_train=32, n_eval=16, batch_size=8)
COLUMNS = {"method", "seeds", "trainable_params", "total_params", "trainable_pct", "optimizer_state_bytes",
           "peak_memory_mb", "peak_memory_kind", "step_ms", "tokens_per_s", "metric", "metric_values", "metric_mean",
           "metric_std", "forgetting_before", "forgetting_after", "forgetting_delta", "weights_bytes",
           "adapter_bytes", "mergeable", "lr", "steps", "wall_seconds", "runs", "options", "method_config",
           "isolated", "extra_metrics"}


def parse(argv):
    parser = build_parser()
    return parser.parse_args(["compare", *argv])


@pytest.fixture(scope="module")
def first_run(quick_base, tmp_path_factory):
    """The command end to end through the subcommand's func (in one process: a fresh process per run costs
    seconds of imports; the isolated path is exercised by the --force re-run below)."""
    out = tmp_path_factory.mktemp("cmp") / "out"
    args = parse([*SMALL, "--out", str(out), "--in-process"])
    assert args.func is cmd_compare
    assert args.func(args) == 0
    return out, json.loads((out / "results.json").read_text())


def test_results_have_every_column(first_run, quick_base):
    out, res = first_run
    base, tok = quick_base
    rows = {r["method"]: r for r in res["rows"]}
    assert list(rows) == ["full", "lora"] and all(COLUMNS <= set(r) for r in rows.values())
    assert res["metric"] == "test_accuracy" and set(res["baselines"]) >= {"majority"} and res["isolated"] == []
    d, n_layer, r = base.config.d_model, base.config.n_layer, LoRAConfig.r
    head = 2 * d + 2  # the new 2-class head trains in every method
    full, lora = rows["full"], rows["lora"]
    assert full["trainable_params"] == full["total_params"] == base.num_parameters() + head
    assert lora["trainable_params"] == n_layer * 2 * r * (d + d) + head  # A (r×d) and B (d×r) on q and v
    assert lora["total_params"] == full["total_params"] + n_layer * 2 * r * 2 * d
    probe = pretraining_val_loss(base, tok, "quick")
    for row in rows.values():
        cell = json.loads((out / row["runs"][0] / "results.json").read_text())
        assert row["optimizer_state_bytes"] == 8 * row["trainable_params"]
        assert row["trainable_pct"] == pytest.approx(100 * row["trainable_params"] / row["total_params"])
        assert row["metric_values"] == [cell["metrics"]["test"]["accuracy"]] == [row["metric_mean"]]
        assert row["metric_std"] is None and row["seeds"] == [0] and row["steps"] == 4
        assert row["forgetting_before"] == pytest.approx(probe, rel=1e-6)  # the base itself, measured here
        assert row["forgetting_delta"] == pytest.approx(row["forgetting_after"] - row["forgetting_before"])
        assert 0 < row["step_ms"] * row["steps"] < 1000 * row["wall_seconds"]  # steps are part of the wall time
        assert row["peak_memory_mb"] > 0 and row["peak_memory_kind"] == "process_rss" and row["tokens_per_s"] > 0
    assert full["mergeable"] is None and full["adapter_bytes"] is None and lora["mergeable"] is True
    assert lora["adapter_bytes"] == (out / "lora/seed0/adapter.pt").stat().st_size < full["weights_bytes"]
    assert full["lr"] == FULL_FINETUNING_LR and lora["lr"] == LoRAConfig.default_lr


def test_table_and_plots(first_run):
    out, res = first_run
    table = (out / "table.md").read_text().splitlines()
    assert table[0].startswith("| method | trainable | % of model | optimizer state | weights in memory | peak memory "
                               "| step time")
    body = [line for line in table if line.startswith(("| full ", "| lora "))][:2]
    assert len(body) == 2 and all(line.count("|") == table[0].count("|") for line in body)
    assert f"{res['rows'][1]['trainable_params']:,}" in body[1] and "— (is the model)" in body[0]
    assert "| test accuracy | test macro f1 |" in table[0] and table[0].endswith("| mergeable | wall time |")
    full = res["rows"][0]
    assert f"| {full['metric_mean']:.3f} | {full['extra_metrics']['test_macro_f1']:.3f} |" in body[0]
    assert body[0].endswith(f"| {full['wall_seconds']:.0f} s |")
    # the settings each method ran with: its lr and its key options, from the method's own config
    assert f"| full | {FULL_FINETUNING_LR:g} | — | 4 |" in table
    assert f"| lora | {LoRAConfig.default_lr:g} | r={LoRAConfig.r}, alpha={LoRAConfig.alpha} | 4 |" in table
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_and_force_reruns(first_run, monkeypatch):
    out, res = first_run
    calls = []
    real = cmp._run_cell
    monkeypatch.setattr(cmp, "_run_cell", lambda *a, **k: calls.append(a[0].method) or real(*a, **k))
    stamps = {m: (out / m / "seed0/results.json").stat().st_mtime_ns for m in ("full", "lora")}
    rows = cmp.compare("quick", "sentiment", ["full", "lora"], 1, out, progress=False, **OVERRIDES)
    assert calls == [] and rows == res["rows"]
    assert stamps == {m: (out / m / "seed0/results.json").stat().st_mtime_ns for m in stamps}
    # other settings on finished cells: refused, not silently mixed in
    with pytest.raises(ConfigError, match="other settings: max_steps=4 \\(now 5\\)"):
        cmp.compare("quick", "sentiment", ["lora"], 1, out, progress=False, **{**OVERRIDES, "max_steps": 5})
    # finetune's defaults changed since the cells ran (as if someone edited LoRA's default lr): refused too
    monkeypatch.setattr(LoRAConfig, "default_lr", 0.123)
    with pytest.raises(ConfigError, match="default lr=.* \\(now 0.123\\)"):
        cmp.compare("quick", "sentiment", ["lora"], 1, out, progress=False, **OVERRIDES)
    monkeypatch.undo()
    monkeypatch.setattr(cmp, "_run_cell", lambda *a, **k: calls.append(a[0].method) or real(*a, **k))
    # force, each run in a fresh process: only the cells asked for run again, with the same scores (all seeded)
    again = cmp.compare("quick", "sentiment", ["lora"], 1, out, force=True, progress=False, isolate=True,
                        **OVERRIDES)
    assert calls == ["lora"] and json.loads((out / "results.json").read_text())["isolated"] == ["lora"]
    cmp.compare("quick", "sentiment", ["full", "lora"], 1, out, progress=False, **OVERRIDES)  # all skipped
    assert calls == ["lora"] and "full in one shared process" in (out / "table.md").read_text()
    assert stamps["lora"] != (out / "lora/seed0/results.json").stat().st_mtime_ns
    assert stamps["full"] == (out / "full/seed0/results.json").stat().st_mtime_ns
    before = res["rows"][1]
    assert again[0]["metric_values"] == before["metric_values"] and again[0]["steps"] == before["steps"]
    assert again[0]["forgetting_after"] == pytest.approx(before["forgetting_after"], rel=1e-5)
    assert again[0]["peak_memory_mb"] > 0


def test_bad_arguments_are_one_line_config_errors(tmp_path):
    for methods, what in [("full,lorra", "unknown method"), ("lora,lora", "once"), (",", "no methods")]:
        args = parse([*SMALL, "--methods", methods, "--out", str(tmp_path / "x")])
        with pytest.raises(ConfigError, match=what) as e:
            args.func(args)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="'lorra'.*choose from full, lora"):
        cmp.compare("quick", "sentiment", ["full", "lorra"], 1, tmp_path / "y")
    with pytest.raises(ConfigError, match="seeds"):
        cmp.compare("quick", "sentiment", ["lora"], 0, tmp_path / "y")
    with pytest.raises(ConfigError, match="method_options"):
        cmp.compare("quick", "sentiment", ["lora"], 1, tmp_path / "y", method_options={"r": 2})
    with pytest.raises(ConfigError, match="unknown settings \\['rank'\\]"):
        cmp.compare("quick", "sentiment", ["lora"], 1, tmp_path / "y", rank=2)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # nothing ran, nothing written
    assert cmp.check_methods(" full, lora ") == ["full", "lora"]


def test_summary_over_seeds(tmp_path):
    """Two seeds → means, the sample std (n − 1) and step time from last.pt, checked against numbers by hand."""
    records, cells = [], []
    for seed, acc, before, after, train_time in [(0, 0.5, 2.0, 2.5, 2.0), (1, 0.7, 2.0, 2.1, 3.0)]:
        cell = tmp_path / f"seed{seed}"
        cell.mkdir()
        torch_save_atomic({"state": {"train_time": train_time, "step": 4}}, cell / "last.pt")
        records.append({"kind": "labelled", "metrics": {"test": {"accuracy": acc, "macro_f1": acc}},
                        "config": {"seed": seed, "method_options": {"r": 2}},
                        "method_config": {"method": "lora", "r": 2, "alpha": 16, "dropout": 0.0},
                        "forgetting": {"before_loss": before, "after_loss": after, "delta_loss": after - before},
                        "trainable_params": 10, "total_params": 1000, "trainable_pct": 1.0,
                        "optimizer_state_bytes": 80, "peak_memory_mb": 100.0 + seed, "peak_memory_kind": "process_rss",
                        "tokens_per_s": 1000.0 * (seed + 1), "weights_bytes": 5, "adapter_bytes": 5, "mergeable": True,
                        "lr": 1e-3, "steps": 4, "wall_seconds": 10.0})
        cells.append(cell)
    row = cmp.summarize("lora", records, cells)
    assert row["metric"] == "test_accuracy" and row["metric_values"] == [0.5, 0.7]
    assert row["metric_mean"] == pytest.approx(0.6) and row["metric_std"] == pytest.approx(0.02 ** 0.5)
    assert row["forgetting_delta"] == pytest.approx(0.3) and row["forgetting_after"] == pytest.approx(2.3)
    assert row["step_ms"] == pytest.approx(1000 * (0.5 + 0.75) / 2) and row["tokens_per_s"] == pytest.approx(1500)
    assert row["peak_memory_mb"] == 101.0 and row["seeds"] == [0, 1]  # memory: the larger peak
    assert row["runs"] == [f"{tmp_path.name}/seed0", f"{tmp_path.name}/seed1"]
    assert row["options"] == {"r": 2, "alpha": 16}  # the options set (defaults and the run's own), as they ran
    assert row["extra_metrics"] == {"test_macro_f1": pytest.approx(0.6)}  # the other headline numbers, averaged
    table = markdown([row], {"metric": row["metric"], "seeds": [0, 1], "base": "b", "task": "t", "device": "cpu",
                                 "isolated": ["lora"], "peak_reset": True, "baselines": {}, "overrides": {}})
    assert "| 0.600 ± 0.141 | 0.600 |" in table and "| yes | 10 s |" in table


def test_summary_of_a_qa_run_shows_the_heldout_facts(tmp_path):
    """qa's headline has two numbers: the test exact match is the row's metric, the heldout one an extra column."""
    torch_save_atomic({"state": {"train_time": 1.0, "step": 2}}, tmp_path / "last.pt")
    record = {"kind": "instruction", "metrics": {"test": {"exact_match": 0.75}, "heldout": {"exact_match": 0.5}},
              "config": {"seed": 0, "method_options": {}}, "method_config": None,
              "forgetting": {"before_loss": 1.0, "after_loss": 1.5, "delta_loss": 0.5}, "trainable_params": 10,
              "total_params": 10, "trainable_pct": 100.0, "optimizer_state_bytes": 80, "peak_memory_mb": 1.0,
              "peak_memory_kind": "process_rss", "tokens_per_s": 1.0, "weights_bytes": 5, "adapter_bytes": None,
              "mergeable": None, "lr": 1e-3, "steps": 2, "wall_seconds": 150.0}
    row = cmp.summarize("full", [record], [tmp_path])
    assert row["metric"] == "test_exact_match" and row["extra_metrics"] == {"heldout_exact_match": 0.5}
    table = markdown([row], {"metric": row["metric"], "seeds": [0], "base": "b", "task": "qa", "device": "cpu",
                                 "isolated": ["full"], "peak_reset": True, "baselines": {}, "overrides": {}})
    assert "| test exact match | heldout exact match |" in table and "| 0.750 | 0.500 |" in table
    assert table.splitlines()[2].endswith("| 2.5 min |")


@pytest.mark.skipif(cmp.own_peak_rss_mb() is None or not cmp.reset_peak_rss(), reason="Linux only (VmHWM)")
def test_own_peak_rss_follows_allocations_and_resets():
    """After a reset the peak is the current RSS; it rises by what is allocated and touched; a reset after freeing
    brings it back down. In a fresh process: a process that already freed a large model (the real-model tests) can
    serve the new block from memory it still holds, and its peak would not move."""
    code = """
import numpy as np
from minift.training.costs import own_peak_rss_mb, reset_peak_rss
reset_peak_rss()
start = own_peak_rss_mb()
block = np.ones(64 * 2**20 // 8)  # 64 MiB, every page written
high = own_peak_rss_mb()
assert high >= start + 60, (start, high)
del block
assert own_peak_rss_mb() > high - 1  # a peak does not go down by itself (counters are kept lazily)
reset_peak_rss()
assert own_peak_rss_mb() < high - 50
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_method_is_documented():
    """The module docstring describes every default method, and the default list is every method there is."""
    described = {line.split()[0] for line in cmp.__doc__.splitlines() if line.startswith("    ") and line.split()}
    assert set(cmp.DEFAULT_METHODS) == {"full", *METHODS} <= described


def test_compare_refuses_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="without torchrun"):
        cmp.compare("quick", "sentiment", ["full"], out_dir=tmp_path / "c", **OVERRIDES)
