"""The base model: pretraining writes a complete model directory, loading it back gives the same logits, the cache
under MINIFT_HOME is used, and bad directories fail with clear errors."""

import json

import pytest
import torch

from minift.base.cache import base_dir, load_base
from minift.base.pretrain import pretrain
from minift.base.store import load_model_dir, save_model_dir
from minift.errors import CheckpointError, ConfigError, MissingFileError, OutputExistsError


def test_load_base_caches_and_reloads(quick_base, minift_home):
    model, tok = quick_base
    d = base_dir("quick")
    assert d.parent.parent == minift_home
    for name in ("config.json", "model.pt", "tokenizer.json", "metrics.jsonl", "loss.png"):
        assert (d / name).is_file(), name
    stamp = (d / "model.pt").stat().st_mtime_ns
    again, tok2 = load_base("quick", progress=False)  # from the cache: nothing retrained
    assert (d / "model.pt").stat().st_mtime_ns == stamp
    ids = torch.tensor([tok.encode("The capital of France is")])
    assert torch.equal(model(ids)[0], again(ids)[0])
    assert tok2.encode("hello world") == tok.encode("hello world")


def test_pretraining_lowers_the_loss(quick_base):
    records = [json.loads(line) for line in (base_dir("quick") / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    model, tok = quick_base
    uniform = torch.log(torch.tensor(float(model.config.vocab_size))).item()
    assert val[-1] < 0.75 * uniform  # clearly below the loss of guessing uniformly (ln V)


def test_save_load_roundtrip(quick_base, tmp_path):
    model, tok = quick_base
    save_model_dir(tmp_path / "m", model, tok)
    loaded, tok2 = load_model_dir(tmp_path / "m")
    ids = torch.tensor([tok.encode("A cat eats fish.")])
    assert torch.equal(model(ids)[0], loaded(ids)[0])


def test_bad_model_dirs(quick_base, tmp_path):
    model, tok = quick_base
    with pytest.raises(MissingFileError, match="no model directory"):
        load_model_dir(tmp_path / "nope")
    d = save_model_dir(tmp_path / "m", model, tok)
    (d / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model_dir(d)
    d = save_model_dir(tmp_path / "m2", model, tok)
    (d / "tokenizer.json").unlink()
    with pytest.raises(MissingFileError, match="tokenizer.json is missing"):
        load_model_dir(d)
    d = save_model_dir(tmp_path / "m3", model, tok)
    meta = json.loads((d / "config.json").read_text())
    meta["model"]["n_layer"] += 1
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match config.json"):
        load_model_dir(d)


def test_pretrain_refuses_to_overwrite_and_resumes(tmp_path):
    out = tmp_path / "run"
    _, _, r1 = pretrain(out, "quick", max_steps=4, progress=False)
    with pytest.raises(OutputExistsError, match="--force"):
        pretrain(out, "quick", max_steps=4, progress=False)
    _, _, r2 = pretrain(out, "quick", max_steps=8, resume=True, progress=False)
    assert r2.steps == 8
    pretrain(out, "quick", max_steps=2, force=True, progress=False)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        load_base("huge")
