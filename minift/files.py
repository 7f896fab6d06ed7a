"""Files, written safely: atomic writes, JSON / JSONL, checkpoints read without pickle, output directories, the
cache directory. Every stage uses these; nothing here imports torch until a tensor file is read or written, so the
layers that need no tensors (the built-in data, the command-line parser) stay light.

Atomic write: write to a temporary file `.NAME.XXXX.tmp` in the same directory, flush it to disk, then
`os.replace` it over the target. `os.replace` is atomic on POSIX and Windows, so a reader (or a crash) sees either
the old file or the new one, never half of each. A process killed in the middle (kill -9) leaves the temporary
file behind; `prepare_out_dir` removes such leftovers of the files a run writes when the run starts again.

Nothing a user made is touched: `prepare_out_dir(..., force=True)` replaces only the files the run itself writes
(its `owned` names), never the directory or anything else in it. A location that cannot be written (read-only,
not a directory, a full disk) is an `OutputError` with one line that says so, not an OSError traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

from minift.errors import CheckpointError, MissingFileError, OutputError, OutputExistsError


PathLike = str | os.PathLike  # what every function that takes a path accepts


def minift_home() -> Path:
    """Where base models are cached: $MINIFT_HOME, or ~/.cache/minift."""
    return Path(os.environ.get("MINIFT_HOME") or Path.home() / ".cache" / "minift")


def output_error(e: OSError, path) -> OutputError:
    """An OSError met while writing `path`, said in one line with what to do."""
    if e.errno == errno.ENOSPC:
        return OutputError(f"no space left on the device while writing {path}; free some space or write elsewhere")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot write {path}: the location is read-only or not yours; choose a writable path")
    if e.errno == errno.ENOTDIR:
        return OutputError(f"cannot write {path}: a part of that path is a file, not a directory")
    return OutputError(f"cannot write {path}: {e.strerror or e}")


def make_dir(path) -> Path:
    """mkdir -p, with a one-line OutputError where it cannot be done."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create the directory {path}: a file of that name exists") from None
    except OSError as e:
        raise output_error(e, path) from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; on success move it over `path` in one step, on error delete it."""
    path = Path(path)
    make_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise output_error(e, path) from None
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private (0600); give it normal permissions
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise output_error(e, path) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def torch_save_atomic(obj, path) -> None:
    """torch.save, atomically. The data goes through an open file object, not the temporary file's name: torch
    names the archive inside the file after the path it is given, so saving to `.last.pt.a8f2.tmp` would store that
    random name, and the same weights would give different bytes each time."""
    import torch  # here, not at the top: see the module docstring

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def torch_load(path, map_location="cpu"):
    """Read a checkpoint minift wrote: tensors and plain values only (weights_only=True: no code from the file ever
    runs). A missing, damaged or foreign file is reported in one line."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    try:
        with warnings.catch_warnings():  # torch's warnings about a foreign file would add lines to our one
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # truncated zip, another format, a pickle of anything but tensors and plain values
        raise CheckpointError(f"{path} is corrupt, truncated or not written by minift (minift reads only tensors "
                              "and plain values from a checkpoint, never code); write it again with minift") from None


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes (hex): a run records it for its data file, to notice later edits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not a text file (not UTF-8)") from None


def append_jsonl(path, record: dict) -> None:
    """Append one JSON record as a line (metrics logs). Appends are not atomic, but each line is written whole."""
    path = Path(path)
    make_dir(path.parent)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        raise output_error(e, path) from None


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


def check_out_dir(path, owned: tuple[str, ...], force: bool = False, resume: bool = False) -> Path:
    """Refuse an output directory before any work is done: a file in its place, or results already there (any of
    the `owned` names) without `force` or `resume`. Changes nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a directory; choose another output path")
    has_results = path.is_dir() and any((path / name).exists() for name in owned)
    if has_results and not (force or resume):
        raise OutputExistsError(f"{path} already holds results; pass --force to replace them (only the files this "
                                "command writes are replaced) or --resume to continue")
    return path


def prepare_out_dir(path, owned: tuple[str, ...], force: bool = False, resume: bool = False) -> Path:
    """Create an output directory for a run that writes the files `owned` (paths relative to it).

    A directory that holds any of them already holds results: refused, unless `resume` (continue in place) or
    `force` (start over: the owned files are deleted, and nothing else — a user's notes, code or older weights
    beside them stay byte for byte). Leftover temporary files of the owned names (`.NAME.*.tmp`, from a process
    killed while writing) are removed either way. Ends by checking that the directory can be written.
    """
    path = check_out_dir(path, owned, force, resume)
    make_dir(path)
    try:
        for name in owned:
            target = path / name
            for tmp in target.parent.glob(f".{target.name}.*.tmp") if target.parent.is_dir() else ():
                tmp.unlink()
            if force and not resume and target.is_file():
                target.unlink()
        for folder in {(path / name).parent for name in owned} - {path}:  # e.g. model/ of a full run, if now empty
            if force and not resume and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        probe = path / f".minift-write-test.{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise output_error(e, path) from None
    return path
