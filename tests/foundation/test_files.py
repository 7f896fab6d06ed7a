"""Safe files: --force replaces only what minift wrote, leftovers of a killed write are cleaned, the same weights
give the same bytes, a full disk or a read-only location is one clear error, and a checkpoint never runs code."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import torch

import minift.files as files
from minift.errors import CheckpointError, OutputError, OutputExistsError
from minift.files import atomic_write_text, make_dir, prepare_out_dir, torch_load, torch_save_atomic

OWNED = ("results.json", "last.pt", "model/config.json", "model/model.pt")
READ_ONLY = Path("/sys/minift-test-output")  # sysfs: even root cannot create files there


def user_files(root: Path) -> dict[Path, bytes]:
    """A user's own files beside and inside a run directory."""
    made = {root / "notes.txt": b"my notes", root / "src" / "train.py": b"print('mine')",
            root / "old_weights.pt": os.urandom(64), root / "model" / "README": b"my model card"}
    for path, data in made.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return made


def test_force_replaces_only_the_owned_files(tmp_path):
    out = tmp_path / "run"
    mine = user_files(out)
    for name in OWNED:
        (out / name).write_text("from an earlier run")
    with pytest.raises(OutputExistsError, match="--force"):
        prepare_out_dir(out, OWNED)
    prepare_out_dir(out, OWNED, force=True)
    assert not any((out / name).exists() for name in OWNED)
    assert {p: p.read_bytes() for p in mine} == mine  # byte for byte
    assert (out / "model").is_dir()  # it still holds the user's README


def test_resume_keeps_everything_and_an_empty_owned_folder_goes(tmp_path):
    out = tmp_path / "run"
    for name in OWNED:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x")
    prepare_out_dir(out, OWNED, resume=True)
    assert all((out / name).exists() for name in OWNED)
    prepare_out_dir(out, OWNED, force=True)
    assert not (out / "model").exists()  # emptied by --force, and it was minift's


def test_leftover_temporary_files_are_cleaned(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / ".last.pt.x8k2.tmp", out / "model" / ".model.pt.a1b2.tmp"]
    stale[1].parent.mkdir()
    for p in stale:
        p.write_bytes(b"half a checkpoint (the process was killed)")
    (out / ".notes.txt.swp").write_text("an editor's file")
    prepare_out_dir(out, OWNED)
    assert not any(p.exists() for p in stale) and (out / ".notes.txt.swp").exists()


def test_the_same_weights_give_the_same_bytes(tmp_path):
    state = {"w": torch.arange(12.0).view(3, 4), "step": 3}
    torch_save_atomic(state, tmp_path / "a" / "last.pt")
    torch_save_atomic(state, tmp_path / "b" / "last.pt")
    assert (tmp_path / "a/last.pt").read_bytes() == (tmp_path / "b/last.pt").read_bytes()
    assert torch.equal(torch_load(tmp_path / "a/last.pt")["w"], state["w"])
    assert not list((tmp_path / "a").glob("*.tmp")) and not list((tmp_path / "a").glob(".*.tmp"))


def test_a_full_disk_is_one_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("the previous results")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OutputError, match="no space left") as e:
        atomic_write_text(target, "new results")
    assert "\n" not in str(e.value) and e.value.__cause__ is None  # one line, no chained traceback
    assert target.read_text() == "the previous results" and not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(OutputError, match="no space left"):
        torch_save_atomic({"w": torch.zeros(3)}, tmp_path / "last.pt")


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs sysfs for a location nobody can write")
def test_a_read_only_location_is_one_clear_error():
    with pytest.raises(OutputError, match="read-only"):
        make_dir(READ_ONLY)
    with pytest.raises(OutputError, match="read-only"):
        prepare_out_dir(READ_ONLY, OWNED)


class Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_checkpoint_never_runs_code_and_errors_say_so_plainly(tmp_path):
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Hostile(tmp_path / "pwned")))
    torch.save({"obj": Hostile(tmp_path / "pwned")}, tmp_path / "evil2.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    for name in ("evil.pt", "evil2.pt", "cut.pt"):
        with pytest.raises(CheckpointError, match="corrupt, truncated or not written by minift") as e:
            torch_load(tmp_path / name)
        assert "weights_only" not in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "pwned").exists()
