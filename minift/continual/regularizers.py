"""What keeps a model from forgetting while it learns an update: EWC, L2-SP and replay, written out.

EWC (Kirkpatrick et al., 2017). After learning task A, remember where each weight was (θ*) and how much the model's
predictions depend on it (the diagonal Fisher information F); while learning B, penalise moving the weights that
mattered:

    L(θ) = L_B(θ) + Σ_i (λ/2) · F_i · (θ_i − θ*_i)²             gradient of the penalty: λ F ⊙ (θ − θ*)
    F_i  = (1/N) Σ_n (∂ log p(y_n | x_n) / ∂θ_i)²                one example (sequence) at a time, squared, averaged

minift's estimate is the EMPIRICAL Fisher: y_n are the data's own labels (here: the tokens of A's examples), not
labels sampled from the model as in the textbook "true" Fisher — cheaper, deterministic, and the usual choice in
practice; an example's log p is the sum over its supervised tokens. Only trainable parameters get an F (a LoRA's θ*
is its value when A ended). The ½ is kept: λ is the paper's λ.

L2-SP (Li, Grandvalet & Davoine, 2018): pull the weights towards the pretrained start θ⁰ — EWC with F ≡ 1:

    Ω(θ) = (α/2) · ‖θ − θ⁰‖²        added to the loss (so AdamW normalises its gradient like every other term)

Replay (rehearsal): a share p of the training examples is drawn from a pool of earlier examples instead of the new
data (`mix_replay`: exactly round(p·n) of n); about 1 % of old data already protects much (Scialom et al., 2022).
"""

from __future__ import annotations

import random
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn


def ewc_penalty(params: dict[str, torch.Tensor], anchors: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor],
                lam: float) -> torch.Tensor:
    """Σ_i (λ/2) F_i (θ_i − θ*_i)² over the named parameters that have a Fisher estimate."""
    total = sum(((fisher[n] * (p - anchors[n]) ** 2).sum() for n, p in params.items() if n in fisher),
                torch.zeros(()))
    return lam / 2 * total


def l2sp_penalty(params: dict[str, torch.Tensor], start: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """(α/2) Σ ‖θ − θ⁰‖² over the named parameters that have a starting value."""
    total = sum((((p - start[n]) ** 2).sum() for n, p in params.items() if n in start), torch.zeros(()))
    return alpha / 2 * total


def diagonal_fisher(model: nn.Module, examples: Iterable, log_likelihood: Callable[[nn.Module, object], torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """The empirical diagonal Fisher of the trainable parameters: the mean over examples of (∂ log p / ∂θ)², with
    `log_likelihood(model, example)` → a scalar log p(y | x) of ONE example (per-example gradients, no batching:
    the square of a batch's summed gradient is not the sum of the squares)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for ex in examples:
        model.zero_grad(set_to_none=True)
        log_likelihood(model, ex).backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
        count += 1
    model.zero_grad(set_to_none=True)
    if count == 0:
        raise ValueError("the Fisher needs at least one example")
    return {n: f / count for n, f in fisher.items()}


def mix_replay(new: Sequence, old: Sequence, p: float, n: int, seed: int = 0) -> list:
    """n training examples, exactly round(p·n) of them from `old` and the rest from `new`, in a seeded random order.
    Each side is drawn by walking a shuffled copy of it (again when it runs out), so every new example is used before
    any is repeated, and likewise for the old. p = 0 gives new examples only."""
    if not 0 <= p <= 1:
        raise ValueError(f"the replay share must be in [0, 1], got {p}")
    n_old = round(p * n)
    if n_old and not old:
        raise ValueError("replay needs a non-empty pool of earlier examples")
    if n - n_old and not new:
        raise ValueError("there are no new examples to mix with the replayed ones")
    r = random.Random(seed)
    mixed = _walk(new, n - n_old, r) + _walk(old, n_old, r)
    r.shuffle(mixed)
    return mixed


def _walk(pool: Sequence, n: int, r: random.Random) -> list:
    out: list = []
    while len(out) < n:
        order = list(pool)
        r.shuffle(order)
        out += order[:n - len(out)]
    return out
