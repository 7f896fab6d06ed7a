"""The model store: the on-disk model directory, for both architectures.

A model directory holds
    config.json            {"architecture": "gpt" | "llama", "model": its config's fields, "preset": ..., ...}
    model.pt               the weights of a GPT (a state_dict; the tied head is stored once by torch), or
    model.safetensors      the weights of a Llama (safetensors, minift/base/safetensors.py; a tied head once)
    tokenizer.json         the byte-level BPE tokenizer, and tokenizer_config.json beside it (its eos and pad)
and, after `pretrain`, metrics.jsonl, loss.png, last.pt (resumable state) and best.pt from the training loop.

`fingerprint(model)` is a short hash of the weights, so that an adapter is never loaded into another base.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from minift import __version__
from minift.base.safetensors import load_safetensors, save_safetensors
from minift.errors import CheckpointError, MissingFileError
from minift.files import PathLike, load_json, save_json, torch_load, torch_save_atomic
from minift.model.gpt import GPT, GPTConfig
from minift.model.llama import Llama, LlamaConfig
from minift.model.tokenizer import Tokenizer

# every file a model directory may hold (all that --force may replace there)
MODEL_FILES = ("config.json", "model.pt", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
ARCHITECTURES = {"gpt": (GPT, GPTConfig), "llama": (Llama, LlamaConfig)}


def architecture_of(model: GPT) -> str:
    return "llama" if isinstance(model, Llama) else "gpt"


def save_model_dir(out_dir: PathLike, model: GPT, tokenizer: Tokenizer, **info) -> Path:
    """Write config.json, the weights and the tokenizer into out_dir (each atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out_dir / "tokenizer.json")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    arch = architecture_of(model)
    if arch == "llama":
        if getattr(model.config, "tie_embeddings", False):
            state.pop("lm_head.weight")  # the same tensor as tok_emb.weight: stored once
        save_safetensors(state, out_dir / "model.safetensors", {"format": "pt", "architecture": arch})
    else:
        torch_save_atomic(state, out_dir / "model.pt")
    # config.json last: its presence marks a complete model directory
    save_json(out_dir / "config.json", {"architecture": arch, "model": model.config.to_dict(),
                                        "minift_version": __version__, **info})
    return out_dir


def load_model_dir(path: PathLike, device: str = "cpu") -> tuple[GPT, Tokenizer]:
    """Load (model, tokenizer) from a directory written by `save_model_dir` / `minift pretrain`."""
    path = Path(path)
    if path.is_file():
        raise MissingFileError(f"{path} is a file; give the model directory (config.json, weights, tokenizer.json) "
                               "that `minift pretrain --out`, `minift merge` or a full fine-tuning run wrote")
    if not path.is_dir():
        raise MissingFileError(f"no model directory at {path}")
    for name in ("config.json", "tokenizer.json"):
        if not (path / name).is_file():
            raise MissingFileError(f"{path} is not a complete model directory: {name} is missing")
    weights = path / "model.safetensors" if (path / "model.safetensors").is_file() else path / "model.pt"
    if not weights.is_file():
        raise MissingFileError(f"{path} is not a complete model directory: model.pt is missing")
    meta = load_json(path / "config.json")
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{path / 'config.json'} has no 'model' section; it was not written by minift")
    arch = meta.get("architecture", "gpt")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{path / 'config.json'}: unknown architecture {arch!r} (known: "
                              f"{', '.join(ARCHITECTURES)})")
    model_cls, config_cls = ARCHITECTURES[arch]
    cfg = config_cls.from_dict(meta["model"])
    tokenizer = Tokenizer.load(path / "tokenizer.json")
    if tokenizer.vocab_size > cfg.vocab_size:
        raise CheckpointError(f"{path}: tokenizer has {tokenizer.vocab_size} tokens but the model only "
                              f"{cfg.vocab_size}; the two files do not belong together")
    if arch == "llama":  # 135M parameters: no random initialisation to throw away, the weights come next
        with torch.device("meta"):
            model = model_cls(cfg)
    else:
        model = model_cls(cfg)
    state = load_safetensors(weights) if weights.suffix == ".safetensors" else torch_load(weights)
    if getattr(cfg, "tie_embeddings", arch == "gpt") and "lm_head.weight" not in state and "tok_emb.weight" in state:
        state["lm_head.weight"] = state["tok_emb.weight"]
    try:
        model.load_state_dict(state, strict=True, assign=arch == "llama")
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{weights} does not match config.json: {first}") from None
    if getattr(cfg, "tie_embeddings", True):
        model.lm_head.weight = model.tok_emb.weight  # (assign=True replaces both tensors: tie them again)
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
