"""Block-wise absmax quantisation, nibble packing and double quantisation: how QLoRA stores a weight in ~4.13 bits.

Quantising a tensor W with a code table T (codebooks.py) and block size B (Dettmers et al., 2023, "QLoRA", §3):

    flatten W row-major (for a Linear: the (out, in) weight), cast to float32
    split into blocks of B consecutive values; a shorter tail block gets its own constant
    a_b = max |w| over block b                                        one float32 per block
    u = clamp(w / a_b, −1, 1)                                         (an all-zero block divides by ~1e-38, not 0)
    q = the code of the nearest table value; a tie goes to the LOWER value (codebooks.thresholds)
    ŵ = T[q] · a_b                                                    dequantised, float32

    |w − ŵ| ≤ ½ · (largest gap between neighbouring table values) · a_b       (NF4: 0.15190 · a_b)

One outlier makes its whole block coarse (a_b is large, every other value lands near 0): small blocks contain that.

Packing: two codes per byte, the FIRST element in the HIGH nibble, byte k = (q[2k] << 4) | q[2k+1]; an odd count
pads one code for the value 0 (bitsandbytes' layout).

Double quantisation (QLoRA §3): the float32 constants cost 32/B bits per weight (0.5 at B = 64). Quantise them too:

    offset = mean(a)                           one float32 per tensor (the constants are all positive: centre them)
    c = a − offset, in blocks of 256:  s_k = max |c| over block k          one float32 per 256 constants
    code = nearest entry of the signed 8-bit dynamic map M to c / s_k       one byte per constant
    â = M[code] · s_k + offset

    bits per weight, NF4 + double quantisation at B = 64:  4 + 8/64 + 32/(64·256) = 4.126953125   (4.5 without)

The codes are identical to bitsandbytes' CPU backend (tests/quant/test_bitsandbytes.py); docs/quantization.md walks
through one block by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from minift.errors import ConfigError
from minift.quant.codebooks import codebook, dynamic_map, thresholds

DQ_BLOCK = 256  # constants per second-level block (QLoRA's choice)


def check_block_size(block_size: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 32 or block_size > 4096 \
            or block_size & (block_size - 1):
        raise ConfigError(f"block size must be a power of two from 32 to 4096 (QLoRA uses 64), got {block_size!r}")


def absmax_quantize(x: torch.Tensor, table: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (n,) uint8 and block constants (⌈n/B⌉,) float32 of a tensor flattened row-major."""
    flat = x.detach().reshape(-1).float()
    n = flat.numel()
    pad = -n % block_size
    # pad the tail block with zeros: they change neither its absmax nor the other values' codes, and are cut off below
    blocks = F.pad(flat, (0, pad)).view(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    # multiply by the reciprocal, as bitsandbytes does, so that codes agree bit for bit
    scaled = (blocks * (1.0 / absmax.clamp(min=1e-38))[:, None]).clamp(-1, 1).reshape(-1)[:n]
    bounds, order = thresholds(table.to(flat.device))
    codes = order[torch.bucketize(scaled, bounds)].to(torch.uint8)
    return codes, absmax


def absmax_dequantize(codes: torch.Tensor, absmax: torch.Tensor, table: torch.Tensor,
                      block_size: int) -> torch.Tensor:
    """ŵ = T[q] · a_b, float32, flat (n,)."""
    n = codes.numel()
    values = table.to(absmax.device)[codes.long()]
    pad = -n % block_size
    values = F.pad(values, (0, pad)).view(-1, block_size) * absmax[:, None]
    return values.reshape(-1)[:n]


def pair_table(quant_type: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """(256, 2) float32: row b holds the values of the two codes packed in byte b, (T[b >> 4], T[b & 15])."""
    table = codebook(quant_type, device)
    return torch.stack([table.repeat_interleave(16), table.repeat(16)], dim=1)


def pack_nibbles(codes: torch.Tensor, pad_code: int = 0) -> torch.Tensor:
    """(n,) uint8 codes < 16 → (⌈n/2⌉,) bytes, first element in the high nibble; odd n pads with `pad_code`."""
    if codes.numel() % 2:
        codes = torch.cat([codes, codes.new_tensor([pad_code])])
    return (codes[0::2] << 4) | codes[1::2]


def unpack_nibbles(packed: torch.Tensor, n: int) -> torch.Tensor:
    """The inverse of `pack_nibbles`: (⌈n/2⌉,) bytes → (n,) codes."""
    return torch.stack([packed >> 4, packed & 0x0F], dim=1).reshape(-1)[:n]


@dataclass
class DoubleQuant:
    """Block constants stored in 8 bits: â = map[codes] · scales[k] + offset."""

    codes: torch.Tensor    # (n_blocks,) uint8
    scales: torch.Tensor   # (⌈n_blocks/256⌉,) float32
    offset: torch.Tensor   # () float32

    def dequantize(self) -> torch.Tensor:
        return absmax_dequantize(self.codes, self.scales, dynamic_map().to(self.scales.device), DQ_BLOCK) \
            + self.offset

    @property
    def nbytes(self) -> int:
        return self.codes.numel() + 4 * self.scales.numel() + 4


def double_quantize(absmax: torch.Tensor, block_size: int = DQ_BLOCK) -> DoubleQuant:
    """Quantise first-level constants: centre on their mean, then 8-bit dynamic-map codes in blocks of 256."""
    offset = absmax.float().mean()
    codes, scales = absmax_quantize(absmax.float() - offset, dynamic_map().to(absmax.device), block_size)
    return DoubleQuant(codes, scales, offset)


@dataclass
class Quantized4bit:
    """A tensor in 4 bits: the packed codes plus the per-block constants (float32, or double-quantised).

    Nothing else scales with the weight: `shape`, `quant_type` and `block_size` are a few numbers."""

    packed: torch.Tensor              # (⌈n/2⌉,) uint8, two codes per byte
    absmax: torch.Tensor | None       # (⌈n/B⌉,) float32, when not double-quantised
    dq: DoubleQuant | None            # the constants in 8 bits, when double-quantised
    shape: tuple[int, ...]
    quant_type: str = "nf4"
    block_size: int = 64

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def codes(self) -> torch.Tensor:
        return unpack_nibbles(self.packed, self.numel)

    def block_absmax(self) -> torch.Tensor:
        """The first-level constants a_b as the forward uses them (recovered from 8 bits if double-quantised)."""
        return self.dq.dequantize() if self.dq is not None else self.absmax

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """ŵ in the original shape: computed in float32, then cast to `dtype`.

        The same values as `absmax_dequantize(self.codes(), ...)`, 2–3× faster: a byte holds two codes, so a
        256-row table of value pairs (T[b >> 4], T[b & 15]) decodes both with one lookup (`F.embedding`)."""
        pairs = pair_table(self.quant_type, self.packed.device)
        values = F.embedding(self.packed.int(), pairs).reshape(-1)[:self.numel]
        tail = -self.numel % self.block_size
        blocks = (F.pad(values, (0, tail)) if tail else values).view(-1, self.block_size)
        return (blocks * self.block_absmax()[:, None]).reshape(-1)[:self.numel].view(self.shape).to(dtype)

    @property
    def nbytes(self) -> int:
        """Bytes this format needs for the tensor: codes + constants (+ 4 for the offset of double quantisation)."""
        constants = self.dq.nbytes if self.dq is not None else 4 * self.absmax.numel()
        return self.packed.numel() + constants

    @property
    def bits_per_parameter(self) -> float:
        return 8 * self.nbytes / self.numel


def quantize_4bit(w: torch.Tensor, quant_type: str = "nf4", block_size: int = 64,
                  double_quant: bool = True) -> Quantized4bit:
    """Quantise `w` block-wise to a 4-bit data type (`nf4`, `fp4` or `int4`); see the module docstring."""
    check_block_size(block_size)
    table = codebook(quant_type, w.device)
    codes, absmax = absmax_quantize(w, table, block_size)
    bounds, order = thresholds(table)
    packed = pack_nibbles(codes, pad_code=int(order[torch.bucketize(torch.zeros((), device=w.device), bounds)]))
    if double_quant:
        return Quantized4bit(packed, None, double_quantize(absmax), tuple(w.shape), quant_type, block_size)
    return Quantized4bit(packed, absmax, None, tuple(w.shape), quant_type, block_size)


def quantize_nf4(w: torch.Tensor, block_size: int = 64, double_quant: bool = True) -> Quantized4bit:
    """NF4, QLoRA's data type: `quantize_4bit(w, "nf4", block_size, double_quant)`."""
    return quantize_4bit(w, "nf4", block_size, double_quant)
