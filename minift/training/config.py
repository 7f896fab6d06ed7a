"""What defines a training run: `TrainConfig`, checked when it is made (a ConfigError that says what to change).

Pure data (no torch): base-model presets and the command line read it without loading the model code. The loop
that runs it is `minift.training.loop.train`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from minift.errors import ConfigError


@dataclass
class TrainConfig:
    """Settings of one training run. Checked on construction (ConfigError with the fix)."""

    max_steps: int
    grad_accum: int = 1          # K micro-batches per optimizer step
    lr: float = 3e-4             # peak learning rate
    min_lr: float | None = None  # cosine floor; None → lr / 10
    warmup_steps: int = 0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float | None = 1.0  # None or 0 → no clipping (the norm is still logged)
    eval_every: int = 100        # also where last.pt is written
    log_every: int = 10
    patience: int | None = None  # stop after this many evaluations without a new best validation loss
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"          # precision of the forward pass: auto (bf16 on a capable GPU), fp32 or bf16
    save_checkpoints: bool = True
    progress: bool = True
    desc: str = "train"

    def __post_init__(self):
        def need(ok: bool, msg: str):
            if not ok:
                raise ConfigError(f"TrainConfig: {msg}")
        for name in ("max_steps", "grad_accum", "eval_every", "log_every"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, f"{name} must be an integer ≥ 1, got {v!r}")
        need(isinstance(self.warmup_steps, int) and 0 <= self.warmup_steps <= self.max_steps,
             f"warmup_steps must be an integer in [0, max_steps={self.max_steps}], got {self.warmup_steps!r}")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
             f"lr must be a finite number > 0, got {self.lr}")
        need(self.min_lr is None or 0 <= self.min_lr <= self.lr,
             f"min_lr must be in [0, lr={self.lr}] (or None for lr/10), got {self.min_lr}")
        need(self.weight_decay >= 0, f"weight_decay must be ≥ 0, got {self.weight_decay}")
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
             f"betas must be two numbers in [0, 1), got {self.betas}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        need(self.eps > 0, f"eps must be > 0, got {self.eps}")
        need(self.grad_clip is None or self.grad_clip >= 0, f"grad_clip must be ≥ 0 or None, got {self.grad_clip}")
        need(self.patience is None or (isinstance(self.patience, int) and self.patience >= 1),
             f"patience must be None or an integer ≥ 1, got {self.patience!r}")
        need(isinstance(self.seed, int), f"seed must be an integer, got {self.seed!r}")
        need(self.dtype in ("auto", "fp32", "bf16"), f"dtype must be auto, fp32 or bf16, got {self.dtype!r}")

    @property
    def floor_lr(self) -> float:
        # computed, not stored: dataclasses.replace(cfg, lr=…) must not carry an old lr/10 along
        return self.lr / 10 if self.min_lr is None else self.min_lr

    def to_dict(self) -> dict:
        return asdict(self)
