"""QLoRA (Dettmers et al., 2023): LoRA over a base whose linear layers are frozen in 4 bits.

    every nn.Linear of the base except lm_head  →  Linear4bit: W₄ = quantise(W) in NF4 (or FP4, Int4), block 64,
                                                   constants double-quantised (minift/quant/)
    the target layers additionally get LoRA:       y = x Ŵᵀ + b + s · drop(x) Aᵀ Bᵀ,   Ŵ = dequantise(W₄)

At initialisation B = 0, so the model computes exactly the dequantised base: the quantisation error is there from
step 0, and the adapter is trained against Ŵ, not against W. Embeddings, norms and a tied lm_head stay as they are
(bitsandbytes quantises linear layers only).

What it saves is memory for the frozen weights: 4.127 bits per quantised weight instead of 32 (fp32) or 16 (bf16).
What it costs is time: every forward and backward dequantises each weight again (minift/quant/linear4bit.py). On a
small model activations and the fp32 embedding dominate the memory of a step, so the saving there is modest
(docs/quantization.md measures both).

The merge trap. The adapter learned ΔW to correct Ŵ. Three ways to fold it in, none free:
    "dequantized"    W' = Ŵ + ΔW                the model that was trained and scored, in float (4-bit memory lost)
    "original"       W' = W + ΔW                the 16/32-bit weights the quantised base came from: the adapter was
                                                not trained against them, so outputs drift by x(W − Ŵ)ᵀ
    "requantized"    W' = dequantise(quantise(Ŵ + ΔW))   stays 4-bit, but an update smaller than half a code step
                                                rounds away (most of a short run's ΔW)
`merge_qlora(model, into, original)` builds each; `minift merge --into` asks the user to choose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from minift.errors import ConfigError
from minift.peft.core import is_tied, peft_modules, register, replace_module
from minift.peft.lora import LoRAConfig, LoRALinear
from minift.quant.blockwise import check_block_size, quantize_4bit
from minift.quant.codebooks import CODEBOOKS
from minift.quant.linear4bit import Linear4bit

MERGE_TARGETS = ("dequantized", "original", "requantized")


@register
@dataclass
class QLoRAConfig(LoRAConfig):
    """LoRA's options plus the base's 4-bit format: `quant_type` (nf4, fp4, int4), `block_size`, `double_quant`."""

    method: ClassVar[str] = "qlora"
    lr_reason: ClassVar[str] = ("LoRA's lr: the same A and B, trained over a 4-bit copy of the base (tiny base, "
                                "sentiment: within a point of LoRA)")
    key_options: ClassVar[tuple[str, ...]] = ("r", "alpha", "quant_type")
    merge_targets: ClassVar[tuple[str, ...]] = MERGE_TARGETS
    quantizes_base: ClassVar[bool] = True

    quant_type: str = "nf4"
    block_size: int = 64
    double_quant: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.quant_type not in CODEBOOKS:
            raise ConfigError(f"quant_type must be one of {sorted(CODEBOOKS)}, got {self.quant_type!r}")
        check_block_size(self.block_size)
        if not isinstance(self.double_quant, bool):
            raise ConfigError(f"double_quant must be true or false, got {self.double_quant!r}")

    def inject(self, model: nn.Module) -> None:
        # validate LoRA's targets first (LoRAConfig.inject checks before changing anything), on the float model
        super().inject(model)
        quantize_linears(model, self.quant_type, self.block_size, self.double_quant)


def quantize_linears(model: nn.Module, quant_type: str = "nf4", block_size: int = 64,
                     double_quant: bool = True) -> list[str]:
    """Replace every nn.Linear (also those inside LoRA layers) except lm_head and tied weights by a frozen
    Linear4bit; returns the names of the quantised layers."""
    done = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or name.split(".")[-1] == "lm_head" or is_tied(model, module.weight):
            continue
        if module.weight.requires_grad:  # a trainable layer (a new classification head) stays in float
            continue
        if module.in_features * module.out_features % 2:
            raise ConfigError(f"{name} has an odd number of weights; 4-bit packing needs pairs")
        replace_module(model, name, Linear4bit(module, quant_type, block_size, double_quant))
        done.append(name)
    return done


def _merged_weight(layer: nn.Module, into: str, original: torch.Tensor | None) -> torch.Tensor:
    """The float weight (out, in) a Linear4bit, or a LoRA layer over one, becomes under the chosen target."""
    base = layer.base if isinstance(layer, LoRALinear) else layer
    delta = layer.delta_weight() if isinstance(layer, LoRALinear) and not layer.disabled else 0.0
    if into == "original":
        return original.float() + delta
    w = base.dequantize() + delta
    if into == "requantized":
        w = quantize_4bit(w, base.quant_type, base.block_size, base.double_quant).dequantize()
    return w


@torch.no_grad()
def merge_qlora(model: nn.Module, into: str, original: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Replace every Linear4bit (bare or under LoRA) by a plain nn.Linear holding the `into` weight (see the module
    docstring); `original` maps a layer's name + ".weight" to its unquantised weight (needed for into="original").
    The result is an ordinary float model without PEFT modules."""
    if into not in MERGE_TARGETS:
        raise ConfigError(f"merge target must be one of {MERGE_TARGETS}, got {into!r}")
    if into == "original" and original is None:
        raise ConfigError("merging into the original weights needs them: pass the unquantised base's state_dict")
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, Linear4bit) or (isinstance(m, LoRALinear) and isinstance(m.base, Linear4bit))]
    layers = [(n, m) for n, m in layers if not any(n.startswith(o + ".") for o, _ in layers if o != n)]
    for name, layer in layers:
        base = layer.base if isinstance(layer, LoRALinear) else layer
        key = name + ".weight"
        if into == "original" and key not in original:
            raise ConfigError(f"the original weights hold no {key}; pass the state_dict of the base this adapter "
                              "was trained on")
        w = _merged_weight(layer, into, original.get(key) if original else None)
        plain = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None, device=w.device)
        plain.weight.copy_(w)
        if base.bias is not None:
            plain.bias.copy_(base.bias)
        replace_module(model, name, plain)
    if any(True for _ in peft_modules(model)):
        raise ConfigError("this model holds PEFT modules other than QLoRA's; merge_qlora folds QLoRA only")
    for m in model.modules():
        m.__dict__.pop("peft_config", None)
    for p in model.parameters():
        p.requires_grad_(True)
    return model
