"""Preference losses, written out: the DPO family and the Bradley–Terry reward-model loss.

Notation, per pair (prompt x, chosen y_c, rejected y_r), with summed response log-probs (logprobs.py):

    h   = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))     how much more the policy prefers y_c than
                                                                            the reference does
    r̂   = β (log π(y) − log π_ref(y))                                        DPO's implicit reward of a response
    ā   = log π(y) / |y|                                                     mean token log-prob (no reference)

    dpo      −log σ(βh) = softplus(−βh)                            Rafailov et al., 2023
    cdpo     −(1−ε) log σ(βh) − ε log σ(−βh)                       conservative DPO: labels flipped with prob. ε
    robust   [−(1−ε) log σ(βh) + ε log σ(−βh)] / (1 − 2ε)          unbiased under label noise ε < ½ (Chowdhury 2024)
    ipo      (h − 1/(2β))²                                         Azar et al., 2023: a target margin, no saturation
    hinge    max(0, 1 − βh)                                         SLiC (Zhao et al., 2023)
    simpo    −log σ(β(ā_c − ā_r) − γ)                              Meng et al., 2024: no reference, length-normalised
    orpo     NLL(y_c) − λ log σ(lo(ā_c) − lo(ā_r)),  lo(a) = a − log(1 − eᵃ)     Hong et al., 2024: log-odds
    cpo      −log σ(β(log π(y_c) − log π(y_r))) + α NLL(y_c)        Xu et al., 2024: DPO without the reference
    kto      desirable  λ_D (1 − σ(β(r − z₀))),  undesirable λ_U (1 − σ(β(z₀ − r)))     Ethayarajh et al., 2024
             r = log π(y) − log π_ref(y), z₀ = max(0, KL estimate), no gradient through z₀

Why these forms. ∂(dpo)/∂h = −β σ(−βh): the gradient is largest when the policy ranks the pair wrongly and fades as
it ranks it right, and it pushes log π(y_c) up and log π(y_r) down by the same amount — nothing keeps log π(y_c)
itself from falling, which is why "the chosen reward goes down" while the margin grows (docs/alignment.md). At the
start the policy IS the reference, h = 0 and every DPO-style loss equals ln 2 exactly (only with dropout off).

Everything here is a pure function of log-probs: the tests check each against hand-computed float64 vectors.
Computed with softplus / logsigmoid, never log(sigmoid(·)), which underflows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# the losses that compare policy and reference (need reference log-probs), and those that use mean log-probs
NEEDS_REFERENCE = ("dpo", "cdpo", "robust", "ipo", "hinge", "kto")
AVERAGED = ("simpo", "orpo")


def margin_h(pc, pr, rc, rr) -> torch.Tensor:
    """h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))."""
    return (pc - rc) - (pr - rr)


def dpo_loss(h: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    return F.softplus(-beta * h)


def cdpo_loss(h: torch.Tensor, beta: float = 0.1, eps: float = 0.1) -> torch.Tensor:
    return (1 - eps) * F.softplus(-beta * h) + eps * F.softplus(beta * h)


def robust_loss(h: torch.Tensor, beta: float = 0.1, eps: float = 0.1) -> torch.Tensor:
    return ((1 - eps) * F.softplus(-beta * h) - eps * F.softplus(beta * h)) / (1 - 2 * eps)


def ipo_loss(h: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    return (h - 1 / (2 * beta)) ** 2


def hinge_loss(h: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    return torch.relu(1 - beta * h)


def simpo_loss(avg_c: torch.Tensor, avg_r: torch.Tensor, beta: float = 2.5, gamma: float = 1.375) -> torch.Tensor:
    return F.softplus(-(beta * (avg_c - avg_r) - gamma))


def log_odds(avg: torch.Tensor) -> torch.Tensor:
    """lo(a) = log(p / (1 − p)) with p = eᵃ: a − log(1 − eᵃ), computed as a − log(−expm1(a))."""
    return avg - torch.log(-torch.expm1(avg))


def orpo_odds_term(avg_c: torch.Tensor, avg_r: torch.Tensor) -> torch.Tensor:
    """−log σ(lo(ā_c) − lo(ā_r)): ORPO's preference term (its loss adds the chosen NLL and weights this by λ)."""
    return F.softplus(-(log_odds(avg_c) - log_odds(avg_r)))


def cpo_term(pc: torch.Tensor, pr: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """−log σ(β(log π(y_c) − log π(y_r))): CPO's preference term (its loss adds α · NLL(y_c))."""
    return F.softplus(-beta * (pc - pr))


def kto_loss(r: torch.Tensor, desirable: torch.Tensor, z0: torch.Tensor | float, beta: float = 0.1,
             lambda_d: float = 1.0, lambda_u: float = 1.0) -> torch.Tensor:
    """Per example: λ_D(1 − σ(β(r − z₀))) if desirable else λ_U(1 − σ(β(z₀ − r))); z₀ carries no gradient."""
    z0 = torch.as_tensor(z0, dtype=r.dtype, device=r.device).detach().clamp(min=0)
    good = lambda_d * (1 - torch.sigmoid(beta * (r - z0)))
    bad = lambda_u * (1 - torch.sigmoid(beta * (z0 - r)))
    return torch.where(desirable, good, bad)


def bradley_terry_loss(r_c: torch.Tensor, r_r: torch.Tensor, margin: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Reward-model loss per pair: −log σ(r_c − r_r − margin) (Bradley & Terry, 1952; Ouyang et al., 2022)."""
    return F.softplus(-(r_c - r_r - margin))


def preference_metrics(pc, pr, rc, rr, beta: float) -> dict[str, float]:
    """The numbers a preference run logs (TRL's names): rewards of chosen and rejected (β · (log π − log π_ref)),
    their margin, pair accuracy (strictly r̂_c > r̂_r: 0.0 when policy = reference) and the log-probs."""
    rew_c, rew_r = beta * (pc - rc), beta * (pr - rr)
    return {"rewards_chosen": float(rew_c.mean()), "rewards_rejected": float(rew_r.mean()),
            "margin": float((rew_c - rew_r).mean()), "accuracy": float((rew_c > rew_r).float().mean()),
            "logps_chosen": float(pc.mean()), "logps_rejected": float(pr.mean())}
