"""Every 4-bit format side by side: the same round trip, the same error measures, the same swap into a model.

    roundtrip(w, fmt) = ŵ       fmt ∈ {nf4, fp4, int4} (block-wise absmax, blockwise.py) or {q4_0, q4_1} (ggml.py)
    error(w, fmt)   = {"mse": mean (w − ŵ)², "max": max |w − ŵ|, "rel_mse": mse / mean w², "bits": bits per weight}

`fake_quantize_linears_(model, fmt)` overwrites every linear weight (except lm_head and tied weights) with its
round trip, in float: the model then computes what a 4-bit deployment of it would, which is how the perplexity of
each format is measured on one model (docs/quantization.md).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from minift.quant import ggml
from minift.quant.blockwise import quantize_4bit

BLOCKWISE = ("nf4", "fp4", "int4")
FORMATS = (*BLOCKWISE, "q4_0", "q4_1")


def roundtrip(w: torch.Tensor, fmt: str, block_size: int = 64, double_quant: bool = True) -> torch.Tensor:
    """ŵ = dequantise(quantise(w)) in `fmt` (block_size and double_quant apply to nf4, fp4, int4 only)."""
    if fmt in BLOCKWISE:
        return quantize_4bit(w, fmt, block_size, double_quant).dequantize()
    if fmt in ggml.BITS:
        return ggml.roundtrip(w, fmt)
    raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")


def bits_per_weight(fmt: str, block_size: int = 64, double_quant: bool = True) -> float:
    """Storage of a large tensor in `fmt`, in bits per weight (codes + block constants)."""
    if fmt in ggml.BITS:
        return ggml.BITS[fmt]
    return 4 + (8 / block_size + 32 / (block_size * 256) if double_quant else 32 / block_size)


def error(w: torch.Tensor, fmt: str, block_size: int = 64, double_quant: bool = True) -> dict:
    """Quantisation error of `w` in `fmt`: mse, max, relative mse (mse / mean w²) and the bits per weight."""
    w = w.detach().float()
    d = w - roundtrip(w, fmt, block_size, double_quant)
    mse = float(d.square().mean())
    return {"mse": mse, "max": float(d.abs().max()), "rel_mse": mse / float(w.square().mean()),
            "bits": bits_per_weight(fmt, block_size, double_quant)}


def linear_weights(model: nn.Module) -> dict[str, nn.Linear]:
    """The linear layers a 4-bit base quantises: every nn.Linear except lm_head and a weight shared with another
    module (a tied lm_head is the embedding)."""
    seen: dict[int, int] = {}
    for m in model.modules():
        for p in m.parameters(recurse=False):
            seen[id(p)] = seen.get(id(p), 0) + 1
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and n.split(".")[-1] != "lm_head" and seen[id(m.weight)] == 1}


@torch.no_grad()
def fake_quantize_linears_(model: nn.Module, fmt: str, block_size: int = 64, double_quant: bool = True) -> nn.Module:
    """Overwrite each weight of `linear_weights(model)` by its round trip in `fmt`, in place; returns the model."""
    for lin in linear_weights(model).values():
        lin.weight.copy_(roundtrip(lin.weight, fmt, block_size, double_quant).to(lin.weight.dtype))
    return model
