"""The model store: the on-disk model directory, and the cache of base models.

A model directory holds
    config.json     {"model": GPTConfig fields, "preset": ..., "minift_version": ...}
    model.pt        the weights (state_dict; the tied head is stored once by torch)
    tokenizer.json  the byte-level BPE tokenizer
and, after `pretrain`, metrics.jsonl, loss.png, last.pt (resumable state) and best.pt from the training loop.

`fingerprint(model)` is a short hash of the weights, so that an adapter is never loaded into another base.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from minift import __version__
from minift.errors import CheckpointError, MissingFileError
from minift.files import PathLike, load_json, save_json, torch_load, torch_save_atomic
from minift.model.gpt import GPT, GPTConfig
from minift.model.tokenizer import Tokenizer

MODEL_FILES = ("config.json", "model.pt", "tokenizer.json")  # a model directory


def save_model_dir(out_dir: PathLike, model: GPT, tokenizer: Tokenizer, **info) -> Path:
    """Write config.json, model.pt and tokenizer.json into out_dir (each atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out_dir / "tokenizer.json")
    torch_save_atomic({k: v.detach().cpu() for k, v in model.state_dict().items()}, out_dir / "model.pt")
    # config.json last: its presence marks a complete model directory
    save_json(out_dir / "config.json", {"model": model.config.to_dict(), "minift_version": __version__, **info})
    return out_dir


def load_model_dir(path: PathLike, device: str = "cpu") -> tuple[GPT, Tokenizer]:
    """Load (model, tokenizer) from a directory written by `save_model_dir` / `minift pretrain`."""
    path = Path(path)
    if path.is_file():
        raise MissingFileError(f"{path} is a file; give the model directory (config.json, model.pt, tokenizer.json) "
                               "that `minift pretrain --out`, `minift merge` or a full fine-tuning run wrote")
    if not path.is_dir():
        raise MissingFileError(f"no model directory at {path}")
    for name in MODEL_FILES:
        if not (path / name).is_file():
            raise MissingFileError(f"{path} is not a complete model directory: {name} is missing")
    meta = load_json(path / "config.json")
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{path / 'config.json'} has no 'model' section; it was not written by minift")
    cfg = GPTConfig.from_dict(meta["model"])
    tokenizer = Tokenizer.load(path / "tokenizer.json")
    if tokenizer.vocab_size > cfg.vocab_size:
        raise CheckpointError(f"{path}: tokenizer has {tokenizer.vocab_size} tokens but the model only "
                              f"{cfg.vocab_size}; the two files do not belong together")
    model = GPT(cfg)
    state = torch_load(path / "model.pt")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path / 'model.pt'} does not match config.json: {first}") from None
    model.origin = str(path.resolve())  # where it came from: an adapter records it, to name its base in errors
    return model.to(device).eval(), tokenizer



def fingerprint(model: torch.nn.Module) -> str:
    """A short hash of every weight: an adapter trained on one base must not be loaded into another base that
    merely has the same shapes (e.g. the preset pretrained again with another recipe)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
