"""Optimisation by hand: AdamW, which parameters to decay, the learning-rate schedule, gradient clipping.

One training step of minift, after all micro-batch backwards have filled `p.grad`, is

    N = clip_grad_norm(params, max_norm)         # rescale all grads together if their global norm is too big
    for g in opt.param_groups: g["lr"] = cosine_lr(step, max_lr, warmup, total, min_lr)
    opt.step(); opt.zero_grad(set_to_none=True)

AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019). For every parameter θ with
gradient g, at its t-th update (t counts that parameter's own updates, starting at 1):

    m_t = β₁·m_{t−1} + (1 − β₁)·g                 first moment (running mean of g)
    v_t = β₂·v_{t−1} + (1 − β₂)·g²                second moment (running mean of g², elementwise)
    m̂ = m_t / (1 − β₁ᵗ),  v̂ = v_t / (1 − β₂ᵗ)     bias correction: m and v start at 0
    θ_t = θ_{t−1}·(1 − lr·λ) − lr · m̂ / (√v̂ + ε)

The decay is *decoupled*: θ shrinks by the factor (1 − lr·λ) directly instead of λθ being added to g (Adam + L2),
where it would be divided by √v̂ and so weakened for exactly the coordinates with large gradients.
The paper writes θ_t = θ_{t−1} − η_t·(α·m̂/(√v̂ + ε) + λ_paper·θ_{t−1}) with α the base lr and η_t the schedule
multiplier; there the decay is scaled by η_t but not by α. torch (and minift) scale it by lr = α·η_t, so
λ_torch = λ_paper / α. A schedule therefore shrinks the decay together with the step.

The code performs exactly the operations of `torch.optim.AdamW` in the same order (lerp for m; v·β₂ then + g²·(1−β₂);
(√v / √(1−β₂ᵗ)) + ε; θ += −(lr/(1−β₁ᵗ))·m/denom), so in float32 the two agree bit for bit, not just to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from minift.errors import ConfigError

__all__ = ["AdamW", "param_groups", "cosine_lr", "clip_grad_norm"]


class AdamW(torch.optim.Optimizer):
    """AdamW with torch's arguments, defaults, order of operations and state layout.

    Args: params (tensors or param-group dicts), lr, betas (β₁, β₂), eps (ε), weight_decay (λ, torch convention,
    see the module docstring), amsgrad (divide by the running maximum of v instead of v), maximize (ascend),
    foreach: True runs each line of the update as one vectorised `torch._foreach_*` call over all tensors of a
    device and dtype (`_update_foreach`); False runs the same lines one parameter at a time (`_update_one`, the
    easier read; same numbers bit for bit). None (default), like torch: foreach on GPUs, where launching a kernel
    per tensor per operation costs more than the arithmetic; the loop on CPU, where finishing one tensor before
    starting the next keeps it in cache and is faster than sweeping the whole model once per operation.

    State per parameter, created at its first update: step (int t), exp_avg (m), exp_avg_sq (v), and with amsgrad
    max_exp_avg_sq (the running max of the raw v). A parameter whose `.grad` is None is skipped entirely: no decay,
    no step count. That matters for fine-tuning: a frozen base weight must not be shrunk by decay.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        # Same checks as torch; ConfigError is a ValueError, so `except ValueError` still works.
        if not 0.0 <= lr:
            raise ConfigError(f"AdamW: invalid learning rate {lr}; it must be >= 0")
        if not 0.0 <= eps:
            raise ConfigError(f"AdamW: invalid eps {eps}; it must be >= 0")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ConfigError(f"AdamW: invalid betas[{i}] = {beta}; each beta must be in [0, 1)")
        if not 0.0 <= weight_decay:
            raise ConfigError(f"AdamW: invalid weight_decay {weight_decay}; it must be >= 0")
        defaults = dict(lr=lr, betas=(float(betas[0]), float(betas[1])), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _advance(self, p: torch.Tensor, amsgrad: bool) -> dict:
        """Create p's state (zero moments) at its first update, add 1 to its step t, return the state."""
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        # int() also accepts the 0-d tensor step of a state dict saved by torch.optim.AdamW.
        state["step"] = int(state["step"]) + 1
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every parameter that has a gradient. `closure` re-evaluates the loss (optional)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise ConfigError("AdamW does not support sparse gradients; use nn.Embedding(sparse=False)")
            # foreach kernels need every tensor of one call on one device (and one dtype for the fast CUDA path).
            buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
            for p in params:
                buckets.setdefault((p.device, p.dtype), []).append(p)
            for (device, _), bucket in buckets.items():
                foreach = group["foreach"] if group["foreach"] is not None else device.type != "cpu"
                if foreach:
                    self._update_foreach(group, bucket)
                else:
                    for p in bucket:
                        self._update_one(group, p)
        return loss

    def _update_one(self, group: dict, p: torch.Tensor) -> None:
        """The reference path: the update of the module docstring for one parameter, written out op by op."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        g = -p.grad if group["maximize"] else p.grad
        state = self._advance(p, group["amsgrad"])
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        if wd != 0:
            p.mul_(1 - lr * wd)                        # decoupled decay, on θ_{t−1}, with the current lr
        m.lerp_(g, 1 - beta1)                          # m + (1−β₁)(g − m) = β₁m + (1−β₁)g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # β₂v + (1−β₂)g²
        step_size = lr / (1 - beta1**t)                # lr / c₁ folds m̂ = m/c₁ into the step
        c2_sqrt = (1 - beta2**t) ** 0.5
        if group["amsgrad"]:
            # torch keeps the max of the raw v and bias-corrects it with the current t.
            torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = (v.sqrt() / c2_sqrt).add_(eps)         # √v̂ + ε: ε after the bias-corrected root
        p.addcdiv_(m, denom, value=-step_size)

    def _update_foreach(self, group: dict, params: list[torch.Tensor]) -> None:
        """The same maths as `_update_one`, each line one vectorised call over all `params` (one device, dtype)."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        grads = [p.grad for p in params]
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        states = [self._advance(p, group["amsgrad"]) for p in params]
        m = [s["exp_avg"] for s in states]
        v = [s["exp_avg_sq"] for s in states]
        if wd != 0:
            torch._foreach_mul_(params, 1 - lr * wd)
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        # Parameters can have different t (one may have had no grad for a while), so these are per-tensor lists.
        neg_step_sizes = [-(lr / (1 - beta1 ** s["step"])) for s in states]
        c2_sqrts = [(1 - beta2 ** s["step"]) ** 0.5 for s in states]
        if group["amsgrad"]:
            v_max = [s["max_exp_avg_sq"] for s in states]
            torch._foreach_maximum_(v_max, v)
            v = v_max
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, c2_sqrts)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, m, denom, neg_step_sizes)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split the trainable parameters of `model` into a decayed and a non-decayed AdamW group.

    Rule (nanoGPT's): a trainable tensor with dim ≥ 2 — every matmul weight and the embeddings — gets
    `weight_decay`; a tensor with dim < 2 — biases, LayerNorm gains and shifts, 1-D adapter vectors such as the
    DoRA magnitude or (IA)³ scales — gets 0, because shrinking a scale or shift towards 0 has no regularising
    meaning. A parameter carrying the attribute `no_decay = True` is never decayed, whatever its shape (e.g. the
    unconstrained matrix behind an orthogonal parametrisation). Frozen parameters (requires_grad False) are in no
    group. A tied matrix (lm_head.weight is tok_emb.weight) appears once: `named_parameters` removes duplicates.
    Empty groups are dropped. Returns [{"params": [...], "weight_decay": λ}, {"params": [...], "weight_decay": 0.0}].
    """
    if weight_decay < 0:
        raise ConfigError(f"param_groups: weight_decay must be >= 0, got {weight_decay}")
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.dim() >= 2 and not getattr(p, "no_decay", False):
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def cosine_lr(step: int, max_lr: float, warmup_steps: int, total_steps: int, min_lr: float) -> float:
    """Linear warmup, then cosine decay to a floor (nanoGPT's `get_lr`); the lr for optimizer step `step` (0-based).

        step < W:          max_lr · (step + 1) / (W + 1)        (never 0, reaches W/(W+1)·max_lr at step W−1)
        W ≤ step < D:      min_lr + ½(1 + cos(π·r))·(max_lr − min_lr),  r = (step − W)/(D − W)
        step ≥ D:          min_lr

    W = warmup_steps, D = total_steps (the decay horizon). At step = D the cosine already equals min_lr, so
    "≥ D" changes nothing there and avoids r = 0/0 when D ≤ W (then: warmup, then min_lr). W = 0: no warmup.
    """
    if warmup_steps < 0 or total_steps < 0 or step < 0:
        raise ConfigError(f"cosine_lr: step ({step}), warmup_steps ({warmup_steps}) and total_steps "
                          f"({total_steps}) must all be >= 0")
    if not 0 <= min_lr <= max_lr:
        raise ConfigError(f"cosine_lr: need 0 <= min_lr <= max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= total_steps:
        return min_lr
    r = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (max_lr - min_lr)


def clip_grad_norm(params: Iterable[torch.Tensor] | torch.Tensor, max_norm: float) -> torch.Tensor:
    """Rescale all gradients together so that their global L2 norm is at most `max_norm`; return the norm before.

        N = √(Σ_i ‖g_i‖²) = ‖(‖g₁‖, …, ‖g_k‖)‖   over parameters whose grad is not None
        g_i ← g_i · min(1, max_norm / (N + 1e-6))

    One factor for all gradients keeps the update's direction; only its length is capped. The multiply always
    happens (factor 1 when N is small), as in `torch.nn.utils.clip_grad_norm_`: a branch on N would force the
    GPU to report N to Python every step. A non-finite N is returned as is (log it; the step will be bad).
    Call after all micro-batches of an accumulated step, never per micro-batch.
    """
    if max_norm <= 0:
        raise ConfigError(f"clip_grad_norm: max_norm must be > 0, got {max_norm}")
    if isinstance(params, torch.Tensor):
        params = [params]
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for g in grads:
        buckets.setdefault((g.device, g.dtype), []).append(g)
    norms = [n for bucket in buckets.values() for n in torch._foreach_norm(bucket, 2.0)]  # ‖g_i‖ per tensor
    device = grads[0].device
    total = torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), 2.0)
    factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for (dev, _), bucket in buckets.items():
        torch._foreach_mul_(bucket, factor.to(dev))
    return total
