"""The cache of base models: `load_base(preset)` returns (model, tokenizer) from `minift_home()/base/<preset>`
(`$MINIFT_HOME`, default ~/.cache/minift), pretraining it once, with a progress bar, if it is not there yet.
`resolve_base(name)` accepts what `--base` accepts: a preset name, or a model directory.
"""

from __future__ import annotations

from pathlib import Path

from minift.base.presets import PRESETS, get_preset
from minift.base.pretrain import pretrain
from minift.base.store import load_model_dir
from minift.errors import MissingFileError
from minift.files import load_json, minift_home
from minift.model.gpt import GPT
from minift.model.tokenizer import Tokenizer
from minift.training import distributed



def base_dir(preset: str) -> Path:
    return minift_home() / "base" / preset


def load_base(preset: str = "tiny", device: str = "cpu", progress: bool = True) -> tuple[GPT, Tokenizer]:
    """(model, tokenizer) of a preset's base model, from the cache; pretrained there once if absent (under torchrun
    by rank 0 alone, as one process, while the other ranks wait: the cache is the same however it is launched)."""
    get_preset(preset)
    d = base_dir(preset)
    if not (d / "config.json").is_file():
        with distributed.main_first():
            if not (d / "config.json").is_file():
                pretrain(d, preset, resume=(d / "last.pt").is_file(), device="cpu", progress=progress)
    return load_model_dir(d, device=device)


def resolve_base(base: str, progress: bool = True) -> tuple[GPT, Tokenizer, str]:
    """(model, tokenizer, preset): a preset name loads (or pretrains once) the cached base; anything else is a model
    directory, whose config.json names the preset it came from (default "tiny", used for the forgetting probe)."""
    if base in PRESETS:
        model, tok = load_base(base, progress=progress)
        return model, tok, base
    path = Path(base)
    if not path.is_dir():
        raise MissingFileError(f"base {base!r} is neither a preset ({', '.join(PRESETS)}) nor a model directory")
    model, tok = load_model_dir(path)
    preset = load_json(path / "config.json").get("preset") or "tiny"
    return model, tok, preset if preset in PRESETS else "tiny"
