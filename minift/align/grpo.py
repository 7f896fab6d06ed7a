"""GRPO and RLOO, the maths: advantages from a group of sampled answers, the clipped ratio, the KL estimator, and
the three ways to average a per-token loss (Shao et al., 2024, DeepSeekMath; Ahmadian et al., 2024, RLOO).

For a prompt q, sample G answers o_1 … o_G from the current policy and score each with a reward r_i. Then

    group advantage   Â_i = (r_i − mean_j r_j) / (std_j r_j + 1e-4)     std with Bessel's correction (n − 1)
                      Â_i = r_i − mean_j r_j                              Dr. GRPO (Liu et al., 2025): no std
    RLOO              Â_i = r_i − (Σ_{j≠i} r_j) / (G − 1)                 leave-one-out baseline
    ratio             ρ_{i,t} = π_θ(o_{i,t} | q, o_{i,<t}) / π_old(…)
    per token         ℓ_{i,t} = −min(ρ Â_i, clip(ρ, 1 − ε, 1 + ε) Â_i) + β · k3_{i,t}
    k3                k3 = e^{ℓ_ref} − ℓ_ref − 1,  ℓ_ref = log π_ref − log π_θ      ≥ 0, = 0 iff equal; unbiased
                      for KL(π_θ ‖ π_ref) when o ~ π_θ (Schulman, 2020, "Approximating KL divergence")

Every token of answer i carries the same Â_i. A group whose rewards are all equal has Â = 0 for all its answers:
it gives no gradient, and the share of such groups is logged (and the groups skipped). With one update per
sampled batch π_old = π_θ (detached), so ρ = 1 in value while ∇ρ = ∇log π: the loss VALUE is −mean(Â) (+ β·KL)
≈ 0 — it is centred per group — while its gradient is not. That is why a GRPO run logs its mean reward, not its
loss.

Aggregation over the answers of a batch (M_{i,t} = 1 on answer tokens, L_max the generation budget):

    "grpo"      (1/G) Σ_i (1/|o_i|) Σ_t ℓ_{i,t}         the paper's: a short answer's tokens weigh more
    "dapo"      Σ_{i,t} ℓ_{i,t} / Σ_i |o_i|             token mean over the batch (TRL's default)
    "dr_grpo"   Σ_{i,t} ℓ_{i,t} / (G · L_max)           a constant normaliser: no length bias at all
"""

from __future__ import annotations

import torch

AGGREGATIONS = ("grpo", "dapo", "dr_grpo")


def group_advantages(rewards: torch.Tensor, group: int, scale_by_std: bool = True, eps: float = 1e-4
                     ) -> torch.Tensor:
    """(B·G,) rewards, consecutive blocks of `group` answers per prompt → (B·G,) advantages."""
    r = rewards.view(-1, group)
    centred = r - r.mean(dim=1, keepdim=True)
    if scale_by_std:
        centred = centred / (r.std(dim=1, keepdim=True, unbiased=True) + eps)
    return centred.reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """Â_i = r_i − mean of the other G − 1 rewards of its group."""
    r = rewards.view(-1, group)
    return (r - (r.sum(dim=1, keepdim=True) - r) / (group - 1)).reshape(-1)


def zero_spread(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """(B,) True for a group whose rewards are all equal (no learning signal)."""
    r = rewards.view(-1, group)
    return (r == r[:, :1]).all(dim=1)


def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """e^{ℓ} − ℓ − 1 with ℓ = log π_ref − log π_θ, per token."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def token_losses(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, ref_logp: torch.Tensor | None = None,
                 beta: float = 0.0, clip_eps: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """(ℓ (N, T), clipped (N, T) bool): the clipped surrogate (+ β·k3) per token; adv is (N,) per answer."""
    ratio = torch.exp(logp - old_logp)
    a = adv[:, None]
    unclipped, clipped = ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a
    loss = -torch.minimum(unclipped, clipped)
    if ref_logp is not None and beta:
        loss = loss + beta * k3(logp, ref_logp)
    return loss, clipped < unclipped


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: str, group: int, max_len: int) -> torch.Tensor:
    """Average per-token losses (N, T) over the answer tokens (mask (N, T)) as `mode` says (module docstring).
    For "grpo" and "dr_grpo" N is B·G answers; the batch's B groups are averaged as well."""
    m = mask.to(loss.dtype)
    if mode == "grpo":
        return ((loss * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)).mean()
    if mode == "dapo":
        return (loss * m).sum() / m.sum().clamp(min=1)
    if mode == "dr_grpo":
        return (loss * m).sum() / (loss.shape[0] * max_len)
    raise ValueError(f"unknown aggregation {mode!r}; use one of {AGGREGATIONS}")
