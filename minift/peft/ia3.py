"""(IA)³ — "Infused Adapter by Inhibiting and Amplifying Inner Activations" (Liu et al., 2022, T-Few).

Learned vectors rescale three activations in every block; nothing else changes:

    attention:  softmax(Q (l_k ⊙ K)ᵀ / √d_h) (l_v ⊙ V)       l_k, l_v ∈ ℝ^d   (all heads together)
    MLP:        (l_ff ⊙ GELU(W₁ h)) W₂ᵀ + b₂                  l_ff ∈ ℝ^{4d}

    trainable: d + d + 4d = 6d numbers per layer, 6·L·d in all (d=384, L=6: 13,824).

How it is wired here (huggingface/peft `tuners/ia3`): every target is an nn.Linear wrapped in `IA3Linear`.
  * k and v scale their OUTPUT:  y = l ⊙ (x Wᵀ + b),  l ∈ ℝ^{out}.     Merge: W ← diag(l) W, b ← l ⊙ b.
  * mlp.proj (a "feedforward" target) scales its INPUT:  y = (x ⊙ l) Wᵀ + b,  l ∈ ℝ^{in = 4d}.
    Its input is exactly the MLP's inner activation GELU(W₁ h), so this is the paper's l_ff after `mlp.act`.
    Merge: W ← W diag(l) (columns), the bias is untouched.

Decisions (docs/peft.md derives the method):
  * l is initialised to ones, so the model starts EXACTLY at the base (x · 1 = x in floating point);
  * only the l vectors train; they are marked `no_decay = True`, because weight decay would pull them towards 0
    (switching the activation off) instead of towards the identity 1;
  * merge is explicit and computed in fp32, cast once; unmerge divides by l again, so it is only approximate
    (≈1e-7 relative in fp32) and impossible where an entry of l is 0 (it raises then);
  * targets / layers select modules like LoRA's; `feedforward` says which of them scale their input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn

from minift.errors import ConfigError
from minift.peft.adapters import gpt_of
from minift.peft.core import (MethodConfig, PeftModule, plain_value, check_targets, is_tied, name_matches, register,
                   replace_module, select_modules)


class IA3Linear(PeftModule):
    """A frozen nn.Linear (`base`) whose output (or, with `scale_input`, input) is rescaled by `ia3_vector`."""

    def __init__(self, base: nn.Linear, scale_input: bool = False):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ConfigError(f"IA3Linear wraps an nn.Linear, got {type(base).__name__}")
        self.base = base
        self.scale_input = scale_input
        n = base.in_features if scale_input else base.out_features
        self.ia3_vector = nn.Parameter(torch.ones(n, device=base.weight.device, dtype=torch.float32))
        self.ia3_vector.no_decay = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged and self.disabled:
            raise ConfigError("this (IA)³ layer is merged and cannot be switched off; unmerge it first")
        if self.merged or self.disabled:
            return self.base(x)
        l = self.ia3_vector
        if self.scale_input:
            return self.base((x.to(l.dtype) * l).to(x.dtype))
        y = self.base(x)
        return (y.to(l.dtype) * l).to(y.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """W ← diag(l) W and b ← l ⊙ b (output scaling) or W ← W diag(l) (input scaling)."""
        if self.merged:
            raise ConfigError("this (IA)³ layer is already merged; merging twice would scale twice")
        if self.disabled:
            raise ConfigError("cannot merge a switched-off adapter; leave the disabled(...) block first")
        self._rescale(self.ia3_vector)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Divide by l again: W₀ comes back up to float rounding only."""
        if not self.merged:
            raise ConfigError("this (IA)³ layer is not merged, so there is nothing to unmerge")
        if (self.ia3_vector == 0).any():
            raise ConfigError("an (IA)³ vector has a zero entry, so the merge cannot be undone (division by 0)")
        self._rescale(1.0 / self.ia3_vector)
        self.merged = False

    def _rescale(self, l: torch.Tensor) -> None:
        w, b = self.base.weight, self.base.bias
        if self.scale_input:
            w.copy_((w.float() * l[None, :]).to(w.dtype))
        else:
            w.copy_((w.float() * l[:, None]).to(w.dtype))
            if b is not None:
                b.copy_((b.float() * l).to(b.dtype))

    def unload(self) -> nn.Linear:
        if not self.merged:
            raise ConfigError("unloading an unmerged (IA)³ layer would drop the adapter; merge it first")
        return self.base

    def extra_repr(self) -> str:
        return f"scales {'input' if self.scale_input else 'output'} ({self.ia3_vector.numel()}), merged={self.merged}"


@register
@dataclass
class IA3Config(MethodConfig):
    """(IA)³ on k, v (output scaling) and mlp.proj (input scaling = the MLP inner activation) by default."""

    method: ClassVar[str] = "ia3"
    default_lr: ClassVar[float] = 3e-2
    lr_reason: ClassVar[str] = ("one scale per channel, starting at 1: a change of a few percent needs a large "
                                "step (tiny base, sentiment, 10 epochs: 0.835)")
    mergeable: ClassVar[bool] = True

    targets: list | str = field(default_factory=lambda: ["attn.k", "attn.v", "mlp.proj"])
    feedforward: list | str = field(default_factory=lambda: ["mlp.proj"])  # these scale their input
    layers: list | None = None  # only these block indices (None = all)

    def __post_init__(self):
        check_targets(self.targets, self.layers)
        ff = self.feedforward
        if not (isinstance(ff, str) or (isinstance(ff, (list, tuple)) and all(isinstance(t, str) and t for t in ff))):
            raise ConfigError(f"(IA)³ feedforward must be a list of module-name suffixes (may be empty) or a regex "
                              f"string, got {ff!r}")
        self.targets, self.feedforward = plain_value(self.targets), plain_value(ff)  # tuples → lists
        self.layers = plain_value(self.layers)

    def inject(self, model: nn.Module) -> None:
        # "mlp.proj" names the MLP's output layer, whose input is the inner activation; a Llama calls it mlp.down
        out = getattr(gpt_of(model), "mlp_out", "mlp.proj")
        targets, feedforward = (_rename(t, out) for t in (self.targets, self.feedforward))
        chosen = select_modules(model, targets, self.layers, nn.Linear)
        for name, lin in chosen:
            if is_tied(model, lin.weight):
                raise ConfigError(f"{name}.weight is tied to another module (lm_head shares tok_emb.weight); "
                                  "(IA)³ there would also rescale the embedding when merged; leave it out")
        for name, lin in chosen:
            ff = bool(feedforward) and name_matches(name, feedforward)
            replace_module(model, name, IA3Linear(lin, scale_input=ff))


def _rename(names, out: str):
    """Target lists name the MLP's output layer "mlp.proj" (the GPT's name); use the model's own name for it."""
    return [out if n == "mlp.proj" else n for n in names] if isinstance(names, list) else names
