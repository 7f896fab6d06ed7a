"""Base-model presets: everything that defines a base model (corpus size, tokenizer, architecture, training recipe)
in one frozen record per name. `minift pretrain --preset NAME` and `load_base(NAME)` read them.

Pure data (no torch), so the command line can list the presets without loading the model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minift.errors import ConfigError
from minift.training.config import TrainConfig


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
