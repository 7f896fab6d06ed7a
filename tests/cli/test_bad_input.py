"""Every kind of bad input a user can give the command line, in one table: each must end with exit status 2, one
line on stderr that says what is wrong, and no traceback. Most cases fail before any model is loaded (that is part
of the contract: check the cheap things first); the rest use the session's cached `quick` base.

The table keeps the cases that already worked too, so they stay working.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from minift.cli import main

READ_ONLY = "/sys/minift-test-output"  # even root cannot create files in sysfs


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


class Hostile:
    """A pickle that runs code when loaded: minift must never load it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def make_case(name: str, tmp: Path, quick_base) -> list[str]:
    """The argv of case `name`, after creating whatever files it needs under tmp."""
    model, tok = quick_base
    if name == "hostile checkpoint" or name == "corrupt checkpoint":
        from minift.base.store import save_model_dir

        d = save_model_dir(tmp / "m", model, tok)
        if name == "corrupt checkpoint":
            (d / "model.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
        else:
            (d / "model.pt").write_bytes(pickle.dumps(Hostile(tmp / "pwned")))
        return ["generate", str(d), "--prompt", "hi"]
    rows = "\n".join(json.dumps({"instruction": f"q{i}", "output": ""}) for i in range(20))
    cases = {
        "lr inf": ["finetune", "--task", "qa", "--out", str(tmp / "o"), "--lr", "inf"],
        "lr negative": ["finetune", "--task", "qa", "--out", str(tmp / "o"), "--lr", "-1e-3"],
        "lr zero": ["finetune", "--task", "qa", "--out", str(tmp / "o"), "--lr", "0"],
        "temperature nan": ["generate", "quick", "--prompt", "x", "--temperature", "nan"],
        "opt not a number": ["finetune", "--task", "qa", "--method", "lora", "--opt", "dropout=abc", "--out",
                             str(tmp / "o")],
        "opt not key=value": ["finetune", "--task", "qa", "--method", "lora", "--opt", "dropout", "--out",
                              str(tmp / "o")],
        "opt unknown": ["finetune", "--task", "qa", "--method", "lora", "--opt", "rnk=4", "--out", str(tmp / "o")],
        "rank too large": ["finetune", "--task", "qa", "--base", "quick", "--method", "lora", "--rank", "1000",
                           "--out", str(tmp / "o")],
        "flag of another method": ["finetune", "--task", "qa", "--method", "lora", "--positions", "f3",
                                   "--out", str(tmp / "o")],
        "unknown method": ["finetune", "--task", "qa", "--method", "lorra", "--out", str(tmp / "o")],
        "unknown task": ["finetune", "--task", "poetry", "--out", str(tmp / "o")],
        "unknown template": ["finetune", "--task", "qa", "--template", "vicuna", "--out", str(tmp / "o")],
        "epochs and max steps": ["finetune", "--task", "qa", "--epochs", "1", "--max-steps", "3", "--out",
                                 str(tmp / "o")],
        "n_train 1": ["finetune", "--task", "qa", "--n-train", "1", "--out", str(tmp / "o")],
        "freeze_until with lora": ["finetune", "--task", "qa", "--method", "lora", "--freeze-until", "1",
                                   "--out", str(tmp / "o")],
        "missing data file": ["finetune", "--data", str(tmp / "nope.jsonl"), "--out", str(tmp / "o")],
        "malformed data line": ["finetune", "--data", write(tmp / "bad.jsonl", '{"instruction": "a", "output": "b"}\n'
                                                            '{"instruction": "a", "output": \n'), "--out",
                                str(tmp / "o")],
        "empty outputs": ["finetune", "--data", write(tmp / "empty.jsonl", rows), "--out", str(tmp / "o")],
        "too few examples": ["finetune", "--data", write(tmp / "few.jsonl", '{"text": "a", "label": "x"}\n'
                                                                  '{"text": "b", "label": "y"}\n'),
                             "--out", str(tmp / "o")],
        "out is a file": ["finetune", "--task", "qa", "--out", write(tmp / "f.txt", "mine")],
        "out read-only (finetune)": ["finetune", "--task", "qa", "--base", "quick", "--out", READ_ONLY],
        "out read-only (pretrain)": ["pretrain", "--preset", "quick", "--out", READ_ONLY],
        "out read-only (data export)": ["data", "export", "qa", "--out", READ_ONLY + "/qa.jsonl"],
        "export exists": ["data", "export", "qa", "--out", write(tmp / "qa.jsonl", "mine")],
        "export unknown task": ["data", "export", "poetry", "--out", str(tmp / "x.jsonl")],
        "export unknown split": ["data", "export", "sentiment", "--split", "heldout", "--out", str(tmp / "x.jsonl")],
        "unknown base": ["finetune", "--task", "qa", "--base", str(tmp / "nobase"), "--out", str(tmp / "o")],
        "pretrain cache with max-steps": ["pretrain", "--preset", "quick", "--max-steps", "3"],
        "generate a file": ["generate", write(tmp / "notes.txt", "mine"), "--prompt", "x"],
        "generate missing dir": ["generate", str(tmp / "nothing"), "--prompt", "x"],
        "generate too many tokens": ["generate", "quick", "--prompt", "x", "--max-new-tokens", "100000"],
        "generate empty prompt": ["generate", "quick", "--prompt", ""],
        "eval not a run": ["eval", str(tmp)],
        "merge not a run": ["merge", str(tmp), "--out", str(tmp / "merged")],
        "compare unknown method": ["compare", "--task", "qa", "--methods", "full,lorra", "--out", str(tmp / "c")],
        "compare no methods": ["compare", "--task", "qa", "--methods", ",", "--out", str(tmp / "c")],
        "no subcommand option": ["finetune", "--task", "qa"],
        "show on an unbuilt base": ["data", "show", "--task", "qa", "--base", "tiny"],
        "show a conversation with a plain model": [
            "data", "show", "--base", "quick", "--data",
            write(tmp / "talk.jsonl", "\n".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                                          {"role": "assistant", "content": "a"}]})
                                               for i in range(6)))],
        "conversation with a plain model": ["finetune", "--base", "quick", "--data", str(tmp / "talk.jsonl"),
                                            "--out", str(tmp / "o")],
        "bad conversation": ["finetune", "--out", str(tmp / "o"), "--data", write(
            tmp / "talk2.jsonl", json.dumps({"messages": [{"role": "user", "content": "q"}]}))],
        "continual ewc on lora-merge": ["continual", "--method", "lora-merge", "--mitigation", "ewc", "--out",
                                        str(tmp / "o")],
        "continual unknown mitigation": ["continual", "--mitigation", "replay+dropout", "--out", str(tmp / "o")],
        "export too many facts": ["data", "export", "updates", "--facts", "13", "--out", str(tmp / "o")],
        "rag compare too many facts": ["rag", "compare", "--facts", "13", "--out", str(tmp / "o")],
        "align resume other settings": ["align", "--task", "polite", "--base", "quick", "--beta", "0.5", "--resume",
                                        "--out", str(tmp / "run")],
    }
    if name == "align resume other settings":  # a run started with β = 0.1 (the default)
        (tmp / "run").mkdir()
        write(tmp / "run" / "align.json", json.dumps({"format": "minift-align", "config": {"beta": None}}))
    if name == "conversation with a plain model":
        make_case("show a conversation with a plain model", tmp, quick_base)  # writes talk.jsonl
    if name == "eval unfinished run":
        (tmp / "run").mkdir()
        write(tmp / "run" / "finetune.json", json.dumps({"format": "minift-finetune-1"}))
        return ["eval", str(tmp / "run")]
    return cases[name]


CASES = {  # case → words the one line must contain
    "lr inf": "finite", "lr negative": "> 0", "lr zero": "> 0", "temperature nan": "finite",
    "opt not a number": "dropout must be float", "opt not key=value": "KEY=VALUE", "opt unknown": "unknown",
    "rank too large": "r=1000 is larger", "flag of another method": "does not apply",
    "unknown method": "unknown method", "unknown task": "invalid choice", "unknown template": "invalid choice",
    "epochs and max steps": "not allowed with", "n_train 1": "n_train", "freeze_until with lora": "full fine-tuning",
    "missing data file": "nope.jsonl", "malformed data line": "bad.jsonl:2", "empty outputs": "'output' is empty",
    "too few examples": "too few", "out is a file": "not a directory",
    "out read-only (finetune)": "read-only", "out read-only (pretrain)": "read-only",
    "out read-only (data export)": "read-only", "export exists": "--force", "export unknown task": "invalid choice",
    "export unknown split": "splits", "unknown base": "neither a preset",
    "pretrain cache with max-steps": "--out DIR", "generate a file": "is a file",
    "generate missing dir": "no model directory", "generate too many tokens": "whole context",
    "generate empty prompt": "empty", "eval not a run": "not a fine-tuning run", "eval unfinished run": "did not finish",
    "merge not a run": "not a fine-tuning run", "compare unknown method": "unknown method",
    "compare no methods": "no methods", "no subcommand option": "required",
    "corrupt checkpoint": "corrupt", "hostile checkpoint": "not written by minift",
    "show on an unbuilt base": "minift pretrain --preset tiny",
    "show a conversation with a plain model": "need a chat model",
    "conversation with a plain model": "need a chat model",
    "bad conversation": "talk2.jsonl:1: the last message must be the assistant's",
    "continual ewc on lora-merge": "lora-merge", "continual unknown mitigation": "replay+dropout",
    "export too many facts": "1 to 12", "rag compare too many facts": "1 to 12",
    "align resume other settings": "cannot resume",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_clear_line(name, tmp_path, quick_base, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = make_case(name, tmp_path, quick_base)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"{name}: exit status {code}, stderr:\n{err}"
    assert len(lines) == 1, f"{name}: expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err and "weights_only" not in err
    assert CASES[name] in lines[0], f"{name}: {lines[0]!r} does not mention {CASES[name]!r}"
    assert not (tmp_path / "pwned").exists(), "a checkpoint ran code while loading"
    if name.startswith("out read-only") or name in ("rank too large", "empty outputs", "bad conversation"):
        assert not (tmp_path / "o").exists()  # refused before anything was written
