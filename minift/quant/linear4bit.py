"""A frozen linear layer stored in 4 bits: QLoRA's base layer (Dettmers et al., 2023, §3).

    forward:   Ŵ = dequantise(W₄)  (out, in), in the compute dtype      y = x Ŵᵀ + b        x: (..., in) → (..., out)
    backward:  ∂L/∂x = ∂L/∂y · Ŵ   (Ŵ dequantised AGAIN, not kept)       no gradient for W₄; b's if it trains

4 bits save memory, not time: every forward and every backward pays a full dequantisation of the weight before an
ordinary matmul (a fused GPU kernel hides part of that cost; on a CPU it is plainly visible). Keeping Ŵ between
forward and backward would put the float weights back in memory for the length of a step, so the custom autograd
function below saves only a reference to this layer and rebuilds Ŵ in the backward, as bitsandbytes' `MatMul4Bit`
does.

The quantised state lives in buffers (so `.to(device)` moves it and the model's state_dict holds it): `packed`
(uint8 codes, two per byte) and either `absmax` (float32 per block) or the double-quantised `dq_codes`, `dq_scales`,
`dq_offset` (blockwise.py). The layer must not be cast with `.to(dtype)`: the constants are float32 on purpose. A
compute dtype comes from the input, or from autocast when it is on (bf16 on CUDA or a CPU that has it).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.quant.blockwise import DoubleQuant, Quantized4bit, quantize_4bit


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a matmul on `x` runs in: autocast's where it is on for x's device, else x's own."""
    kind = x.device.type
    if kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind) and x.is_floating_point():
        return torch.get_autocast_dtype(kind)
    return x.dtype


class _FrozenMatmul(torch.autograd.Function):
    """y = x Ŵᵀ with Ŵ rebuilt from 4 bits in both passes; the gradient flows to x only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: "Linear4bit") -> torch.Tensor:
        dtype = _compute_dtype(x)
        ctx.layer, ctx.dtype, ctx.x_dtype = layer, dtype, x.dtype
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.to(dtype), layer.dequantize(dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        w = ctx.layer.dequantize(ctx.dtype)  # (out, in)
        return (grad.to(ctx.dtype) @ w).to(ctx.x_dtype), None


class Linear4bit(nn.Module):
    """An nn.Linear's weight quantised to a 4-bit data type (`nf4`, `fp4`, `int4`), frozen; its bias kept as is."""

    def __init__(self, linear: nn.Linear, quant_type: str = "nf4", block_size: int = 64, double_quant: bool = True):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.quant_type, self.block_size, self.double_quant = quant_type, block_size, double_quant
        q = quantize_4bit(linear.weight.detach(), quant_type, block_size, double_quant)
        self.register_buffer("packed", q.packed)
        if q.dq is not None:
            self.register_buffer("dq_codes", q.dq.codes)
            self.register_buffer("dq_scales", q.dq.scales)
            self.register_buffer("dq_offset", q.dq.offset.reshape(1))  # (1,): a 0-d tensor does not hash as bytes
        else:
            self.register_buffer("absmax", q.absmax)
        self.bias = linear.bias  # the same Parameter: its requires_grad is the caller's choice

    def quantized(self) -> Quantized4bit:
        """The stored weight as a `Quantized4bit` (views of the buffers, no copy)."""
        dq = DoubleQuant(self.dq_codes, self.dq_scales, self.dq_offset) if self.double_quant else None
        return Quantized4bit(self.packed, None if self.double_quant else self.absmax, dq,
                             (self.out_features, self.in_features), self.quant_type, self.block_size)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Ŵ (out, in) in `dtype` (computed in float32, cast once)."""
        return self.quantized().dequantize(dtype)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the stored weight: codes and constants (the bias not counted)."""
        return self.quantized().nbytes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _FrozenMatmul.apply(x, self)
        return y if self.bias is None else y + self.bias.to(y.dtype)

    def extra_repr(self) -> str:
        dq = ", double-quantised" if self.double_quant else ""
        return (f"in={self.in_features}, out={self.out_features}, {self.quant_type}, block {self.block_size}{dq}, "
                f"bias={self.bias is not None}")


def weight_memory_bytes(model: nn.Module) -> int:
    """Bytes the model's weights occupy in memory: every parameter once (tied ones once) at its dtype's size, plus
    the codes and constants of every 4-bit layer. Buffers that are not weights (a RoPE table) are not counted."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return params + sum(m.weight_bytes for m in model.modules() if isinstance(m, Linear4bit))
