"""The training loop: one explicit loop, no framework. Pretraining, fine-tuning, PEFT and alignment all call it.

One optimizer step with K micro-batches (gradient accumulation):

    lr ← cosine_lr(step, …), written into every parameter group (times its optional "lr_scale")
    for k = 0 … K−1:       batch_k = train_batches(step·K + k)
                           (S_k, n_k) = loss_fn(model, batch_k)     S_k = Σ_{i∈k} ℓ_i  (summed per-token loss)
                           backward(S_k)                            p.grad accumulates Σ_k ∇S_k
    N = Σ_k n_k;  p.grad ← p.grad / N                               = ∇ of the big-batch token mean (1/N)·Σ_i ℓ_i
    clip to global norm ≤ grad_clip (log the norm before);  AdamW step;  grads ← None

Why sum, then divide by N (training-math note §4): nanoGPT divides each micro-batch *mean* by K. That is the
big-batch gradient only if every micro-batch holds the same number of supervised tokens; with prompt masking and
padding they do not, and the mean of means over-weights the tokens of short micro-batches. Example: one token with
loss 2.0 and, in another micro-batch, three tokens with loss 1.0: mean of means 1.5, token mean 1.25.
The logged train loss is the token mean Σ S_k / N too. N = 0 (nothing supervised) skips the step instead of
dividing by zero.

Resumable by construction: `train_batches` is a function of the global micro-batch index, so the data a step sees
depends only on the step; last.pt holds the weights, the optimizer moments, the step, the early-stopping counters
and the random-number-generator states (dropout), so a resumed run continues exactly as if never stopped.
Evaluation runs with the RNG state saved and restored, so evaluating more or less often changes nothing in training.

Data parallel (launched by torchrun, W processes): rank r trains on micro-batches (step·K + k)·W + r, the model is
wrapped in DistributedDataParallel, N and Σ S are summed over the ranks, and every rank ends the step with the
gradient Σ_all ∇S / N_global, the one a single process with grad_accum = W·K would compute. Only rank 0 writes
files. The mechanics and the maths are in minift/distributed.py; with one process none of it runs.

Throughput counts *input positions* (B·T of each batch's input tensor, padding included): the work the hardware
did. Supervised tokens (N) are fewer when prompts are masked.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from . import distributed
from . import train_state as ckpt
from .batches import EpochBatches, epoch_batches, lm_loss_fn, random_windows  # noqa: F401  (their old home)
from .device import autocast_context, pick_device
from .errors import ConfigError, InputError
from .optim import AdamW, clip_grad_norm, cosine_lr
from .optim import param_groups as default_param_groups
from .utils import seed_everything

LossFn = Callable[[torch.nn.Module, Any], "tuple[torch.Tensor, int | torch.Tensor]"]


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
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
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

    @property
    def floor_lr(self) -> float:
        # computed, not stored: dataclasses.replace(cfg, lr=…) must not carry an old lr/10 along
        return self.lr / 10 if self.min_lr is None else self.min_lr

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What `train` returns; `history` holds the same records as metrics.jsonl."""

    steps: int                      # optimizer steps completed (resumed runs included)
    best_val_loss: float | None
    final_train_loss: float | None  # token-mean loss of the last step that had supervised tokens
    stopped_early: bool
    stop_reason: str                # "max_steps", "early_stopping (…)", "already finished"
    tokens_seen: int                # input positions processed (B·T summed over micro-batches and ranks)
    elapsed_s: float
    tokens_per_s: float
    history: list[dict] = field(default_factory=list)  # the metrics.jsonl records
    best_step: int | None = None
    skipped_steps: int = 0          # steps with N = 0 supervised tokens


# -- the pieces of one step ------------------------------------------------------------------------------------

def move_to(batch, device: torch.device):
    """Move every tensor in a batch (a tensor, tuple, list or dict, nested) to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def batch_tokens(batch) -> int:
    """Input positions in a batch: numel of its input tensor (x of (x, y); input_ids/idx/x of a dict; else the
    first tensor found)."""
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    if isinstance(batch, dict):
        key = next((k for k in ("input_ids", "idx", "x") if k in batch), None)
        return batch_tokens(batch[key]) if key else batch_tokens(list(batch.values()))
    for item in batch if isinstance(batch, (list, tuple)) else ():
        if n := batch_tokens(item):
            return n
    return 0


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def accumulate_gradients(model: torch.nn.Module, loss_fn: LossFn, batches, device: torch.device | None = None,
                         params=None) -> tuple[float, int]:
    """Forward + backward each micro-batch's *summed* loss, then divide every gradient by N = Σ n_k.

    Afterwards p.grad = ∇_p (1/N)·Σ_i ℓ_i, the gradient of the token mean over all micro-batches together.
    Expects the gradients to be None (or zero) on entry. `params`: the tensors whose grads are divided (default:
    the model's). Returns (token-mean loss Σ S_k / N as a float, N); N = 0 gives (0.0, 0) and leaves the grads
    unscaled (the caller skips the step). A non-finite loss is returned as is for the caller to report.
    With `model` wrapped by `distributed.wrap` (W > 1 ranks), N and Σ S are summed over all ranks' micro-batches
    and the gradient, which DDP averaged over the ranks, is divided by N/W: each rank ends with Σ_all ∇S / N.
    """
    loss, n, _ = _accumulate(model, loss_fn, list(batches), device, params)
    return loss, n


def _accumulate(model, loss_fn: LossFn, batches: list, device, params) -> tuple[float, int, int]:
    """`accumulate_gradients`, also returning the input positions processed (all ranks together)."""
    device = device or _device_of(model)
    sums, n_total = [], 0
    for k, batch in enumerate(batches):
        with distributed.no_sync_unless(model, last=k == len(batches) - 1):  # DDP: all-reduce once, at the end
            with autocast_context(device):
                loss_sum, n = loss_fn(model, move_to(batch, device))
            if loss_sum.requires_grad:  # backward outside autocast, as PyTorch recommends
                loss_sum.backward()
        sums.append(loss_sum.detach().to(torch.promote_types(loss_sum.dtype, torch.float32)))
        n_total = n_total + n  # int or 0-d tensor: converted once below, so the GPU syncs once per step
    n_total, total = int(n_total), torch.stack(sums).sum().item()
    tokens, world = sum(batch_tokens(b) for b in batches), distributed.world()[1]
    if world > 1:  # the global N (and loss, positions): dividing by a rank's own n would be a mean of means
        total, n_total, tokens = distributed.all_reduce_sum(total, n_total, tokens, device=device)
        n_total, tokens = int(n_total), int(tokens)
    if n_total == 0:
        return 0.0, 0, tokens
    with torch.no_grad():
        for p in (model.parameters() if params is None else params):
            if p.grad is not None:
                p.grad.div_(n_total / world)  # DDP averaged over W ranks: (1/W)·Σ∇S / (N/W) = Σ∇S / N
    return total / n_total, n_total, tokens


@torch.no_grad()
def evaluate(model: torch.nn.Module, loss_fn: LossFn, batches, device: torch.device | None = None,
             shard: bool = False) -> float:
    """Token-weighted mean loss Σ S_b / Σ n_b over all `batches`, in eval mode (no dropout), without gradients.
    The model's train/eval mode is restored afterwards. shard=True under torchrun: rank r evaluates batches
    r, r + W, … and the sums are all-reduced, so every rank returns the same loss (one process: all batches)."""
    device = device or _device_of(model)
    rank, world = distributed.world() if shard else (0, 1)
    was_training = model.training
    model.eval()
    try:
        total, n_total = 0.0, 0
        for batch in itertools.islice(batches, rank, None, world):
            with autocast_context(device):
                loss_sum, n = loss_fn(model, move_to(batch, device))
            total, n_total = total + float(loss_sum), n_total + int(n)
    finally:
        model.train(was_training)
    if world > 1:
        total, n_total = distributed.all_reduce_sum(total, n_total, device=device)
    if n_total == 0:
        raise InputError("evaluation batches contain no supervised tokens (every target is -100); "
                         "check the validation data and its masking")
    return total / n_total


# -- the loop --------------------------------------------------------------------------------------------------

def train(model: torch.nn.Module, loss_fn: LossFn, train_batches: Callable[[int], Any], config: TrainConfig,
          val_batches=None, param_groups=None, out_dir=None, resume: bool = False) -> TrainResult:
    """Train `model` for config.max_steps optimizer steps (see the module docstring for one step).

    loss_fn(model, batch) → (S, n): summed per-token loss (scalar tensor) and number of supervised tokens.
    train_batches(i) → the batch for global micro-batch i = step·grad_accum + k (a pure function of i); under
        torchrun rank r of W takes i = (step·grad_accum + k)·W + r.
    val_batches: a list of batches evaluated in full every eval_every steps and at the end.
    param_groups: AdamW groups (default: `minift.optim.param_groups(model, config.weight_decay)`); a group's
        optional "lr_scale" multiplies the scheduled lr for that group.
    out_dir: receives metrics.jsonl, last.pt, best.pt (model state_dict at the best val loss) and loss.png.
    resume: continue from out_dir/last.pt. The model is left with its *last* weights; see `load_best`.
    """
    device = distributed.init_from_env(pick_device(config.device))  # torchrun: join the group, pick this rank's GPU
    rank, world = distributed.world()  # (0, 1) in one process
    model.to(device)
    seed_everything(config.seed + rank)  # each rank its own dropout stream (nanoGPT); rank 0 = one process
    groups = list(default_param_groups(model, config.weight_decay) if param_groups is None else param_groups)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    params = [p for g in groups for p in g["params"]]
    if not params:
        raise ConfigError("nothing to train: no parameter requires a gradient (did you freeze everything?)")
    opt = AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
    if config.patience and val_batches is None:
        raise ConfigError("patience (early stopping) needs val_batches to measure improvement on")
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ConfigError("resume=True needs the out_dir that holds last.pt")
    st = ckpt.RunState()
    if resume:
        st = ckpt.load_last(out / "last.pt", model, opt, config, rank, world)
    files = out if rank == 0 else None  # where metrics, checkpoints and the plot go: rank 0 only
    history = ckpt.start_metrics(out, st.step, write=rank == 0)
    net = distributed.wrap(model, device)  # the forward/backward module: DDP around `model` when W > 1
    done_before, K, clip = st.step, config.grad_accum, config.grad_clip or float("inf")
    stop_reason = "already finished" if st.step >= config.max_steps else "max_steps"
    if config.patience and st.bad_evals >= config.patience:
        stop_reason = f"early_stopping (no improvement in {st.bad_evals} evaluations)"

    def log(record: dict):
        history.append(record)
        if files is not None:
            ckpt.append_metrics(files, record)

    bar = tqdm(total=config.max_steps, initial=st.step, desc=config.desc, disable=not config.progress or rank > 0)
    t_start, window_tokens, window_time, norm, lr = time.perf_counter(), 0, 0.0, torch.tensor(0.0), config.lr
    net.train()
    opt.zero_grad(set_to_none=True)
    try:
        while stop_reason == "max_steps" and st.step < config.max_steps:
            t0 = time.perf_counter()
            lr = cosine_lr(st.step, config.lr, config.warmup_steps, config.max_steps, config.floor_lr)
            for g in opt.param_groups:  # a group may scale the schedule (e.g. LoRA+ gives B a larger lr)
                g["lr"] = lr * g.get("lr_scale", 1.0)
            micro = [train_batches((st.step * K + k) * world + rank) for k in range(K)]  # W = 1: step·K + k
            loss, n, tokens = _accumulate(net, loss_fn, micro, device, params)  # global loss, N, positions
            st.step += 1
            if n == 0:  # nothing supervised: no gradient to follow; never divide by zero
                st.skipped += 1
                if rank == 0:
                    warnings.warn(f"step {st.step}: no supervised tokens in the batch; step skipped", stacklevel=2)
            elif not math.isfinite(loss):
                raise InputError(f"step {st.step}: the training loss is {loss}; lower lr (now {lr:.3g}), "
                                 "check the data for empty or broken examples, or resume from last.pt")
            else:
                norm = clip_grad_norm(params, clip)  # pre-clip global norm
                opt.step()
                st.last_loss = loss
            opt.zero_grad(set_to_none=True)
            model.zero_grad(set_to_none=True)  # also parameters that require grad but are in no group
            dt = time.perf_counter() - t0
            st.tokens_seen, st.train_time = st.tokens_seen + tokens, st.train_time + dt
            window_tokens, window_time = window_tokens + tokens, window_time + dt
            bar.update(1)
            bar.set_postfix(loss=f"{st.last_loss:.4f}" if st.last_loss is not None else "-", lr=f"{lr:.2e}",
                            tok_s=f"{window_tokens / max(window_time, 1e-9):.0f}", refresh=False)
            if st.step % config.log_every == 0 and n > 0:
                log({"step": st.step, "train_loss": loss, "lr": lr, "grad_norm": float(norm),
                     "tokens_per_s": window_tokens / max(window_time, 1e-9),
                     "elapsed_s": st.elapsed + time.perf_counter() - t_start})
                window_tokens, window_time = 0, 0.0
            if st.step % config.eval_every == 0 or st.step == config.max_steps:
                if val_batches is not None:
                    with ckpt.rng_preserved():  # evaluation must not move the training RNG stream
                        val = evaluate(model, loss_fn, val_batches, device, shard=True)
                    log({"step": st.step, "val_loss": val})
                    if st.best_val is None or val < st.best_val:
                        st.best_val, st.best_step, st.bad_evals = val, st.step, 0
                        if files is not None and config.save_checkpoints:
                            ckpt.save_best(files / "best.pt", model)
                    else:
                        st.bad_evals += 1
                    if config.patience and st.bad_evals >= config.patience:
                        stop_reason = f"early_stopping (no improvement in {st.bad_evals} evaluations)"
                if out is not None and config.save_checkpoints:
                    rngs = distributed.all_gather_object(ckpt.rng_state())  # every rank's dropout stream
                    if files is not None:
                        ckpt.save_last(files / "last.pt", model, opt, config, st, time.perf_counter() - t_start,
                                       rngs)
    finally:
        bar.close()
    st.elapsed += time.perf_counter() - t_start
    if files is not None and st.step > done_before:
        ckpt.plot_losses(history, files / "loss.png", title=config.desc)
    return TrainResult(steps=st.step, best_val_loss=st.best_val, final_train_loss=st.last_loss,
                       stopped_early=stop_reason.startswith("early"), stop_reason=stop_reason,
                       tokens_seen=st.tokens_seen, elapsed_s=st.elapsed,
                       tokens_per_s=st.tokens_seen / max(st.train_time, 1e-9), history=history,
                       best_step=st.best_step, skipped_steps=st.skipped)


def load_best(model: torch.nn.Module, out_dir) -> torch.nn.Module:
    """Load out_dir/best.pt (the weights with the lowest validation loss) into `model` and return it."""
    return ckpt.load_weights(model, Path(out_dir) / "best.pt")
