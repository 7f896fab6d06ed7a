"""Files, written safely: atomic writes, JSON / JSONL, checkpoints read without pickle, output directories, the
cache directory. Every stage uses these; nothing here imports torch until a tensor file is read or written, so the
layers that need no tensors (the built-in data, the command-line parser) stay light.

Atomic write: write to a temporary file in the same directory, flush it to disk, then `os.replace` it over the
target. `os.replace` is atomic on POSIX and Windows, so a reader (or a crash) sees either the old file or the new
one, never half of each.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from minift.errors import CheckpointError, MissingFileError, OutputExistsError


def minift_home() -> Path:
    """Where base models are cached: $MINIFT_HOME, or ~/.cache/minift."""
    return Path(os.environ.get("MINIFT_HOME") or Path.home() / ".cache" / "minift")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; on success move it over `path` in one step, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private (0600); give it normal permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def torch_save_atomic(obj, path) -> None:
    import torch  # here, not at the top: see the module docstring

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def torch_load(path, map_location="cpu"):
    """torch.load with minift's errors: a missing file or an unreadable/corrupt one is reported as such."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, wrong format, pickle of unexpected types
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); "
                              "it may be corrupt or from another program") from None


def save_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_json(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def append_jsonl(path, record: dict) -> None:
    """Append one JSON record as a line (metrics logs). Appends are not atomic, but each line is written whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise CheckpointError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
    return out


def prepare_out_dir(path, force: bool = False, resume: bool = False,
                    markers: tuple[str, ...] = ("config.json", "metrics.jsonl", "last.pt")) -> Path:
    """Create an output directory, refusing to overwrite one that already holds results (any of the `markers`
    files) unless `force` (clear it and start over) or `resume` (continue in place) is given."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a directory; choose another output path")
    has_results = path.is_dir() and any((path / m).exists() for m in markers)
    if has_results and not (force or resume):
        raise OutputExistsError(f"{path} already holds results; pass --force to overwrite or --resume to continue")
    if force and not resume and has_results:
        shutil.rmtree(path)  # only a directory minift wrote (it has a marker file) is cleared
    path.mkdir(parents=True, exist_ok=True)
    return path
