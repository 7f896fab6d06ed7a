"""One preference objective for the training loop: the chosen loss (losses.py) on a batch of pairs, with its
reference model, its hyper-parameters and the numbers a run logs.

    loss_fn(model, batch) → (Σ over pairs of ℓ, number of pairs)     the loop divides by the count (exact under
                                                                     gradient accumulation, docs/training.md)

The reference π_ref (Rafailov et al., 2023, §4) is the model the policy starts from:

  * with a PEFT method, the policy itself with its adapter switched off (`minift.peft.disabled`): no second copy
    in memory. This is only the starting model when the adapter is new — an SFT adapter is merged into the base
    first (align/run.py does it);
  * with full fine-tuning, a frozen copy made before the first step.

Reference log-probs are computed without gradients and in eval mode, and dropout is switched off in the whole
model for the stage (`disable_dropout`): with dropout the step-0 loss is not ln 2 and the comparison is noise.
They can also be computed once for the whole data set before training (`precompute_reference`), which saves one
forward pass per step.

Defaults (TRL's and the papers'): β = 0.1 for the DPO family and KTO, β = 2.5 and γ = 1.375 for SimPO, λ = 0.1 for
ORPO, α = 1 for CPO, ε = 0.1 for cDPO and robust DPO. `sft_weight` adds the mean NLL of the chosen answers (RPO,
Pang et al., 2024), which keeps their likelihood from falling while the margin grows.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from minift.align import losses as L
from minift.align.logprobs import model_logps, split_pair, token_logps
from minift.errors import ConfigError
from minift.peft import disabled, method_of
from minift.training.loop import move_to

METHODS = ("dpo", "cdpo", "robust", "ipo", "hinge", "simpo", "orpo", "cpo", "kto")
DEFAULT_BETA = {"simpo": 2.5}  # every other method: 0.1


@dataclass
class PreferenceConfig:
    """The preference method and its hyper-parameters (module docstring)."""

    method: str = "dpo"
    beta: float | None = None      # None: the method's default
    eps: float = 0.1               # cdpo, robust: label noise
    gamma: float = 1.375           # simpo: target margin
    lam: float = 0.1               # orpo: weight of the odds-ratio term
    alpha: float = 1.0             # cpo: weight of the chosen NLL
    sft_weight: float = 0.0        # an extra NLL of the chosen answers (RPO), any method
    average: bool | None = None    # mean token log-probs instead of sums (None: simpo, orpo average; others sum)
    # one record per call of loss_fn ("training": False for the loop's validation passes), filled by loss_fn
    metrics: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"unknown preference method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.beta is None:
            self.beta = DEFAULT_BETA.get(self.method, 0.1)
        if self.average is None:
            self.average = self.method in L.AVERAGED
        if not self.beta > 0:
            raise ConfigError(f"beta must be positive, got {self.beta}")
        if self.method in ("cdpo", "robust") and not 0 <= self.eps < 0.5:
            raise ConfigError(f"eps (label noise) must be in [0, 0.5), got {self.eps}")

    @property
    def needs_reference(self) -> bool:
        return self.method in L.NEEDS_REFERENCE

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("method", "beta", "eps", "gamma", "lam", "alpha", "sft_weight",
                                               "average")}


def disable_dropout(model: nn.Module) -> None:
    """p = 0 in every dropout module and in attention's own dropout rate (a float attribute, passed to the fused
    kernel): policy and reference must be deterministic functions in this stage."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        elif isinstance(getattr(m, "dropout", None), float):
            m.dropout = 0.0


class Reference:
    """log π_ref: the policy with its adapter switched off (a PEFT policy) or a frozen copy (`frozen`)."""

    def __init__(self, policy: nn.Module, frozen: nn.Module | None = None):
        if frozen is None and method_of(policy) is None:
            raise ConfigError("a fully fine-tuned policy needs a frozen copy of its starting weights as reference")
        self.policy, self.frozen = policy, frozen
        if frozen is not None:
            frozen.requires_grad_(False).eval()

    @contextmanager
    def _as_reference(self):
        """The model that computes π_ref, in eval mode (its adapter switched off when it is the policy)."""
        model = self.frozen if self.frozen is not None else self.policy
        was = model.training
        model.eval()
        try:
            with disabled(model) if self.frozen is None else nullcontext():
                yield model
        finally:
            model.train(was)

    @torch.no_grad()
    def logps(self, ids, targets, mask, average: bool = False) -> torch.Tensor:
        """Sequence log π_ref (B,) (logprobs.model_logps)."""
        with self._as_reference() as model:
            return model_logps(model, ids, targets, mask, average)[0]

    @torch.no_grad()
    def token_logps(self, ids, targets, mask) -> torch.Tensor:
        """Per-token log π_ref (B, T) (logprobs.token_logps), for the RL stage's KL."""
        with self._as_reference() as model:
            return token_logps(model, ids, targets, mask)


def pair_loss_fn(cfg: PreferenceConfig, reference: Reference | None):
    """loss_fn(model, batch) for a paired method; records `preference_metrics` (+ lengths) in cfg.metrics.
    `reference` may be None for reference-free methods and for batches with precomputed reference log-probs."""

    def loss_fn(model, batch):
        device = next(model.parameters()).device
        b = move_to(batch, device)
        lp, n = model_logps(model, b["ids"], b["targets"], b["mask"], cfg.average)
        pc, pr = split_pair(lp)
        (nc, nr), dtype = split_pair(n), lp.dtype
        if "ref" in b:
            rc, rr = b["ref"][:, 0].to(dtype), b["ref"][:, 1].to(dtype)
        elif cfg.needs_reference:
            if reference is None:
                raise ConfigError(f"{cfg.method} compares the policy with a reference model; pass one, or "
                                  "precompute the reference log-probs")
            rc, rr = split_pair(reference.logps(b["ids"], b["targets"], b["mask"], cfg.average).to(dtype))
        else:
            rc = rr = torch.zeros_like(pc)
        h = L.margin_h(pc, pr, rc, rr)
        m = cfg.method
        per_pair = {"dpo": lambda: L.dpo_loss(h, cfg.beta), "cdpo": lambda: L.cdpo_loss(h, cfg.beta, cfg.eps),
                    "robust": lambda: L.robust_loss(h, cfg.beta, cfg.eps), "ipo": lambda: L.ipo_loss(h, cfg.beta),
                    "hinge": lambda: L.hinge_loss(h, cfg.beta),
                    "simpo": lambda: L.simpo_loss(pc, pr, cfg.beta, cfg.gamma),
                    "orpo": lambda: cfg.lam * L.orpo_odds_term(pc, pr),
                    "cpo": lambda: L.cpo_term(pc, pr, cfg.beta)}[m]()
        nll = -(pc * nc if cfg.average else pc) / nc.clamp(min=1)  # per pair: the chosen answer's mean NLL
        weight = cfg.sft_weight + (1.0 if m == "orpo" else cfg.alpha if m == "cpo" else 0.0)
        total = per_pair + weight * nll if weight else per_pair
        cfg.metrics.append({**L.preference_metrics(pc.detach(), pr.detach(), rc, rr, cfg.beta),
                            "loss": float(total.detach().mean()), "length_chosen": float(nc.float().mean()),
                            "length_rejected": float(nr.float().mean()), "training": model.training})
        return total.sum(), torch.tensor(pc.shape[0], device=device)

    return loss_fn


def kto_loss_fn(cfg: PreferenceConfig, reference: Reference, lambda_d: float = 1.0, lambda_u: float = 1.0):
    """loss_fn for KTO on unpaired batches; z₀ = max(0, mean log-ratio on the mismatched pairs), no gradient."""
    def loss_fn(model, batch):
        device = next(model.parameters()).device
        b = move_to(batch, device)
        lp, n = model_logps(model, b["ids"], b["targets"], b["mask"])
        r = lp - reference.logps(b["ids"], b["targets"], b["mask"]).to(lp.dtype)
        z0 = torch.zeros((), dtype=lp.dtype, device=device)
        if "kl_ids" in b:
            with torch.no_grad():
                kl = model_logps(model, b["kl_ids"], b["kl_targets"], b["kl_mask"])[0] \
                    - reference.logps(b["kl_ids"], b["kl_targets"], b["kl_mask"]).to(lp.dtype)
            z0 = kl.mean().clamp(min=0)
        loss = L.kto_loss(r, b["label"], z0, cfg.beta, lambda_d, lambda_u)
        good, bad, r = b["label"], ~b["label"], r.detach()
        cfg.metrics.append({"loss": float(loss.detach().mean()), "kl": float(z0), "training": model.training,
                            "rewards_desirable": float((cfg.beta * r[good]).mean()) if good.any() else float("nan"),
                            "rewards_undesirable": float((cfg.beta * r[bad]).mean()) if bad.any() else float("nan")})
        return loss.sum(), torch.tensor(lp.shape[0], device=device)

    return loss_fn


@torch.no_grad()
def precompute_reference(encoded: list[dict], collate, reference: Reference, average: bool = False,
                         batch_size: int = 16) -> None:
    """Store (log π_ref(y_c), log π_ref(y_r)) in every encoded pair ("ref"), once, before training."""
    device = next(reference.policy.parameters()).device
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        b = move_to(collate(chunk), device)
        rc, rr = split_pair(reference.logps(b["ids"], b["targets"], b["mask"], average))
        for pair, c, r in zip(chunk, rc.tolist(), rr.tolist()):
            pair["ref"] = (c, r)
