"""What a fine-tuning run must never do to a user, and what it must remember: --force keeps the user's files, a
merge never writes into a run, runs remember their data and base by absolute path and by hash, an adapter refuses
another base of the same shape, the same seed gives byte-identical files, and a run says when it cannot have
learned (too few steps, a diverged loss, heavy forgetting)."""

from __future__ import annotations

import json
import os
import zipfile
from types import SimpleNamespace

import pytest
import torch

from minift.base.pretrain import pretrain
from minift.cli import main
from minift.data.tasks import export_task
from minift.errors import CheckpointError, InputError
from minift.finetune.config import DEFAULT_EPOCHS, MIN_DEFAULT_STEPS, TOO_FEW_STEPS, FinetuneConfig
from minift.files import torch_load
from minift.finetune.load import evaluate_run, load_finetuned
from minift.finetune.run import finetune, run_warnings, train_config
from minift.peft import load_adapter

SMALL = dict(base="quick", max_steps=4, eval_every=2, n_train=16, n_eval=8, batch_size=8)


def run(out, quiet=True, **kw):
    return finetune(FinetuneConfig(**{**SMALL, **kw}), out, progress=not quiet, force=kw.pop("force", False))


def test_force_keeps_everything_the_user_put_beside_a_run(tmp_path, quick_base):
    out = tmp_path / "run"
    mine = {out / "notes.txt": b"my notes", out / "src" / "prep.py": b"print(1)", out / "weights.pt": b"\x00old"}
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    first = run(out, task="sentiment")
    again = finetune(FinetuneConfig(**SMALL, task="sentiment"), out, force=True, progress=False)
    assert {p: p.read_bytes() for p in mine} == mine
    assert again["metrics"] == first["metrics"]  # the same seed: the same run again


def test_merge_never_writes_into_a_run_and_needs_force(tmp_path, quick_base, capsys):
    clf = tmp_path / "clf"
    run(clf, task="sentiment", method="lora")
    head = (clf / "adapter.pt").read_bytes()
    assert main(["merge", str(clf), "--out", str(clf)]) == 2
    assert "is a fine-tuning run directory" in capsys.readouterr().err
    assert (clf / "adapter.pt").read_bytes() == head and not (clf / "model.pt").exists()
    merged = tmp_path / "merged"
    assert main(["merge", str(clf), "--out", str(merged)]) == 0
    (merged / "notes.txt").write_text("mine")
    assert main(["merge", str(clf), "--out", str(merged)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["merge", str(clf), "--out", str(merged), "--force"]) == 0
    assert (merged / "notes.txt").read_text() == "mine"


def test_the_same_seed_gives_byte_identical_files(tmp_path, quick_base):
    for name in ("a", "b"):
        run(tmp_path / name, task="qa", method="lora")
    for name in ("best.pt", "adapter.pt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # last.pt also holds the run's clock (seconds trained, for tokens/s after a resume); all else is identical
    a, b = (torch_load(tmp_path / name / "last.pt") for name in ("a", "b"))
    for clock in ("train_time", "elapsed"):
        a["state"].pop(clock), b["state"].pop(clock)
    assert _same(a, b)
    assert _archive_names(tmp_path / "a" / "last.pt") == _archive_names(tmp_path / "b" / "last.pt")


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def _archive_names(path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return z.namelist()


def test_a_run_remembers_its_data_by_absolute_path_and_hash(tmp_path, quick_base, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    export_task("qa", "qa.jsonl", split="train")
    run(work / "run", data="qa.jsonl")  # a relative path, as a user types it
    meta = json.loads((work / "run" / "finetune.json").read_text())
    assert meta["config"]["data"] == str(work / "qa.jsonl") and len(meta["data_sha256"]) == 64
    monkeypatch.chdir(tmp_path)  # evaluate from another directory
    assert "test" in evaluate_run(work / "run")
    with open(work / "qa.jsonl", "a") as f:  # edited after training: the splits would move
        f.write(json.dumps({"instruction": "What is new?", "output": "This."}) + "\n")
    with pytest.raises(InputError, match="changed since"):
        evaluate_run(work / "run")
    assert main(["eval", str(work / "run")]) == 2 and "--allow-changed-data" in capsys.readouterr().err
    assert "test" in evaluate_run(work / "run", allow_changed_data=True)
    os.remove(work / "qa.jsonl")
    with pytest.raises(FileNotFoundError, match="is gone"):
        evaluate_run(work / "run")


def test_an_adapter_refuses_another_base_of_the_same_shape(tmp_path, quick_base, capsys):
    other, _, _ = pretrain(tmp_path / "other", "quick", max_steps=2, seed=1, progress=False)
    lora = tmp_path / "lora"
    run(lora, task="qa", method="lora")
    with pytest.raises(CheckpointError, match="was trained on .*base/quick .*not on .*other") as e:
        load_adapter(_plain(tmp_path / "other"), lora / "adapter.pt")
    assert "\n" not in str(e.value)
    load_adapter(_plain(tmp_path / "other"), lora / "adapter.pt", allow_other_base=True)
    # through a run: its base changed since it was trained (here: the run is pointed at the other base)
    meta = json.loads((lora / "finetune.json").read_text())
    meta["config"]["base"] = str(tmp_path / "other")
    (lora / "finetune.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="has changed since"):
        load_finetuned(lora)
    assert main(["generate", str(lora), "--prompt", "Hi", "--max-new-tokens", "2"]) == 2
    assert "--allow-other-base" in capsys.readouterr().err
    assert main(["generate", str(lora), "--prompt", "Hi", "--max-new-tokens", "2", "--allow-other-base"]) == 0


def _plain(model_dir):
    from minift.base.store import load_model_dir

    return load_model_dir(model_dir)[0]


def test_resume_with_nothing_to_resume_says_so(tmp_path, quick_base, capsys):
    finetune(FinetuneConfig(**SMALL, task="sentiment"), tmp_path / "new", resume=True, progress=False)
    assert "nothing to resume" in capsys.readouterr().err


def test_default_steps_scale_with_a_small_data_set():
    few = train_config(FinetuneConfig(task="qa"), batches_per_epoch=3, progress=False)
    assert few.max_steps == MIN_DEFAULT_STEPS  # 10 epochs of 3 batches would be 30 steps: too few to learn
    many = train_config(FinetuneConfig(task="qa"), batches_per_epoch=25, progress=False)
    assert many.max_steps == DEFAULT_EPOCHS * 25  # the built-in tasks: unchanged
    asked = train_config(FinetuneConfig(task="qa", epochs=2), batches_per_epoch=3, progress=False)
    assert asked.max_steps == 6  # what the user asks for, the user gets


def test_a_run_says_when_it_cannot_have_learned(tmp_path, quick_base, capsys):
    record = run(tmp_path / "short", task="sentiment")
    assert record["steps"] < TOO_FEW_STEPS and "too few to learn" in record["warnings"][0]
    assert "warning: only 4 optimizer steps" in capsys.readouterr().err
    diverged = SimpleNamespace(history=[{"train_loss": 0.7}, {"train_loss": 3.1}, {"train_loss": 55.0}])
    notes = run_warnings(diverged, before=4.1, after=59.2, lr=1.0)
    assert "did not come down" in notes[0] and "lower the learning rate (it was 1)" in notes[0]
    assert "forgot much of its pretraining" in notes[1]
    assert run_warnings(SimpleNamespace(history=[{"train_loss": 0.7}, {"train_loss": 0.2}]), 4.1, 4.2, 1e-3) == []
