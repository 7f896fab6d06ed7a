"""Pretraining a base model on the built-in corpus.

Pretraining is the "liberal-arts education" every later lesson builds on: next-token prediction on the built-in
corpus (`minift.data.corpus`) teaches the model the world's grammar and facts; fine-tuning then specialises it.
The corpus is cut into documents, each followed by end-of-text, concatenated into one token stream; training takes
random windows of it (`minift.training.batches.random_windows`), validation fixed windows (`fixed_windows`), the
same every time. The loop is `minift.training.train`; the result is written as a model directory
(`minift.base.store`). Same preset and seed ⇒ same corpus, tokenizer and weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from minift.base.presets import Preset, get_preset
from minift.base.store import MODEL_FILES, save_model_dir
from minift.data.corpus import corpus_splits
from minift.errors import ConfigError
from minift.files import PathLike, prepare_out_dir, torch_load
from minift.model.gpt import GPT, GPTConfig
from minift.model.tokenizer import Tokenizer
from minift.training import distributed
from minift.training.device import pick_device, use_threads
from minift.training.batches import lm_loss_fn, random_windows
from minift.training.checkpoints import TRAINING_FILES
from minift.training.loop import TrainResult, evaluate, train

PRETRAIN_FILES = MODEL_FILES + TRAINING_FILES  # what `pretrain` writes, and all that --force may replace


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


def pretrain(out_dir: PathLike, preset: str = "tiny", max_steps: int | None = None, resume: bool = False,
             force: bool = False, device: str = "auto", progress: bool = True, seed: int = 0,
             dtype: str = "auto", threads: int | None = None) -> tuple[GPT, Tokenizer, TrainResult]:
    """Pretrain a base model of the given preset into out_dir and return (model, tokenizer, result).

    The model returned (and saved as model.pt) is the checkpoint with the best validation loss. dtype: the forward
    precision (auto, fp32, bf16; minift.training.device); threads: torch's intra-op threads (None: its default).
    Under torchrun every rank trains (minift/training/distributed.py) with the tokenizer rank 0 made; rank 0 writes
    the files.
    """
    p = get_preset(preset)
    use_threads(threads)
    distributed.init_from_env(pick_device(device))
    main = distributed.is_main()
    with distributed.main_first():  # rank 0 prepares the directory and the tokenizer, then the others read them
        out_dir = prepare_out_dir(out_dir, PRETRAIN_FILES, force=force, resume=resume) if main else Path(out_dir)
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
    tcfg = replace(p.train, seed=seed, device=device, dtype=dtype, progress=progress, desc=f"pretrain {preset}",
                   **steps)
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
