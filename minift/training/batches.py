"""Where training batches come from, and the next-token loss: the data side of `minift.training.train`.

train() asks for batch i (the global micro-batch index) and never for "the next batch", so every batch here is a
pure function of i and a seed: a resumed run, or W data-parallel ranks taking every W-th index, sees exactly the
batches an uninterrupted single process would.

    random_windows(tokens, T, B, seed)(i)   pretraining: B random crops of one token stream → (x, y), each (B, T)
    epoch_batches(examples, B, collate)(i)  fine-tuning: mini-batches of a list, reshuffled every epoch
    lm_loss_fn(model, (x, y[, mask]))       (Σ cross-entropy over targets ≠ −100, their count), the (S, n) pair
                                            every loss function in minift returns
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from minift.errors import ConfigError, InputError
from minift.model.gpt import IGNORE_INDEX


def lm_loss_fn(model: torch.nn.Module, batch) -> tuple[torch.Tensor, int]:
    """Next-token loss for batch = (x, y) or (x, y, attention_mask), x, y: (B, T), y already shifted.

    Returns (Σ_i CE_i over targets ≠ −100, their count), CE_i = −log softmax(logits_i)[y_i]. Computed in at least
    float32 even under bf16 autocast, since a sum of many per-token losses in bf16 would lose digits.
    """
    x, y, mask = (*batch, None)[:3]
    logits, _ = model(x, attention_mask=mask)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    loss_sum = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX,
                               reduction="sum")
    return loss_sum, int((y != IGNORE_INDEX).sum())


def random_windows(tokens: torch.Tensor, block_size: int, batch_size: int, seed: int
                   ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """nanoGPT-style pretraining batches: `batch_size` random crops of a 1-D token stream.

    batch(i) = (x, y), x[b] = tokens[s_b : s_b + T], y[b] = tokens[s_b + 1 : s_b + T + 1], both (B, T) long, with
    crop starts s_b drawn from a generator seeded by (seed, i): the batch is a pure function of (seed, i).
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1 or tokens.is_floating_point():
        raise InputError("random_windows needs a 1-D integer tensor of token ids")
    if block_size < 1 or batch_size < 1:
        raise ConfigError(f"block_size and batch_size must be ≥ 1, got {block_size} and {batch_size}")
    if len(tokens) < block_size + 1:
        raise InputError(f"the token stream has {len(tokens)} tokens, fewer than block_size + 1 = "
                         f"{block_size + 1}; use more text or a smaller block_size")
    tokens = tokens.long().cpu()
    offsets = torch.arange(block_size)

    def batch(i: int):
        rng = np.random.default_rng([seed, i])  # SeedSequence mixes (seed, i) into an independent stream
        starts = torch.from_numpy(rng.integers(0, len(tokens) - block_size, size=batch_size))
        idx = starts[:, None] + offsets[None, :]  # (B, T)
        return tokens[idx], tokens[idx + 1]

    return batch


def epoch_batches(examples, batch_size: int, collate: Callable[[list], Any], seed: int = 0,
                  drop_last: bool = False) -> "EpochBatches":
    """`EpochBatches(...)`: batch(i) = collate(the examples of mini-batch i), reshuffled every epoch."""
    return EpochBatches(examples, batch_size, collate, seed, drop_last)


class EpochBatches:
    """Mini-batches of a list of examples, reshuffled each epoch: batch(i) = collate(examples of batch i).

    Epoch e = i // batches_per_epoch uses the permutation drawn with seed + e, so batch(i) is a pure function of i.
    drop_last=True drops the last, smaller batch of each epoch.
    """

    def __init__(self, examples, batch_size: int, collate: Callable[[list], Any], seed: int = 0,
                 drop_last: bool = False):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
        n = len(examples)
        if n == 0 or (drop_last and n < batch_size):
            raise InputError(f"{n} examples cannot make a batch of {batch_size}; add examples or lower batch_size")
        self.examples, self.batch_size, self.collate, self.seed = examples, batch_size, collate, seed
        self.batches_per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)
        self._perm: tuple[int, torch.Tensor] | None = None

    def __call__(self, i: int):
        epoch, j = divmod(i, self.batches_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perm = (epoch, torch.randperm(len(self.examples), generator=g))
        picks = self._perm[1][j * self.batch_size:(j + 1) * self.batch_size]
        return self.collate([self.examples[k] for k in picks.tolist()])

    def __len__(self) -> int:
        return self.batches_per_epoch
