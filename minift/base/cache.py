"""The cache of base models: `load_base(preset)` returns (model, tokenizer) from `minift_home()/base/<preset>`
(`$MINIFT_HOME`, default ~/.cache/minift), pretraining it once, with a progress bar, if it is not there yet.
`resolve_base(name)` accepts what `--base` accepts: a preset name, a downloadable real model (`smollm2`,
minift/base/download.py), a model directory (minift's, or a Hugging Face GPT-2's), or a Llama-architecture GGUF
file.

The cache entry appears whole or not at all: pretraining runs in `base/<preset>.partial/` and the finished directory
is renamed to `base/<preset>` in one step. An interrupted first pretraining (Ctrl-C, a crash) therefore never
leaves a half-built `base/<preset>`; the next call resumes the partial run from its last checkpoint (or starts it
again if it had none). An entry that is there but damaged (a file missing or unreadable) is reported and rebuilt.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from minift.base.presets import PRESETS, get_preset
from minift.base.pretrain import pretrain
from minift.base.download import DOWNLOADS, fetch
from minift.base.hf_gpt2 import is_hf_gpt2, load_hf_gpt2
from minift.base.llama_gguf import load_gguf
from minift.base.store import load_model_dir, save_model_dir
from minift.errors import MiniftError, MissingFileError
from minift.files import load_json, minift_home
from minift.model.gpt import GPT
from minift.model.tokenizer import Tokenizer
from minift.training import distributed


def base_dir(preset: str) -> Path:
    return minift_home() / "base" / preset


def load_base(preset: str = "tiny", device: str = "cpu", progress: bool = True) -> tuple[GPT, Tokenizer]:
    """(model, tokenizer) of a preset's base model, from the cache; pretrained there once if absent (under torchrun
    by rank 0 alone, as one process, while the other ranks wait: the cache is the same however it is launched).
    A downloadable model's name (`smollm2`) is fetched and converted once instead."""
    if preset not in DOWNLOADS:
        get_preset(preset)
    if base_dir(preset).is_dir():
        try:
            return load_model_dir(base_dir(preset), device=device)
        except MiniftError:
            pass  # damaged: the build below says so and rebuilds it
    with distributed.main_first():  # the others then find it built
        if preset in DOWNLOADS:
            build_downloaded(preset, progress=progress)
        else:
            build_base(preset, progress=progress)
    return load_model_dir(base_dir(preset), device=device)


def build_base(preset: str = "tiny", progress: bool = True, device: str = "cpu", force: bool = False) -> Path:
    """Make sure the cache holds a complete base for `preset` and return its directory (see the module docstring):
    nothing to do when it is there and readable (unless `force`); otherwise pretrain it in `<preset>.partial/`,
    resuming an interrupted attempt, and rename the result into place."""
    get_preset(preset)
    final = base_dir(preset)
    partial = final.with_name(final.name + ".partial")
    if _usable(final, force):
        return final
    resume = (partial / "last.pt").is_file() and not force
    if resume:
        print(f"minift: resuming the interrupted pretraining of the '{preset}' base in {partial}", file=sys.stderr)
    pretrain(partial, preset, resume=resume, force=True, device=device, progress=progress)
    os.replace(partial, final)  # appears in one step, complete
    return final


def build_downloaded(name: str, progress: bool = True, force: bool = False) -> Path:
    """Make sure the cache holds the downloadable model `name` as a model directory (fetched, checked, converted
    from GGUF once; written in `<name>.partial/` and renamed into place, like a pretrained base)."""
    final = base_dir(name)
    if _usable(final, force):
        return final
    gguf = fetch(name, progress=progress)
    model, tok = load_gguf(gguf)
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    save_model_dir(partial, model, tok, downloaded=name, source=gguf.name)
    os.replace(partial, final)
    return final


def _usable(final: Path, force: bool) -> bool:
    """True when the cache entry is there and loads; otherwise it is removed (with a message if it was damaged)."""
    if not final.exists():
        return False
    problem = None if force else damaged(final)
    if problem is None and not force:
        return True
    if problem is not None:
        print(f"minift: the cached base {final} is incomplete or damaged ({problem}); rebuilding it", file=sys.stderr)
    shutil.rmtree(final)  # the cache's own directory, never a user's
    return False


def damaged(path: Path) -> str | None:
    """Why the model directory at `path` cannot be used (one line), or None when it loads."""
    try:
        load_model_dir(path)
    except MiniftError as e:
        return str(e)
    return None


def check_base(base: str) -> None:
    """Refuse, in one line and before anything is loaded, a `--base` that names nothing `resolve_base` can read."""
    if base in PRESETS or base in DOWNLOADS or Path(base).is_dir() or base.endswith(".gguf") and Path(base).is_file():
        return
    if Path(base).is_file():
        raise MissingFileError(f"{base} is a file; give a model directory (config.json, weights, tokenizer.json) "
                               "such as `minift pretrain --out` or `minift merge` write, or a .gguf file")
    raise MissingFileError(f"no model directory at {base}, and it is neither a preset ({', '.join(PRESETS)}) nor a "
                           f"downloadable model ({', '.join(DOWNLOADS)})")


def resolve_base(base: str, progress: bool = True) -> tuple[GPT, Tokenizer, str | None]:
    """(model, tokenizer, preset): a preset name loads (or pretrains once) the cached base; a downloadable model is
    fetched once; a .gguf file is read directly; anything else is a model directory, whose config.json names the
    preset it came from (default "tiny" for minift's own GPTs). The preset's pretraining text is what the forgetting
    probe measures; a real model (Llama) has none here: preset None."""
    if base in PRESETS:
        model, tok = load_base(base, progress=progress)
        return model, tok, base
    if base in DOWNLOADS:
        model, tok = load_base(base, progress=progress)
        return model, tok, None
    path = Path(base)
    if path.suffix == ".gguf" and path.is_file():
        model, tok = load_gguf(path)
        return model, tok, None
    check_base(base)
    if is_hf_gpt2(path):  # a Hugging Face GPT-2 directory (config.json + model.safetensors)
        model, tok = load_hf_gpt2(path)
        return model, tok, None
    model, tok = load_model_dir(path)
    meta = load_json(path / "config.json")
    if meta.get("architecture", "gpt") != "gpt":
        return model, tok, None
    preset = meta.get("preset") or "tiny"
    return model, tok, preset if preset in PRESETS else "tiny"
