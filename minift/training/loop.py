"""The training loop: one explicit loop, no framework. Pretraining, fine-tuning, PEFT and alignment all call it.

One optimizer step with K micro-batches (gradient accumulation):

    lr ← cosine_lr(step, …), written into every parameter group (times its optional "lr_scale")
    for k = 0 … K−1:       batch_k = train_batches(step·K + k)
                           (S_k, n_k) = loss_fn(model, batch_k)     S_k = Σ_{i∈k} ℓ_i  (summed per-token loss)
                           backward(S_k)                            p.grad accumulates Σ_k ∇S_k
    N = Σ_k n_k;  p.grad ← p.grad / N                               = ∇ of the big-batch token mean (1/N)·Σ_i ℓ_i
    clip to global norm ≤ grad_clip (log the norm before);  AdamW step;  grads ← None

Why sum, then divide by N (docs/training.md, "Exact gradient accumulation"): nanoGPT divides each micro-batch *mean* by K. That is the
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
files. The mechanics and the maths are in minift/training/distributed.py; with one process none of it runs.

Throughput counts *input positions* (B·T of each batch's input tensor, padding included): the work the hardware
did. Supervised tokens (N) are fewer when prompts are masked.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from minift.training import distributed
from minift.training import checkpoints as ckpt
from minift.training.device import autocast_context, pick_device, resolve_precision
from minift.errors import ConfigError, InputError
from minift.training.config import TrainConfig
from minift.training.optim import AdamW, clip_grad_norm, cosine_lr
from minift.training.optim import param_groups as default_param_groups
from minift.training.device import seed_everything

LossFn = Callable[[torch.nn.Module, Any], "tuple[torch.Tensor, int | torch.Tensor]"]


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
                         params=None, precision: str = "auto") -> tuple[float, int, int]:
    """Forward + backward each micro-batch's *summed* loss, then divide every gradient by N = Σ n_k.

    Afterwards p.grad = ∇_p (1/N)·Σ_i ℓ_i, the gradient of the token mean over all micro-batches together.
    Expects the gradients to be None (or zero) on entry. `params`: the tensors whose grads are divided (default:
    the model's). precision: the forward pass's (device.resolve_precision). Returns (token-mean loss Σ S_k / N as a float, N, input positions processed); N = 0 gives
    (0.0, 0, positions) and leaves the grads unscaled (the caller skips the step). A non-finite loss is returned
    as is for the caller to report.
    With `model` wrapped by `distributed.wrap` (W > 1 ranks), N and Σ S are summed over all ranks' micro-batches
    and the gradient, which DDP averaged over the ranks, is divided by N/W: each rank ends with Σ_all ∇S / N.
    """
    device, batches = device or _device_of(model), list(batches)
    sums, n_total = [], 0
    for k, batch in enumerate(batches):
        with distributed.no_sync_unless(model, last=k == len(batches) - 1):  # DDP: all-reduce once, at the end
            with autocast_context(device, precision):
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
             shard: bool = False, precision: str = "auto") -> float:
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
            with autocast_context(device, precision):
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
    param_groups: AdamW groups (default: `minift.training.optim.param_groups(model, config.weight_decay)`); a
        group's optional "lr_scale" multiplies the scheduled lr for that group.
    out_dir: receives metrics.jsonl, last.pt, best.pt (model state_dict at the best val loss) and loss.png.
    resume: continue from out_dir/last.pt. The model is left with its *last* weights; see `load_best`.
    """
    run = _Run(model, config, val_batches, param_groups, out_dir, resume)  # device, optimizer, resumed state
    net, opt, st, K = run.net, run.opt, run.state, config.grad_accum
    clip = config.grad_clip or float("inf")
    rank, world = run.rank, run.world
    try:
        while run.stop_reason == "max_steps" and st.step < config.max_steps:
            t0 = time.perf_counter()
            lr = cosine_lr(st.step, config.lr, config.warmup_steps, config.max_steps, config.floor_lr)
            for g in opt.param_groups:  # a group may scale the schedule (e.g. LoRA+ gives B a larger lr)
                g["lr"] = lr * g.get("lr_scale", 1.0)
            micro = [train_batches((st.step * K + k) * world + rank) for k in range(K)]  # W = 1: step·K + k
            loss, n, tokens = accumulate_gradients(net, loss_fn, micro, run.device, run.params,
                                                   config.dtype)  # global loss, N
            st.step += 1
            if n == 0:  # nothing supervised: no gradient to follow; never divide by zero
                run.skip_step()
            elif not math.isfinite(loss):
                raise InputError(f"step {st.step}: the training loss is {loss}; lower lr (now {lr:.3g}), "
                                 "check the data for empty or broken examples, or resume from last.pt")
            else:
                run.grad_norm = clip_grad_norm(run.params, clip)  # pre-clip global norm
                opt.step()
                st.last_loss = loss
            opt.zero_grad(set_to_none=True)
            model.zero_grad(set_to_none=True)  # also parameters that require grad but are in no group
            run.after_step(loss, n, tokens, lr, time.perf_counter() - t0)
            if st.step % config.eval_every == 0 or st.step == config.max_steps:
                run.validate_and_checkpoint(loss_fn)
    finally:
        run.bar.close()
    return run.finish()


class _Run:
    """The bookkeeping around the step, so that `train` reads as the step it documents: the device and the
    process group, the optimizer, the state resumed from last.pt, the progress bar, metrics.jsonl, validation with
    early stopping, and the checkpoints. Under torchrun only rank 0 writes files or shows the bar."""

    def __init__(self, model, config: TrainConfig, val_batches, param_groups, out_dir, resume: bool):
        self.device = distributed.init_from_env(pick_device(config.device))  # torchrun: this rank's GPU
        resolve_precision(self.device, config.dtype)  # bf16 where it cannot run: a clear error before any step
        self.rank, self.world = distributed.world()  # (0, 1) in one process
        model.to(self.device)
        seed_everything(config.seed + self.rank)  # each rank its own dropout stream (nanoGPT); rank 0 = one process
        groups = list(default_param_groups(model, config.weight_decay) if param_groups is None else param_groups)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.params = [p for g in groups for p in g["params"]]
        if not self.params:
            raise ConfigError("nothing to train: no parameter requires a gradient (did you freeze everything?)")
        self.opt = AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
        if config.patience and val_batches is None:
            raise ConfigError("patience (early stopping) needs val_batches to measure improvement on")
        self.out = Path(out_dir) if out_dir is not None else None
        if resume and self.out is None:
            raise ConfigError("resume=True needs the out_dir that holds last.pt")
        self.state = ckpt.RunState()
        if resume:
            self.state = ckpt.load_last(self.out / "last.pt", model, self.opt, config, self.rank, self.world)
        self.files = self.out if self.rank == 0 else None  # where metrics, checkpoints and the plot go
        self.history = ckpt.start_metrics(self.out, self.state.step, write=self.rank == 0)
        self.net = distributed.wrap(model, self.device)  # the forward/backward module: DDP around `model` if W > 1
        self.model, self.config, self.val_batches = model, config, val_batches
        self.done_before = self.state.step
        self.stop_reason = "already finished" if self.state.step >= config.max_steps else "max_steps"
        if config.patience and self.state.bad_evals >= config.patience:
            self.stop_reason = f"early_stopping (no improvement in {self.state.bad_evals} evaluations)"
        self.bar = tqdm(total=config.max_steps, initial=self.state.step, desc=config.desc,
                        disable=not config.progress or self.rank > 0)
        self.t_start, self.window_tokens, self.window_time = time.perf_counter(), 0, 0.0
        self.grad_norm = torch.tensor(0.0)
        self.net.train()
        self.opt.zero_grad(set_to_none=True)

    def log(self, record: dict) -> None:
        self.history.append(record)
        if self.files is not None:
            ckpt.append_metrics(self.files, record)

    def skip_step(self) -> None:
        self.state.skipped += 1
        if self.rank == 0:
            warnings.warn(f"step {self.state.step}: nothing to learn from in the batch (no supervised token; in RL, "
                          "no group whose rewards differ); step skipped", stacklevel=3)

    def after_step(self, loss: float, n: int, tokens: int, lr: float, dt: float) -> None:
        """Counters, the progress bar, and a metrics.jsonl record every log_every steps."""
        st = self.state
        st.tokens_seen, st.train_time = st.tokens_seen + tokens, st.train_time + dt
        self.window_tokens, self.window_time = self.window_tokens + tokens, self.window_time + dt
        tok_s = self.window_tokens / max(self.window_time, 1e-9)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{st.last_loss:.4f}" if st.last_loss is not None else "-", lr=f"{lr:.2e}",
                             tok_s=f"{tok_s:.0f}", refresh=False)
        if st.step % self.config.log_every == 0 and n > 0:
            self.log({"step": st.step, "train_loss": loss, "lr": lr, "grad_norm": float(self.grad_norm),
                      "tokens_per_s": tok_s, "elapsed_s": st.elapsed + time.perf_counter() - self.t_start})
            self.window_tokens, self.window_time = 0, 0.0

    def validate_and_checkpoint(self, loss_fn: LossFn) -> None:
        """Validation loss (best.pt when it improves; early stopping after `patience` evaluations without), then
        last.pt with everything needed to resume exactly."""
        st, config = self.state, self.config
        if self.val_batches is not None:
            with ckpt.rng_preserved():  # evaluation must not move the training RNG stream
                val = evaluate(self.model, loss_fn, self.val_batches, self.device, shard=True,
                               precision=self.config.dtype)
            self.log({"step": st.step, "val_loss": val})
            if st.best_val is None or val < st.best_val:
                st.best_val, st.best_step, st.bad_evals = val, st.step, 0
                if self.files is not None and config.save_checkpoints:
                    ckpt.save_best(self.files / "best.pt", self.model)
            else:
                st.bad_evals += 1
            if config.patience and st.bad_evals >= config.patience:
                self.stop_reason = f"early_stopping (no improvement in {st.bad_evals} evaluations)"
        if self.out is not None and config.save_checkpoints:
            rngs = distributed.all_gather_object(ckpt.rng_state())  # every rank's dropout stream
            if self.files is not None:
                ckpt.save_last(self.files / "last.pt", self.model, self.opt, config, st,
                               time.perf_counter() - self.t_start, rngs)

    def finish(self) -> TrainResult:
        st = self.state
        st.elapsed += time.perf_counter() - self.t_start
        if self.files is not None and st.step > self.done_before:
            ckpt.plot_losses(self.history, self.files / "loss.png", title=self.config.desc)
        return TrainResult(steps=st.step, best_val_loss=st.best_val, final_train_loss=st.last_loss,
                           stopped_early=self.stop_reason.startswith("early"), stop_reason=self.stop_reason,
                           tokens_seen=st.tokens_seen, elapsed_s=st.elapsed,
                           tokens_per_s=st.tokens_seen / max(st.train_time, 1e-9), history=self.history,
                           best_step=st.best_step, skipped_steps=st.skipped)


def load_best(model: torch.nn.Module, out_dir) -> torch.nn.Module:
    """Load out_dir/best.pt (the weights with the lowest validation loss) into `model` and return it."""
    return ckpt.load_weights(model, Path(out_dir) / "best.pt")
