"""An alignment run end to end on the small `quick` base: files, the step-0 loss, every way to start, the CLI."""

import json
import math

import pytest

from minift.align.config import AlignConfig
from minift.align.run import align
from minift.cli import main
from minift.errors import ConfigError

LN2 = math.log(2)
FAST = dict(base="quick", task="polite", n_train=16, n_eval=4, max_steps=3, batch_size=4, max_new_tokens=8)


def first_loss(out):
    return json.loads((out / "preference.jsonl").read_text().splitlines()[0])["loss"]


@pytest.mark.parametrize("method", ["dpo", "ipo", "orpo", "kto"])
def test_a_run_writes_its_record_and_starts_where_the_theory_says(method, tmp_path, quick_base):
    r = align(AlignConfig(method=method, **FAST), tmp_path / "run", progress=False)
    for name in ("results.json", "preference.jsonl", "metrics.jsonl", "adapter.pt", "align.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert r["steps"] == 3 and r["n_test"] == 4 and "win_rate" in r and math.isfinite(r["kl_policy_answers"])
    if method == "dpo":  # a new adapter starts as the reference: h = 0, loss ln 2 (dropout off)
        assert first_loss(tmp_path / "run") == pytest.approx(LN2, abs=1e-6)
    if method == "ipo":  # (0 − 1/(2β))² at h = 0
        assert first_loss(tmp_path / "run") == pytest.approx((1 / (2 * 0.1)) ** 2, rel=1e-5)
    if method == "kto":  # 1 − σ(0) = ½ per example when r = z₀ = 0
        assert first_loss(tmp_path / "run") == pytest.approx(0.5, abs=1e-6)


def test_full_update_sft_first_and_precomputed_reference(tmp_path, quick_base):
    a = align(AlignConfig(update="full", sft_epochs=0.5, **FAST), tmp_path / "a", progress=False)
    assert a["sft"]["steps"] >= 1 and (tmp_path / "a" / "model").is_dir()
    assert first_loss(tmp_path / "a") == pytest.approx(LN2, abs=1e-6)  # the reference is the SFT model
    b = align(AlignConfig(precompute_ref=True, **FAST), tmp_path / "b", progress=False)
    c = align(AlignConfig(**FAST), tmp_path / "c", progress=False)
    assert first_loss(tmp_path / "b") == pytest.approx(first_loss(tmp_path / "c"), abs=1e-6)
    assert b["pair_accuracy"] == pytest.approx(c["pair_accuracy"])


def test_aligning_from_a_lora_sft_run_merges_it_first(tmp_path, quick_base):
    from minift.finetune.config import FinetuneConfig
    from minift.finetune.run import finetune

    finetune(FinetuneConfig(base="quick", task="qa", method="lora", max_steps=2, n_train=8, n_eval=2),
             tmp_path / "sft", progress=False)
    align(AlignConfig(from_run=str(tmp_path / "sft"), **FAST), tmp_path / "run", progress=False)
    assert first_loss(tmp_path / "run") == pytest.approx(LN2, abs=1e-6)


def test_bad_configurations_are_refused():
    with pytest.raises(ConfigError, match="exactly one of task"):
        AlignConfig()
    with pytest.raises(ConfigError, match="unknown alignment method"):
        AlignConfig(task="polite", method="ppo")
    with pytest.raises(ConfigError, match="unknown preference set"):
        AlignConfig(task="rude")
    with pytest.raises(ConfigError, match="dpo has no option 'sft'; its options are beta"):
        AlignConfig(task="polite", method="dpo", options={"sft": 1.0})
    with pytest.raises(ConfigError, match="grpo has no option 'eps'"):
        AlignConfig(task="json", method="grpo", options={"eps": 0.1})


def test_the_option_names_are_the_objectives_fields():
    import dataclasses

    from minift.align.config import PREFERENCE_OPTIONS, RL_OPTIONS
    from minift.align.objective import PreferenceConfig
    from minift.align.rl import RLConfig

    fields = lambda cls: {f.name for f in dataclasses.fields(cls)} - {"method", "metrics", "max_new_tokens"}  # noqa: E731
    assert set(PREFERENCE_OPTIONS) == fields(PreferenceConfig)
    assert set(RL_OPTIONS) == fields(RLConfig)


def test_the_command_line(tmp_path, capsys, quick_base):
    data = tmp_path / "prefs.jsonl"
    assert main(["data", "export", "facts", "--out", str(data), "--split", "val"]) == 0
    capsys.readouterr()
    assert main(["align", "--base", "quick", "--data", str(data), "--method", "simpo", "--max-steps", "2",
                 "--batch-size", "4", "--n-eval", "2", "--max-new-tokens", "4", "--out", str(tmp_path / "run"),
                 "--quiet", "--opt", "gamma=0.5"]) == 0
    out = capsys.readouterr().out
    assert "simpo: 2 steps" in out and "held-out pairs ranked right" in out
    assert json.loads((tmp_path / "run" / "results.json").read_text())["objective"]["gamma"] == 0.5
    data.write_text('{"prompt": "a", "chosen": "b"}\n', encoding="utf-8")
    assert main(["align", "--base", "quick", "--data", str(data), "--out", str(tmp_path / "bad")]) != 0
    assert "prefs.jsonl:1: missing field 'rejected'" in capsys.readouterr().err


def test_reward_model_train_score_and_judge(tmp_path, capsys, quick_base):
    assert main(["reward", "train", "--base", "quick", "--task", "polite", "--max-steps", "3", "--n-train", "16",
                 "--out", str(tmp_path / "rm"), "--quiet"]) == 0
    assert "held-out pairs ranked right" in capsys.readouterr().out
    r = json.loads((tmp_path / "rm" / "results.json").read_text())
    assert set(r["test"]) == {"accuracy", "margin", "n"} and r["test"]["n"] == 100
    assert main(["reward", "score", str(tmp_path / "rm"), "--prompt", "How much is the kite?",
                 "--answer", "It is 10 dollars.", "--answer", "Read the sign yourself."]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    a = align(AlignConfig(reward_model=str(tmp_path / "rm"), **FAST), tmp_path / "run", progress=False)
    assert 0.0 <= a["rm_win_rate"] <= 1.0 and "rm_reward_policy" in a
    assert "not a reward-model run" in main_error(capsys, "reward", "score", str(tmp_path), "--prompt", "a",
                                                  "--answer", "b")


def main_error(capsys, *argv):
    assert main(list(argv)) != 0
    return capsys.readouterr().err


def test_the_reward_sanity_check_catches_a_buggy_reward():
    from minift.align.judges import judge_polite
    from minift.align.rl import sanity_check
    from minift.data.preferences import load_preferences

    pairs = load_preferences("polite", "val")
    assert sanity_check(judge_polite, pairs)["ordered_share"] >= 0.9
    with pytest.raises(ConfigError, match="does not prefer known-good"):
        sanity_check(lambda pair, answer: 1.0, pairs)  # pays for anything: the classic parse-failure bug
    with pytest.raises(ConfigError, match="does not prefer known-good"):
        sanity_check(lambda pair, answer: float("dollars" in answer), pairs)  # a format reward: rude answers
        # that state the price score as well as polite ones


@pytest.mark.parametrize("method,group", [("grpo", 2), ("rloo", 3)])
def test_an_rl_run(method, group, tmp_path, quick_base):
    r = align(AlignConfig(method=method, options={"group": group, "aggregation": "dapo"},
                          **{**FAST, "batch_size": 2}), tmp_path / "run", progress=False)
    steps = [json.loads(line) for line in (tmp_path / "run" / "preference.jsonl").read_text().splitlines()]
    assert len(steps) == 3 and set(steps[0]) >= {"reward", "kl", "clip_fraction", "zero_spread", "length"}
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # a new adapter starts at the reference
    assert r["sanity"]["good_mean"] > r["sanity"]["bad_mean"] and "win_rate" in r
    with pytest.raises(ConfigError, match="rule"):
        AlignConfig(method="grpo", data="x.jsonl")


def test_compare_runs_alignment_methods_side_by_side(tmp_path, capsys, quick_base):
    argv = ["compare", "--task", "polite", "--base", "quick", "--methods", "dpo,orpo", "--max-steps", "2",
            "--n-train", "16", "--n-eval", "4", "--batch-size", "4", "--out", str(tmp_path / "cmp"), "--quiet"]
    assert main(argv) == 0
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert table.startswith("| method | pairs ranked right | chosen / rejected reward | judged good: start → aligned")
    assert "| dpo |" in table and "| orpo |" in table
    runs = json.loads((tmp_path / "cmp" / "results.json").read_text())["runs"]
    assert set(runs) == {"dpo", "orpo"}
    mtime = (tmp_path / "cmp" / "dpo" / "results.json").stat().st_mtime
    assert main(argv) == 0  # finished methods are reused, not run again
    assert (tmp_path / "cmp" / "dpo" / "results.json").stat().st_mtime == mtime
    assert "alignment methods must be" in main_error(capsys, *argv[:6], "dpo,lora", *argv[7:])


def test_the_per_step_log_holds_the_training_steps_only(tmp_path, quick_base):
    """Validation passes call the same loss function; their numbers must not enter preference.jsonl."""
    align(AlignConfig(method="dpo", **{**FAST, "max_steps": 5}), tmp_path / "run", progress=False)
    steps = [json.loads(line) for line in (tmp_path / "run" / "preference.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5] and "training" not in steps[0]
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {m["step"]: m["train_loss"] for m in metrics if "train_loss" in m}
    for s in steps:
        if s["step"] in logged:  # the loop's own record of the same step
            assert s["loss"] == pytest.approx(logged[s["step"]], rel=1e-5)


def test_grpo_on_strict_json(tmp_path, quick_base):
    """The json task has no pairs, only a checkable answer: a graded rule (½ compliant, 1 right) rewards GRPO."""
    from minift.align.judges import judge_json
    from minift.data.preferences import json_records

    rec = json_records("val")[0]
    assert (judge_json(rec, rec["chosen"]), judge_json(rec, rec["rejected"]), judge_json(rec, "{nope")) == (1, .5, 0)
    r = align(AlignConfig(method="grpo", options={"group": 2}, **{**FAST, "task": "json", "batch_size": 2}),
              tmp_path / "run", progress=False)
    assert r["sanity"] == {"good_mean": 1.0, "bad_mean": 0.5, "ordered_share": 1.0} and "judge_policy" in r
    with pytest.raises(ConfigError, match="grpo or rloo"):
        AlignConfig(task="json", method="dpo")


def test_an_interrupted_run_resumes_exactly(tmp_path, quick_base, monkeypatch):
    """Crash in step 6 of 10 (last.pt is from step 4): the resumed run ends with the same adapter, bit for bit, as
    a run never interrupted, and its preference.jsonl carries steps 5 … 10."""
    import torch

    from minift.align import run as run_mod

    cfg = AlignConfig(**{**FAST, "max_steps": 10, "n_train": 40})
    align(cfg, tmp_path / "whole", progress=False)
    real = run_mod.epoch_batches

    def crashing(*args, **kwargs):
        batches = real(*args, **kwargs)

        def batch(i):
            if i >= 5:
                raise RuntimeError("simulated crash")
            return batches(i)
        return batch

    monkeypatch.setattr(run_mod, "epoch_batches", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        align(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(run_mod, "epoch_batches", real)
    with pytest.raises(Exception, match="--force"):
        align(cfg, tmp_path / "cut", progress=False)  # neither --force nor --resume: refused
    with pytest.raises(ConfigError, match="beta"):
        align(AlignConfig(**{**FAST, "max_steps": 10, "n_train": 40, "options": {"beta": 0.5}}), tmp_path / "cut",
              progress=False, resume=True)
    r = align(cfg, tmp_path / "cut", progress=False, resume=True)
    assert r["steps"] == 10
    a, b = (torch.load(tmp_path / d / "adapter.pt", weights_only=True)["state"] for d in ("whole", "cut"))
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (tmp_path / "cut" / "preference.jsonl").read_text().splitlines()]
    assert steps == list(range(5, 11))
