"""llama.cpp's 4-bit blocks, Q4_0 and Q4_1: the format SmolLM2 arrives in, set beside NF4.

ggml quantises blocks of 32 consecutive values with evenly spaced levels and float16 constants (ggml-quants.c, the
reference `quantize_row_q4_0_ref` / `quantize_row_q4_1_ref`; minift/base/gguf.py reads the stored bytes):

    Q4_0, symmetric, 18 bytes / 32 values = 4.5 bits:
        m = the value of largest magnitude (with its sign),  d = m / −8
        q = min(15, ⌊w/d + 8.5⌋)  ∈ {0…15},                  ŵ = fp16(d) · (q − 8)
    Q4_1, with a minimum, 20 bytes / 32 values = 5 bits:
        d = (max − min) / 15
        q = min(15, ⌊(w − min)/d + 0.5⌋),                     ŵ = fp16(d) · q + fp16(min)

The differences from NF4 (blockwise.py) in one line each: evenly spaced levels instead of normal quantiles; Q4_0 maps
the signed extreme exactly to −8·d, so its largest value of the opposite sign can only reach +7·d; Q4_1 spends 16 more
bits per block on an offset, which helps asymmetric blocks; the scales are float16, so they carry a rounding error of
their own (2⁻¹¹ relative); blocks of 32, not 64. `roundtrip` returns ŵ so that the formats' errors can be compared.
"""

from __future__ import annotations

import torch

GGML_BLOCK = 32
BITS = {"q4_0": 18 * 8 / 32, "q4_1": 20 * 8 / 32}  # 4.5 and 5.0 bits per weight


def roundtrip(w: torch.Tensor, kind: str) -> torch.Tensor:
    """ŵ = dequantise(quantise(w)) in Q4_0 or Q4_1, float32, w's shape (the element count must divide by 32)."""
    if kind not in BITS:
        raise ValueError(f"unknown ggml block type {kind!r}; use one of {sorted(BITS)}")
    if w.numel() % GGML_BLOCK:
        raise ValueError(f"ggml blocks hold {GGML_BLOCK} values; a tensor of {w.numel()} does not divide into them")
    blocks = w.detach().reshape(-1, GGML_BLOCK).float()
    if kind == "q4_0":
        extreme = blocks.gather(1, blocks.abs().argmax(dim=1, keepdim=True))  # signed value of largest |w|
        d = extreme / -8
        inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
        q = torch.trunc(blocks * inv + 8.5).clamp(0, 15)
        out = d.half().float() * (q - 8)
    else:
        lo, hi = blocks.amin(dim=1, keepdim=True), blocks.amax(dim=1, keepdim=True)
        d = (hi - lo) / 15
        inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
        q = torch.trunc((blocks - lo) * inv + 0.5).clamp(0, 15)
        out = d.half().float() * q + lo.half().float()
    return out.reshape(w.shape)
