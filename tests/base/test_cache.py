"""The cache of base models never holds half a base: an interrupted first pretraining resumes (or starts over) by
itself and ends with the weights an uninterrupted one has; a damaged entry is reported and rebuilt; and
`minift pretrain` without --out fills the same cache that `--base PRESET` reads."""

from __future__ import annotations

import pytest

import minift.base.pretrain as pretrain_module
from minift.base.cache import base_dir, load_base
from minift.base.store import fingerprint
from minift.cli import main


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def interrupt_at(monkeypatch, index: int):
    """Make pretraining raise KeyboardInterrupt (Ctrl-C) when it asks for micro-batch `index`."""
    real = pretrain_module.train

    def train(model, loss_fn, batches, *args, **kwargs):
        def guarded(i):
            if i >= index:
                raise KeyboardInterrupt
            return batches(i)
        return real(model, loss_fn, guarded, *args, **kwargs)

    monkeypatch.setattr(pretrain_module, "train", train)


@pytest.mark.parametrize("stop_at", [40, 5], ids=["after the first checkpoint", "before any checkpoint"])
def test_an_interrupted_first_pretraining_recovers(stop_at, fresh_home, quick_base, monkeypatch, capsys):
    with monkeypatch.context() as m:
        interrupt_at(m, stop_at)  # quick: 60 steps, a checkpoint every 30
        with pytest.raises(KeyboardInterrupt):
            load_base("quick", progress=False)
    assert not base_dir("quick").exists()  # never half a base where --base quick looks
    partial = base_dir("quick").with_name("quick.partial")
    assert (partial / "last.pt").is_file() == (stop_at > 30)
    model, _ = load_base("quick", progress=False)
    assert ("resuming" in capsys.readouterr().err) == (stop_at > 30)
    assert fingerprint(model) == fingerprint(quick_base[0])  # the same base as an uninterrupted pretraining
    assert not partial.exists()


def test_a_damaged_entry_is_rebuilt_and_pretrain_fills_the_cache(fresh_home, quick_base, capsys):
    assert main(["pretrain", "--preset", "quick"]) == 0
    assert "pretrained: the 'quick' base in" in capsys.readouterr().out
    d = base_dir("quick")
    assert main(["pretrain", "--preset", "quick"]) == 0
    assert "already cached" in capsys.readouterr().out
    (d / "model.pt").unlink()
    model, _ = load_base("quick", progress=False)
    err = capsys.readouterr().err
    assert "incomplete or damaged (" in err and "model.pt is missing" in err and "rebuilding it" in err
    assert fingerprint(model) == fingerprint(quick_base[0])
