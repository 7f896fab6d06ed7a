"""The 4-bit and 8-bit code tables: which 16 (or 256) numbers a code can stand for.

A k-bit "data type" here is a lookup table T of 2ᵏ values in [−1, 1]; a weight w in a block with absolute maximum
a is stored as the index q of the entry nearest to w / a, and read back as T[q]·a (blockwise.py).

NF4, NormalFloat (Dettmers et al., 2023, "QLoRA", §3). Pretrained weights are close to N(0, σ²), so after dividing by
the block's absmax they fill [−1, 1] like a normal distribution, dense near 0 and sparse in the tails. NF4 puts its
16 levels at quantiles of N(0, 1), so that each level is used about equally often (an information-theoretically
good choice for normal data):

    δ = ½((1 − 1/30) + (1 − 1/32)) = 0.9677083
    positives: Φ⁻¹(p) for 9 evenly spaced p from δ down to ½, the p = ½ point dropped  → 8 values
    negatives: −Φ⁻¹(p) for 8 evenly spaced p from δ down to ½, the p = ½ point dropped  → 7 values
    add an exact 0, sort, divide by Φ⁻¹(δ) ≈ 1.84813 so that the ends are exactly ±1.

The split is asymmetric (7 negative, 8 positive levels) so that 0 is represented exactly and all 16 codes are used.
`NF4` below is the table as bitsandbytes stores it (float32); re-deriving it in float64 (`normal_float_levels`) agrees
to about 2e-7, which is why the table is written out rather than computed.

FP4 (E2M1): 1 sign, 2 exponent and 1 mantissa bit, indexed by bit pattern, values ±{0, 0.0625, 2, 3, 4, 6, 8, 12} / 12.
Int4: evenly spaced levels ±{0, …, 7} / 7. Both are here for comparison; NF4 beats them on normal weights.

The dynamic 8-bit map (Dettmers, 2016, "8-Bit Approximations for Parallelism in Deep Learning"): a signed
dynamic-exponent type used by double quantisation for the block constants (blockwise.py). For exponent level
i = 0…6 it takes the midpoints of 2ⁱ + 1 evenly spaced points on [0.1, 1], scaled by 10^(i−6), with both signs; then
0 and +1. That is 2·(1 + 2 + … + 64) + 2 = 256 sorted values in [−0.99296875, 1].
"""

from __future__ import annotations

import functools

import torch

# NF4 as bitsandbytes stores it; index = the 4-bit code (sorted, so code order = value order)
NF4 = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)
# FP4 E2M1 by bit pattern: s e e m; code 8 is −0 (so two codes mean zero)
FP4 = tuple(v / 12 for v in (0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3))
# Int4: code 0 is +7/7, code 15 is −7/7 (sign-magnitude order, as bitsandbytes lists it; two zeros again)
INT4 = tuple(v / 7 for v in (7, 6, 5, 4, 3, 2, 1, 0, -0.0, -1, -2, -3, -4, -5, -6, -7))

CODEBOOKS = {"nf4": NF4, "fp4": FP4, "int4": INT4}
NF4_OFFSET = 0.5 * ((1 - 1 / 30) + (1 - 1 / 32))  # δ = 0.9677083…


def codebook(name: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """The 16 values of a 4-bit data type (`nf4`, `fp4` or `int4`) as a float32 tensor, indexed by code."""
    if name not in CODEBOOKS:
        raise ValueError(f"unknown 4-bit data type {name!r}; use one of {sorted(CODEBOOKS)}")
    return torch.tensor(CODEBOOKS[name], dtype=torch.float32, device=device)


def normal_float_levels(offset: float = NF4_OFFSET) -> torch.Tensor:
    """NF4 derived from normal quantiles in float64 (the construction in the module docstring), (16,)."""
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64))[:-1]   # 8 values
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64))[:-1]  # 7 values
    levels = torch.cat([pos, torch.zeros(1, dtype=torch.float64), neg]).sort().values
    return levels / levels.max()


def thresholds(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decision boundaries of a table: (midpoints between neighbouring sorted values (15,), the sort order (16,)).

    A scaled value u gets the code order[bucketize(u, midpoints)]: `torch.bucketize` with right=False sends a value
    exactly on a midpoint to the LOWER level, as bitsandbytes does. For NF4 the order is the identity."""
    order = torch.argsort(table)
    s = table[order]
    return (s[:-1] + s[1:]) / 2, order


@functools.lru_cache(maxsize=1)
def dynamic_map() -> torch.Tensor:
    """The signed 8-bit dynamic-exponent map (256 sorted float32 values), built the way bitsandbytes builds it
    (float32 arithmetic for the midpoints and the scaling). Built once (every forward of a 4-bit layer reads it);
    treat the returned tensor as read-only."""
    values: list[float] = []
    for i in range(7):
        points = torch.linspace(0.1, 1, 2**i + 1, dtype=torch.float32)
        means = (points[:-1] + points[1:]) / 2
        scale = 10 ** (i - 6)
        values += (scale * means).tolist() + (-scale * means).tolist()
    values += [0.0, 1.0]
    return torch.tensor(sorted(values), dtype=torch.float32)
