"""The command line: help for every subcommand, a real pretrain → generate round trip, and one-line errors with a
non-zero exit status (never a traceback)."""

import json
import os
import subprocess
import sys

import pytest

from minift.cli.parser import main


def run(*args, env_home):
    env = dict(os.environ, MINIFT_HOME=str(env_home), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "minift", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.parametrize("args", [["--help"], ["pretrain", "--help"], ["generate", "--help"]])
def test_help(args, tmp_path):
    r = run(*args, env_home=tmp_path)
    assert r.returncode == 0
    assert "usage: minift" in r.stdout


def assert_one_line_error(r, *needles):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[0].startswith("usage:"), r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


def test_pretrain_then_generate(tmp_path):
    out = tmp_path / "base"
    r = run("pretrain", "--out", str(out), "--preset", "quick", "--max-steps", "6", env_home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "best validation loss" in r.stdout
    for name in ("config.json", "model.pt", "tokenizer.json", "metrics.jsonl", "loss.png"):
        assert (out / name).is_file()
    r = run("generate", str(out), "--prompt", "The cat", "--max-new-tokens", "5", "--temperature", "0",
            env_home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The cat")
    # an existing run is not overwritten without --force
    r = run("pretrain", "--out", str(out), "--preset", "quick", "--max-steps", "2", env_home=tmp_path)
    assert_one_line_error(r, "--force")
    r = run("pretrain", "--out", str(out), "--preset", "quick", "--max-steps", "2", "--force", env_home=tmp_path)
    assert r.returncode == 0, r.stderr


def test_errors_are_one_line(tmp_path):
    assert_one_line_error(run("generate", str(tmp_path / "missing"), "--prompt", "hi", env_home=tmp_path),
                          "no model directory")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    (tmp_path / "junk" / "model.pt").write_text("x")
    (tmp_path / "junk" / "tokenizer.json").write_text("x")
    assert_one_line_error(run("generate", str(tmp_path / "junk"), "--prompt", "hi", env_home=tmp_path),
                          "not valid JSON")
    r = run("pretrain", "--out", str(tmp_path / "x"), "--max-steps", "0", env_home=tmp_path)
    assert r.returncode == 2 and "expected a number ≥ 1" in r.stderr
    r = run("pretrain", "--out", str(tmp_path / "x"), "--preset", "huge", env_home=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr


# -- fine-tuning commands ----------------------------------------------------------------------------------------

def test_finetune_eval_merge_generate_round_trip(tmp_path, minift_home, quick_base):
    """User data exported from a built-in task → LoRA run → eval → merge → generate; the merged model and the run
    directory (base + adapter) give the same greedy answer."""
    data = tmp_path / "qa.jsonl"
    r = run("data", "export", "qa", "--out", str(data), "--split", "train", env_home=minift_home)
    assert r.returncode == 0, r.stderr
    assert len(data.read_text().splitlines()) == 341 and "wrote 341 examples" in r.stdout
    out = tmp_path / "run"
    args = ["finetune", "--base", "quick", "--data", str(data), "--method", "lora", "--rank", "4",
            "--targets", "attn.q,attn.v,mlp.fc", "--max-steps", "4", "--n-eval", "4", "--out", str(out), "--quiet"]
    r = run(*args, env_home=minift_home)
    assert r.returncode == 0, r.stderr
    assert "| lora | qa.jsonl |" in r.stdout and "test_exact_match" in r.stdout
    for name in ("results.json", "finetune.json", "adapter.pt", "metrics.jsonl", "loss.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["method_config"]["targets"] == ["attn.q", "attn.v", "mlp.fc"] and results["method_config"]["r"] == 4
    assert json.loads((out / "finetune.json").read_text())["template"] == "plain"  # auto, with a 64-token context
    assert_one_line_error(run(*args, env_home=minift_home), "--force")

    r = run("eval", str(out), env_home=minift_home)
    assert r.returncode == 0, r.stderr
    assert f"| test | exact_match | {results['metrics']['test']['exact_match']:.4g} |" in r.stdout
    r = run("eval", str(out), "--task", "qa", "--n-eval", "3", env_home=minift_home)
    assert r.returncode == 0 and "| heldout | n | 3 |" in r.stdout, r.stderr

    merged = tmp_path / "merged"
    r = run("merge", str(out), "--out", str(merged), env_home=minift_home)
    assert r.returncode == 0, r.stderr
    assert (merged / "model.pt").is_file() and json.loads((merged / "config.json").read_text())["template"] == "plain"
    ask = ["--prompt", "What is the capital of France?", "--temperature", "0", "--max-new-tokens", "6"]
    from_run = run("generate", str(out), *ask, env_home=minift_home)
    from_merged = run("generate", str(merged), *ask, env_home=minift_home)
    assert from_run.returncode == 0 and from_merged.returncode == 0, from_run.stderr + from_merged.stderr
    assert from_run.stdout == from_merged.stdout
    assert "### Response" not in from_run.stdout  # the template is applied, only the answer is printed


@pytest.mark.parametrize("command", ["finetune", "eval", "merge", "data export", "compare"])
def test_help_in_process(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command.split(), "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: minift " + command)
    if command == "finetune":  # defaults are shown
        assert "(default: tiny)" in text and "(default: 16)" in text


def main_error(capsys, *args):
    """Run the CLI in this process (the same `main` the console script runs) and return its one-line error."""
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and (len(lines) == 1 or lines[0].startswith("usage:")), err
    return err


def test_finetune_option_errors_are_one_line(tmp_path, capsys, quick_base):
    base = ["finetune", "--base", "quick", "--task", "qa", "--out", str(tmp_path / "x"), "--max-steps", "2"]
    err = main_error(capsys, *base, "--method", "ia3", "--alpha", "4")
    assert "--alpha does not apply to method 'ia3'" in err and "--targets" in err
    assert "--freeze-until" in main_error(capsys, *base, "--rank", "4")
    assert "full fine-tuning only" in main_error(capsys, *base, "--method", "lora", "--freeze-until", "1")
    assert "position spec" in main_error(capsys, *base, "--method", "loreft", "--positions", "q3")
    assert "match no Linear" in main_error(capsys, *base, "--method", "lora", "--targets", "attn.nope")
    assert "not allowed with" in main_error(capsys, *base, "--epochs", "1")
    assert "not a fine-tuning run directory" in main_error(capsys, "eval", str(tmp_path))
    assert "splits" in main_error(capsys, "data", "export", "qa", "--split", "dev", "--out", str(tmp_path / "d.jsonl"))


def test_merge_refuses_what_cannot_be_merged(tmp_path, capsys, quick_base):
    from minift.finetune.config import FinetuneConfig
    from minift.finetune.run import finetune

    for method in ("prefix", "full"):
        finetune(FinetuneConfig(base="quick", task="sentiment", method=method, max_steps=1, n_train=8, n_eval=2),
                 tmp_path / method, progress=False)
    assert "too few to learn" in capsys.readouterr().err  # one step: the run says so
    assert "key/value" in main_error(capsys, "merge", str(tmp_path / "prefix"), "--out", str(tmp_path / "m"))
    assert "no adapter to merge" in main_error(capsys, "merge", str(tmp_path / "full"), "--out", str(tmp_path / "m"))
    assert main(["generate", str(tmp_path / "prefix"), "--prompt", "The pizza was great."]) == 0
    assert capsys.readouterr().out.split()[-1] in ("negative", "positive")  # a classification run classifies


@pytest.mark.parametrize("method", ["loreft", "prompt"])
def test_generate_from_runs_that_need_the_whole_context(method, tmp_path, capsys, quick_base):
    """The alpaca prompt is longer than the quick base's 64-token context: ReFT's pinned prompt positions and
    prompt tuning's P virtual tokens need the prompt cut to fit with the new tokens, not a sliding window."""
    from minift.finetune.config import FinetuneConfig
    from minift.finetune.run import finetune

    finetune(FinetuneConfig(base="quick", task="qa", method=method, max_steps=1, n_train=8, n_eval=2),
             tmp_path / "run", progress=False)
    capsys.readouterr()  # the short run's warning
    assert main(["generate", str(tmp_path / "run"), "--prompt", "What do cats eat?", "--max-new-tokens", "8"]) == 0
    assert "no room for the prompt" in main_error(capsys, "generate", str(tmp_path / "run"), "--prompt", "Hi",
                                                  "--max-new-tokens", "64")


def test_data_show_brackets_what_the_loss_sees(capsys, quick_base):
    assert main(["data", "show", "--task", "qa", "--base", "quick", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("qa / train:") and "template plain" in out
    blocks = out.split("\n--- ")[1:]
    assert len(blocks) == 2
    for block in blocks:
        head, text = block.split("\n", 1)
        assert text.count("⟦") == 1 and text.rstrip().endswith("⟧")  # one answer, trained to its end (EOS)
        assert text.index("⟦") > 0  # the prompt is not trained
    assert main(["data", "show", "--task", "sentiment", "--base", "quick", "-n", "1"]) == 0
    assert "no token is a target" in capsys.readouterr().out


def test_eval_prompts_a_base(capsys, quick_base):
    assert main(["eval", "--base", "quick", "--task", "qa", "--n-eval", "3", "--shots", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("quick prompted 1-shot on qa:") and "| test | exact_match |" in out
    for argv, needle in ((["eval"], "give a run directory"), (["eval", "--base", "quick"], "--task NAME or --data"),
                         (["eval", "somewhere", "--shots", "2"], "go with --base")):
        assert main(argv) == 2 and needle in capsys.readouterr().err


def test_export_writes_a_gpt_as_gpt2(tmp_path, capsys, quick_base):
    assert main(["export", "quick", "--out", str(tmp_path / "gpt2")]) == 0
    config = json.loads((tmp_path / "gpt2" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_embd"] == quick_base[0].config.d_model
    assert "transformers" in capsys.readouterr().out


def test_a_qlora_run_merges_only_where_the_user_says(tmp_path, capsys, quick_base):
    from minift.finetune.config import FinetuneConfig
    from minift.finetune.run import finetune

    r = finetune(FinetuneConfig(base="quick", task="sentiment", method="qlora", max_steps=2, n_train=8, n_eval=2,
                                method_options={"quant_type": "fp4"}), tmp_path / "q", progress=False)
    assert r["base_weight_bytes"] < 0.6 * sum(4 * p.numel() for p in quick_base[0].parameters())
    # forgetting is measured from the base as given, not from its 4-bit copy
    from minift.finetune.forgetting import lm_val_loss, pretraining_batches
    gpt, tok = quick_base
    assert r["forgetting"]["before_loss"] == pytest.approx(lm_val_loss(gpt, pretraining_batches(tok, "quick")),
                                                           abs=1e-6)
    capsys.readouterr()
    assert "--into dequantized|original|requantized" in main_error(capsys, "merge", str(tmp_path / "q"), "--out",
                                                                   str(tmp_path / "m"))
    assert main(["merge", str(tmp_path / "q"), "--out", str(tmp_path / "m"), "--into", "original"]) == 0
    assert main(["generate", str(tmp_path / "m"), "--prompt", "The pizza was great."]) == 0
    assert capsys.readouterr().out.split()[-1] in ("negative", "positive")
