"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021): a small two-layer network with a skip
connection, inserted into every chosen block of a frozen model.

The adapter on a vector z ∈ ℝ^d, bottleneck m = d // reduction_factor:

    A(z) = z + W_up σ(W_down z + b_down) + b_up      W_down ∈ ℝ^{m×d}, W_up ∈ ℝ^{d×m}
    z: (B, T, d) → (B, T, d);  trainable numbers per adapter: 2md + m + d

Placement in minift's pre-LayerNorm block  x ← x + Attn(LN₁(x));  x ← x + MLP(LN₂(x)):

    Houlsby  (two per layer, paper §2.1): on each sublayer OUTPUT, before the residual add
             u = Attn(LN₁(x)); x ← x + A₁(u);   u = MLP(LN₂(x)); x ← x + A₂(u)
    Pfeiffer (one per layer, adapter-hub `SeqBnConfig` traced on pre-LN GPT-2): after the MLP, reading the
             post-residual stream  h = x + MLP(LN₂(x));  out = A(h)

    trainable: Houlsby 2L(2md + m + d) [+ 4Ld with train_layernorm];  Pfeiffer L(2md + m + d)
    (d = 384, L = 6, m = 24: 226,080 and 113,040)

How it is wired: the adapter becomes a child module of the sublayer it follows (`blocks[i].attn.adapter`,
`blocks[i].mlp.adapter`, or `blocks[i].adapter` for Pfeiffer) and a forward hook on that sublayer passes the
sublayer's output through it. Base parameter names do not change, and `attn`/`mlp` stay the model's own modules.

Decisions (docs/peft.md derives the method):
  * init: `zero_init=True` (default) — W_down Kaiming-uniform (the nn.Linear default), W_up = 0, b = 0, so the
    adapter is exactly the identity and the model starts bit-for-bit at the base (adapter-hub "mam_adapter").
    The step-1 gradient of W_down is then exactly 0 (as for LoRA's A). `zero_init=False` is the Houlsby init:
    both matrices truncated normal, std `init_std` = 1e-2 cut at ±2σ, zero biases — near-identity, not exact.
  * activation: Houlsby default SiLU (swish), Pfeiffer default ReLU (adapter-hub's defaults).
  * LayerNorms: frozen by default (adapter-hub); `train_layernorm=True` also trains ln1/ln2 of the adapted blocks
    as in the Houlsby paper — the base model then changes, so `disabled(model)` is no longer the base.
  * weight decay: ordinary matrices, decayed by the usual dim ≥ 2 rule (pulls W_up towards 0 = the identity).
  * not mergeable: σ makes A non-linear, so it cannot be folded into a weight matrix; it adds latency
    (LoRA paper Table 1: +20–30% at batch size 1 on GPT-2 M).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from minift.errors import ConfigError
from minift.model.gpt import GPT
from minift.peft.core import MethodConfig, PeftModule, register

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class BottleneckAdapter(PeftModule):
    """A(z) = z + W_up σ(W_down z + b_down) + b_up on the last dimension; parameters kept in fp32."""

    def __init__(self, d: int, bottleneck: int, activation: str = "relu", zero_init: bool = True,
                 init_std: float = 1e-2):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown adapter activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        self.down = nn.Linear(d, bottleneck)  # W_down (m, d), b_down (m,)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, d)  # W_up (d, m), b_up (d,)
        with torch.no_grad():
            if zero_init:
                nn.init.zeros_(self.down.bias)
                nn.init.zeros_(self.up.weight)
                nn.init.zeros_(self.up.bias)
            else:
                for lin in (self.down, self.up):
                    nn.init.trunc_normal_(lin.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
                    nn.init.zeros_(lin.bias)

    def delta(self, z: torch.Tensor) -> torch.Tensor:
        """W_up σ(W_down z + b_down) + b_up, computed in the adapter's dtype and cast back to z's."""
        zz = z.to(self.down.weight.dtype)
        return self.up(self.act(self.down(zz))).to(z.dtype)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.disabled:
            return z
        return z + self.delta(z)


def _run_adapter(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the sublayer's output goes through the adapter it owns."""
    return module.adapter(output)


def gpt_of(model: nn.Module) -> GPT:
    """The GPT a method acts on: the model itself, or the one GPT inside a wrapper (e.g. a Classifier's body)."""
    if isinstance(model, GPT):
        return model
    found = [m for m in model.modules() if isinstance(m, GPT)]
    if len(found) != 1:
        raise ConfigError(f"expected a GPT or a module holding exactly one GPT, found {len(found)} in "
                          f"{type(model).__name__}")
    return found[0]


def resolve_layers(layers, n_layer: int, what: str) -> list[int]:
    """None → every block index; otherwise check each index exists. Shared by adapters and ReFT."""
    if layers is None:
        return list(range(n_layer))
    if not isinstance(layers, (list, tuple)) or not layers or \
            not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
        raise ConfigError(f"{what}: layers must be None (all blocks) or a non-empty list of block indices, "
                          f"got {layers!r}")
    bad = [i for i in layers if not 0 <= i < n_layer]
    if bad:
        raise ConfigError(f"{what}: layers {bad} do not exist; this model has blocks 0..{n_layer - 1}")
    if len(set(layers)) != len(layers):
        raise ConfigError(f"{what}: layers {list(layers)} name a block twice")
    return sorted(layers)


@dataclass
class _AdapterConfig(MethodConfig):
    reduction_factor: int = 16
    activation: str = "relu"
    zero_init: bool = True
    init_std: float = 1e-2
    train_layernorm: bool = False
    layers: list | None = None  # block indices (None = all)

    placements: ClassVar[tuple[str, ...]] = ()  # subset of ("attn", "mlp", "block")
    default_lr: ClassVar[float] = 3e-3
    lr_reason: ClassVar[str] = ("a small new network that starts as the identity, between LoRA's and a soft "
                                "prompt's scale (tiny base, sentiment, 10 epochs: Houlsby 0.81, Pfeiffer 0.75)")
    why_not_mergeable: ClassVar[str] = ("a bottleneck adapter is a small non-linear network added to the block, "
                                        "not a change of an existing weight matrix")

    def __post_init__(self):
        rf = self.reduction_factor
        if isinstance(rf, bool) or not isinstance(rf, int) or rf < 1:
            raise ConfigError(f"reduction_factor must be a positive integer, got {rf!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown adapter activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if not (isinstance(self.init_std, (int, float)) and self.init_std > 0):
            raise ConfigError(f"init_std must be a positive number, got {self.init_std!r}")
        if isinstance(self.layers, tuple):
            self.layers = list(self.layers)

    def bottleneck(self, d: int) -> int:
        m = d // self.reduction_factor
        if m < 1:
            raise ConfigError(f"reduction_factor={self.reduction_factor} leaves no bottleneck for d_model={d} "
                              f"(m = d // factor = 0); use a factor ≤ {d}")
        return m

    def inject(self, model: nn.Module) -> None:
        model = gpt_of(model)
        d = model.config.d_model
        m = self.bottleneck(d)
        for i in resolve_layers(self.layers, len(model.blocks), self.method):
            block = model.blocks[i]
            hosts = {"attn": block.attn, "mlp": block.mlp, "block": block}
            for where in self.placements:
                host = hosts[where]
                host.adapter = BottleneckAdapter(d, m, self.activation, self.zero_init, self.init_std)
                host.adapter.to(block.ln1.weight.device)
                host.register_forward_hook(_run_adapter)
            if self.train_layernorm:
                for p in list(block.ln1.parameters()) + list(block.ln2.parameters()):
                    p.requires_grad_(True)


@register
@dataclass
class HoulsbyConfig(_AdapterConfig):
    """Two adapters per block, on the attention and MLP outputs before the residual add. Not mergeable
    (non-linear σ)."""

    method: ClassVar[str] = "adapter-houlsby"
    placements: ClassVar[tuple[str, ...]] = ("attn", "mlp")
    activation: str = "silu"


@register
@dataclass
class PfeifferConfig(_AdapterConfig):
    """One adapter per block, on the residual stream after the MLP's residual add. Not mergeable
    (non-linear σ)."""

    method: ClassVar[str] = "adapter-pfeiffer"
    placements: ClassVar[tuple[str, ...]] = ("block",)
    activation: str = "relu"


def adapter_parameter_count(d: int, m: int, n_layer: int, per_layer: int) -> int:
    """Closed form: per_layer · L · (2md + m + d)."""
    return per_layer * n_layer * (2 * m * d + m + d)
