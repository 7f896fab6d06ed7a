"""LoRA (Hu et al., 2021) and DoRA (Liu et al., 2024): a low-rank update of a frozen linear layer.

LoRA. For a frozen nn.Linear with W₀ ∈ ℝ^{out×in} and bias b, add a rank-r branch:

    y = x W₀ᵀ + b + s · drop(x) Aᵀ Bᵀ          A ∈ ℝ^{r×in}, B ∈ ℝ^{out×r},  x: (..., in) → y: (..., out)
    s = α / r        (Hu et al.; loralib and huggingface/peft)
    s = α / √r       (rsLoRA, Kalajdzievski 2023: keeps the update Θ(1) as r grows)

    trainable: r·(in + out) numbers per adapted matrix, instead of in·out.

DoRA. Split the adapted weight into a direction and a learned magnitude m ∈ ℝ^{out} (one per output row):

    V = W₀ + s·BA,   n = ‖V‖_row (norm over the input dimension, DETACHED),   g = m / n
    y = x W₀ᵀ + b + (g − 1) ⊙ (x̃ W₀ᵀ) + g ⊙ s·(x̃ AᵀBᵀ),   x̃ = drop(x)
    (without dropout this is y = g ⊙ (x Vᵀ) + b: the bias is not rescaled)

Decisions (docs/peft.md derives the method):
  * init: A ~ Kaiming-uniform(a=√5) = U(−1/√in, 1/√in), B = 0, as in loralib and PEFT (the paper text says
    "random Gaussian" for A; `init="gaussian"` gives N(0, 1/r²)). B = 0 makes ΔW = 0, so the model starts exactly
    at the base — and ∂L/∂A = s·Bᵀ(…) = 0: A gets an exactly zero gradient on step 1, only B moves first. Not "fixed".
  * s = α/r by default, α/√r with `rslora=True`; `lora_scale` is the only place this is computed.
  * dropout acts on the adapter branch input only; merged ≡ unmerged holds in eval mode only.
  * adapter parameters are fp32 whatever the base dtype; the branch input is cast to fp32 and the result back.
  * merge / unmerge are explicit calls, never triggered by .train() / .eval(); merging twice raises; the merge is
    computed in fp32 and cast once. Unmerge subtracts the update again, so W₀ comes back only up to float rounding
    (≈1e-9 in fp32, tested to 1e-6), not bit-for-bit — no copy of W₀ is kept.
  * DoRA: magnitude per output feature, initialised to ‖W₀‖_row (so g = 1 exactly at init); the norm is detached
    (DoRA §4.3); the dropout-consistent formula above is used always; the norm at merge time is cached so unmerge
    can divide by exactly the factor it multiplied by.
  * weight decay: A and B are ordinary matrices (decay pulls B towards 0, i.e. towards the base); the DoRA
    magnitude is marked `no_decay = True` because decaying it would shrink the layer's weights towards 0.
  * targets: a list of dotted-name suffixes (["attn.q", "attn.v"]), a full-match regex string, or "all-linear"
    (every nn.Linear except lm_head). The tied lm_head / tok_emb weight is refused: merging into it would also
    change the token embedding.
  * bias: "none" (default), "all" (every bias, LayerNorm biases included, becomes trainable) or "lora_only" (the
    biases of the wrapped layers). The last two train base parameters, so `disabled(model)` is then no longer the
    original base model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.errors import ConfigError
from minift.peft.core import (MethodConfig, PeftModule, plain_value, check_targets, is_tied, peft_modules, register,
                   replace_module, select_modules)


def lora_scale(alpha: float, r: int, rslora: bool = False) -> float:
    """s = α/r, or α/√r for rsLoRA."""
    return alpha / math.sqrt(r) if rslora else alpha / r


class LoRALinear(PeftModule):
    """A frozen nn.Linear (`base`) plus a LoRA (or DoRA) branch: `lora_A` (r, in), `lora_B` (out, r) and, for
    DoRA, `lora_magnitude` (out,)."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                 rslora: bool = False, use_dora: bool = False, init: str = "kaiming"):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ConfigError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        # (QLoRA later swaps `base` for a frozen 4-bit copy with the same interface: minift/peft/qlora.py)
        self.base = base
        self.r, self.alpha, self.rslora, self.use_dora = r, alpha, rslora, use_dora
        self.scale = lora_scale(alpha, r, rslora)
        dev = base.weight.device
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=dev, dtype=torch.float32))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=dev, dtype=torch.float32))
        if init == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # bound = 1/√in, the nn.Linear default
        elif init == "gaussian":
            nn.init.normal_(self.lora_A, std=1.0 / r)
        else:
            raise ConfigError(f"unknown LoRA init {init!r}; use 'kaiming' or 'gaussian'")
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_magnitude = None
        if use_dora:
            with torch.no_grad():
                self.lora_magnitude = nn.Parameter(self._dora_norm())  # m = ‖W₀ + s·BA‖_row = ‖W₀‖_row
            self.lora_magnitude.no_decay = True
        self._merged_norm = None  # DoRA: n at merge time, needed to undo the rescaling exactly

    def delta_weight(self) -> torch.Tensor:
        """ΔW = s·BA, (out, in), fp32."""
        return self.scale * (self.lora_B @ self.lora_A)

    def _dora_norm(self) -> torch.Tensor:
        """n = ‖W₀ + s·BA‖ over the input dimension, (out,), fp32."""
        return (self.base.weight.float() + self.delta_weight()).norm(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            if self.disabled:
                raise ConfigError("this LoRA layer is merged and cannot be switched off; unmerge it first")
            return self.base(x)  # the update already lives in base.weight
        y = self.base(x)
        if self.disabled:
            return y
        xa = self.dropout(x.to(self.lora_A.dtype))  # one dropout mask, shared by every branch term
        lora = F.linear(F.linear(xa, self.lora_A), self.lora_B) * self.scale  # (..., out)
        if self.use_dora:
            w0 = self.base.weight.to(xa.dtype)
            g = self.lora_magnitude / self._dora_norm().detach()  # detached norm: DoRA §4.3
            delta = (g - 1) * F.linear(xa, w0) + g * lora
        else:
            delta = lora
        return y + delta.to(y.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """W ← W₀ + s·BA (LoRA) or W ← (m/n)[:, None] ⊙ (W₀ + s·BA) (DoRA), computed in fp32, cast once."""
        if self.merged:
            raise ConfigError("this LoRA layer is already merged; merging twice would add the update twice")
        if self.disabled:
            raise ConfigError("cannot merge a switched-off adapter; leave the disabled(...) block first")
        if not isinstance(self.base, nn.Linear):
            raise ConfigError("this LoRA layer sits on a 4-bit base (QLoRA): an in-place merge would re-quantise "
                              "and round most of the update away; choose where the update goes with "
                              "minift.peft.qlora.merge_qlora(model, into=...) or `minift merge --into ...`")
        w = self.base.weight
        v = w.float() + self.delta_weight()
        if self.use_dora:
            self._merged_norm = v.norm(dim=1)
            v = (self.lora_magnitude / self._merged_norm)[:, None] * v
        if not torch.isfinite(v).all():
            raise ConfigError("merging would put inf/NaN into the base weight; the adapter has diverged")
        w.copy_(v.to(w.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W₀ ← W − s·BA (LoRA) or W₀ ← W / (m/n)[:, None] − s·BA with the cached n (DoRA)."""
        if not self.merged:
            raise ConfigError("this LoRA layer is not merged, so there is nothing to unmerge")
        w = self.base.weight
        v = w.float()
        if self.use_dora:
            v = v / (self.lora_magnitude / self._merged_norm)[:, None]
            self._merged_norm = None
        w.copy_((v - self.delta_weight()).to(w.dtype))
        self.merged = False

    def unload(self) -> nn.Linear:
        if not self.merged:
            raise ConfigError("unloading an unmerged LoRA layer would drop the adapter; merge it first")
        return self.base

    def extra_repr(self) -> str:
        kind = "DoRA" if self.use_dora else "LoRA"
        return f"{kind}: r={self.r}, alpha={self.alpha}, scale={self.scale:g}, merged={self.merged}"


BIAS_MODES = ("none", "all", "lora_only")


@register
@dataclass
class LoRAConfig(MethodConfig):
    """LoRA on the `targets` linear layers (see the module docstring for every option's meaning)."""

    method: ClassVar[str] = "lora"
    default_lr: ClassVar[float] = 2e-3
    lr_reason: ClassVar[str] = ("a few numbers carry the whole change, so they take larger steps than full "
                                "fine-tuning's 3e-4 (tiny base, sentiment, 10 epochs: 0.885)")
    mergeable: ClassVar[bool] = True
    key_options: ClassVar[tuple[str, ...]] = ("r", "alpha")
    use_dora: ClassVar[bool] = False

    r: int = 8
    alpha: float = 16
    dropout: float = 0.0
    rslora: bool = False
    targets: list | str = field(default_factory=lambda: ["attn.q", "attn.v"])
    bias: str = "none"
    init: str = "kaiming"
    layers: list | None = None  # only these block indices (None = all)

    def __post_init__(self):
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ConfigError(f"LoRA rank r must be a positive integer, got {self.r!r}")
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError(f"LoRA alpha must be a positive number, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        if self.bias not in BIAS_MODES:
            raise ConfigError(f"bias must be one of {BIAS_MODES}, got {self.bias!r}")
        if self.init not in ("kaiming", "gaussian"):
            raise ConfigError(f"init must be 'kaiming' or 'gaussian', got {self.init!r}")
        check_targets(self.targets, self.layers)
        # tuples → lists, so the config compares equal to itself after a save/load round trip
        self.targets, self.layers = plain_value(self.targets), plain_value(self.layers)

    def inject(self, model: nn.Module) -> None:
        chosen = select_modules(model, self.targets, self.layers, nn.Linear)
        for name, lin in chosen:  # check everything before changing anything
            if is_tied(model, lin.weight):
                raise ConfigError(f"{name}.weight is tied to another module (lm_head shares tok_emb.weight); a "
                                  "LoRA update there would also change the embedding when merged. Leave it out of "
                                  "targets (use 'all-linear', which skips lm_head) or untie the weights first")
            if self.r > min(lin.in_features, lin.out_features):
                raise ConfigError(f"LoRA rank r={self.r} is larger than {name} ({lin.out_features}×{lin.in_features}) "
                                  f"can use: B A has rank ≤ {min(lin.in_features, lin.out_features)}, and beyond a "
                                  "few percent of that LoRA is no longer parameter-efficient; use r between 1 and "
                                  f"{min(lin.in_features, lin.out_features)} (typically 4–16)")
        for name, lin in chosen:
            replace_module(model, name, LoRALinear(lin, self.r, self.alpha, self.dropout, self.rslora,
                                                   self.use_dora, self.init))
        if self.bias == "all":
            for n, p in model.named_parameters():
                if n == "bias" or n.endswith(".bias"):
                    p.requires_grad_(True)
        elif self.bias == "lora_only":
            for _, m in peft_modules(model):
                if isinstance(m, LoRALinear) and m.base.bias is not None:
                    m.base.bias.requires_grad_(True)


@register
@dataclass
class DoRAConfig(LoRAConfig):
    """DoRA: LoRA's options plus a trainable magnitude per output feature."""

    method: ClassVar[str] = "dora"
    lr_reason: ClassVar[str] = ("LoRA's lr: the same A and B, plus a magnitude per row (tiny base, sentiment, "
                                "10 epochs: 0.885)")
    use_dora: ClassVar[bool] = True

