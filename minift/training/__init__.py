"""Stage 3, training: one explicit loop that pretraining, fine-tuning and every later stage call.

    optim.py        hand-written AdamW, decay groups, warmup + cosine schedule, global-norm clipping
    config.py       TrainConfig: what defines a training run (pure data)
    loop.py         the loop: exact gradient accumulation, clipping, schedule, validation, early stopping, resume
    batches.py      where batches come from (random windows, shuffled epochs) and the next-token loss
    checkpoints.py  last.pt / best.pt, RNG state, metrics.jsonl and loss.png
    device.py       CPU / CUDA / MPS, precision (bf16 autocast where it pays), threads, and seeding
    distributed.py  data parallelism under torchrun (DDP, the global token count)
    costs.py        optimizer-state bytes, file sizes, peak memory

Names load on first use (minift/lazy.py): `minift.training.config` is read by the command line without torch.
"""

from typing import TYPE_CHECKING

from minift.lazy import lazy_exports

lazy_exports(globals(), {
    **dict.fromkeys(["AdamW", "clip_grad_norm", "cosine_lr", "param_groups"], "minift.training.optim"),
    "TrainConfig": "minift.training.config",
    **dict.fromkeys(["TrainResult", "train", "evaluate", "load_best", "accumulate_gradients"],
                    "minift.training.loop"),
    **dict.fromkeys(["EpochBatches", "epoch_batches", "lm_loss_fn", "random_windows"], "minift.training.batches"),
    **dict.fromkeys(["pick_device", "autocast_context", "describe_device", "seed_everything", "use_threads",
                     "resolve_precision", "cpu_has_bf16"],
                    "minift.training.device"),
})

if TYPE_CHECKING:
    from minift.training.batches import EpochBatches, epoch_batches, lm_loss_fn, random_windows
    from minift.training.config import TrainConfig
    from minift.training.device import (autocast_context, cpu_has_bf16, describe_device, pick_device,
                                        resolve_precision, seed_everything, use_threads)
    from minift.training.loop import TrainResult, accumulate_gradients, evaluate, load_best, train
    from minift.training.optim import AdamW, clip_grad_norm, cosine_lr, param_groups
