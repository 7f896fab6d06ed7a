"""Fine-tune a model you hold, in place, on a list of examples: the few lines every study repeats.

    train_in_place(model, tok, template, examples, steps, lr)  →  the loop's TrainResult

Every weight trains (apply a PEFT method to the model first to train an adapter instead), on the SFT loss over the
answer tokens (sft.py), with the hand-written loop (training/loop.py): `steps` optimizer steps of `batch_size`
examples, a linear warm-up over the first tenth and a cosine decay to lr/10 — or a constant lr (`constant_lr`),
for studies that train a few epochs at a time and measure in between. No checkpoints are written: the model object
is the result. Used by the knowledge study (compare/knowledge.py) and the risk studies (risks/).
"""

from __future__ import annotations

from typing import Sequence

from minift.errors import ConfigError
from minift.finetune.sft import encode_dataset, sft_collate, sft_loss_fn
from minift.training.batches import epoch_batches
from minift.training.config import TrainConfig
from minift.training.loop import TrainResult, train


def train_in_place(model, tok, template, examples: Sequence[dict], steps: int, lr: float, batch_size: int = 8,
                   seed: int = 0, progress: bool = False, desc: str = "fine-tune", device: str = "auto",
                   dtype: str = "auto", constant_lr: bool = False) -> TrainResult:
    """Train `model` (changed in place) for `steps` steps on `examples` ({instruction, input, output} records)."""
    enc, _ = encode_dataset(tok, examples, template, model.config.block_size)
    if not enc:
        raise ConfigError(f"{desc}: no example fits the context of {model.config.block_size} tokens")
    tcfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=0 if constant_lr else max(1, steps // 10),
                       min_lr=lr if constant_lr else None, weight_decay=0.0, eval_every=steps,
                       log_every=max(1, min(10, steps)), seed=seed, device=device, dtype=dtype,
                       save_checkpoints=False, progress=progress, desc=desc)
    model.train()
    result = train(model, sft_loss_fn, epoch_batches(enc, min(batch_size, len(enc)), sft_collate(tok.pad_id),
                                                     seed=seed), tcfg)
    model.eval()
    return result
