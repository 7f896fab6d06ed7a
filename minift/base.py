"""The pretrained base model: presets, pretraining on the built-in corpus, and the on-disk model directory.

Pretraining is the "liberal-arts education" every later lesson builds on: next-token prediction on the built-in
corpus (`minift.corpus`) teaches the model the world's grammar and facts; fine-tuning then specialises it.

A model directory holds
    config.json     {"model": GPTConfig fields, "preset": ..., "minift_version": ...}
    model.pt        the weights (state_dict; the tied head is stored once by torch)
    tokenizer.json  the byte-level BPE tokenizer
and, after `pretrain`, metrics.jsonl, loss.png, last.pt (resumable state) and best.pt from the training loop.

`load_base(preset)` returns (model, tokenizer) from `minift_home()/base/<preset>`, pretraining it once (with a
progress bar) if it is not there yet. Same preset and seed ⇒ same corpus, tokenizer and weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import __version__, distributed
from .corpus import corpus_splits
from .device import pick_device
from .errors import CheckpointError, ConfigError, MissingFileError
from .model import GPT, GPTConfig
from .tokenizer import Tokenizer
from .train import TrainConfig, TrainResult, evaluate, lm_loss_fn, random_windows, train
from .utils import load_json, minift_home, prepare_out_dir, save_json, torch_load, torch_save_atomic


@dataclass(frozen=True)
class Preset:
    """Everything that defines a base model: data size, tokenizer, architecture and the training recipe."""

    n_docs: int  # documents of built-in corpus generated
    vocab_size: int  # BPE vocabulary (incl. special tokens)
    model: dict  # GPTConfig fields except vocab_size
    batch_size: int
    train: TrainConfig = field(default_factory=TrainConfig)
    val_windows: int = 64  # fixed validation windows, evaluated in full each time


PRESETS: dict[str, Preset] = {
    # a few seconds: for tests and quick-mode lessons. Learns word shapes, not facts.
    "quick": Preset(
        n_docs=1500, vocab_size=512, batch_size=16, val_windows=16,
        model=dict(block_size=64, n_layer=2, n_head=2, d_model=64, dropout=0.0),
        train=TrainConfig(max_steps=60, lr=3e-3, warmup_steps=10, eval_every=30, log_every=10,
                          weight_decay=0.1, grad_clip=1.0, seed=0),
    ),
    # a few minutes on 2 CPU cores: the base every lesson fine-tunes.
    "tiny": Preset(
        n_docs=20000, vocab_size=2048, batch_size=16, val_windows=64,
        model=dict(block_size=128, n_layer=4, n_head=4, d_model=192, dropout=0.0),
        train=TrainConfig(max_steps=800, lr=3e-3, min_lr=3e-4, warmup_steps=40, eval_every=100, log_every=20,
                          weight_decay=0.1, grad_clip=1.0, seed=0),
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


# -- the model directory ---------------------------------------------------------------------------------------

def save_model_dir(out_dir, model: GPT, tokenizer: Tokenizer, **info) -> Path:
    """Write config.json, model.pt and tokenizer.json into out_dir (each atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out_dir / "tokenizer.json")
    torch_save_atomic({k: v.detach().cpu() for k, v in model.state_dict().items()}, out_dir / "model.pt")
    # config.json last: its presence marks a complete model directory
    save_json(out_dir / "config.json", {"model": model.config.to_dict(), "minift_version": __version__, **info})
    return out_dir


def load_model_dir(path, device="cpu") -> tuple[GPT, Tokenizer]:
    """Load (model, tokenizer) from a directory written by `save_model_dir` / `minift pretrain`."""
    path = Path(path)
    if not path.is_dir():
        raise MissingFileError(f"no model directory at {path}; create one with `minift pretrain --out {path}`")
    for name in ("config.json", "model.pt", "tokenizer.json"):
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
    return model.to(device).eval(), tokenizer


# -- pretraining -----------------------------------------------------------------------------------------------

def encode_documents(tokenizer: Tokenizer, docs: list[str]) -> torch.Tensor:
    """Concatenate documents into one token stream, each followed by end-of-text (GPT-2's convention)."""
    ids = []
    for doc_ids in tokenizer.encode_batch(docs, add_eos=True):
        ids.extend(doc_ids)
    return torch.tensor(ids, dtype=torch.long)


def fixed_windows(tokens: torch.Tensor, block_size: int, n: int, batch_size: int) -> list:
    """Up to n non-overlapping (x, y) windows spread evenly over the stream, grouped into batches: a validation
    set that is the same every time it is evaluated."""
    n_max = (len(tokens) - 1) // block_size
    if n_max < 1:
        raise ConfigError(f"validation text has {len(tokens)} tokens, fewer than one window of {block_size + 1}")
    n = min(n, n_max)
    starts = torch.linspace(0, len(tokens) - block_size - 1, n).long()
    xs = torch.stack([tokens[s:s + block_size] for s in starts])
    ys = torch.stack([tokens[s + 1:s + 1 + block_size] for s in starts])
    return [(xs[i:i + batch_size], ys[i:i + batch_size]) for i in range(0, n, batch_size)]


@dataclass
class PretrainData:
    tokenizer: Tokenizer
    train_tokens: torch.Tensor
    val_batches: list


def pretraining_data(preset: str | Preset = "tiny", tokenizer: Tokenizer | None = None, seed: int = 0
                     ) -> PretrainData:
    """The built-in corpus of a preset, tokenised: training stream and fixed validation batches. Also used after
    fine-tuning to measure forgetting (validation loss on the pretraining corpus)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    train_docs, val_docs = corpus_splits(seed=seed, n_docs=p.n_docs)
    if tokenizer is None:
        tokenizer = Tokenizer.train(train_docs, vocab_size=p.vocab_size)
    train_tokens = encode_documents(tokenizer, train_docs)
    val_batches = fixed_windows(encode_documents(tokenizer, val_docs), p.model["block_size"], p.val_windows,
                                p.batch_size)
    return PretrainData(tokenizer, train_tokens, val_batches)


def pretraining_val_loss(model: GPT, tokenizer: Tokenizer, preset: str = "tiny") -> float:
    """Mean next-token loss of `model` on the preset's held-out pretraining text (the forgetting probe)."""
    data = pretraining_data(preset, tokenizer=tokenizer)
    return evaluate(model, lm_loss_fn, [(x.to(model.device), y.to(model.device)) for x, y in data.val_batches])


def pretrain(out_dir, preset: str = "tiny", max_steps: int | None = None, resume: bool = False,
             force: bool = False, device: str = "auto", progress: bool = True, seed: int = 0
             ) -> tuple[GPT, Tokenizer, TrainResult]:
    """Pretrain a base model of the given preset into out_dir and return (model, tokenizer, result).

    The model returned (and saved as model.pt) is the checkpoint with the best validation loss.
    Under torchrun every rank trains (minift/distributed.py) with the tokenizer rank 0 made; rank 0 writes the files.
    """
    p = get_preset(preset)
    distributed.init_from_env(pick_device(device))
    main = distributed.is_main()
    with distributed.main_first():  # rank 0 prepares the directory and the tokenizer, then the others read them
        out_dir = prepare_out_dir(out_dir, force=force, resume=resume) if main else Path(out_dir)
        tok_path = out_dir / "tokenizer.json"
        tokenizer = Tokenizer.load(tok_path) if tok_path.is_file() and (resume or not main) else None
        data = pretraining_data(p, tokenizer=tokenizer, seed=seed)
        if main:
            data.tokenizer.save(tok_path)
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, **p.model)
    torch.manual_seed(seed)
    model = GPT(cfg)
    steps = {} if max_steps is None else {"max_steps": max_steps,
                                           "warmup_steps": min(p.train.warmup_steps, max_steps)}
    tcfg = replace(p.train, seed=seed, device=device, progress=progress, desc=f"pretrain {preset}", **steps)
    batches = random_windows(data.train_tokens, cfg.block_size, p.batch_size, seed=seed)
    result = train(model, lm_loss_fn, batches, tcfg, val_batches=data.val_batches, out_dir=out_dir,
                   resume=resume and (out_dir / "last.pt").is_file())
    distributed.barrier()  # rank 0 has written best.pt
    best = out_dir / "best.pt"
    if best.is_file():
        model.load_state_dict(torch_load(best))
    model = model.cpu().eval()
    if main:
        save_model_dir(out_dir, model, data.tokenizer, preset=preset, seed=seed, steps=result.steps,
                       best_val_loss=result.best_val_loss, train_tokens=int(len(data.train_tokens)))
    return model, data.tokenizer, result


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
