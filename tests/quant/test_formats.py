"""The 4-bit formats against hand-computed vectors, closed forms and invariants (QLoRA, Dettmers et al., 2023)."""

import math

import pytest
import torch

from minift.errors import ConfigError
from minift.quant import codebook, double_quantize, dynamic_map, normal_float_levels, quantize_4bit, quantize_nf4
from minift.quant.blockwise import absmax_dequantize, absmax_quantize, pack_nibbles, unpack_nibbles
from minift.quant.codebooks import NF4, thresholds
from minift.quant.ggml import roundtrip

NF4_MIDPOINTS = [-0.8480964, -0.6106329, -0.4599953, -0.3396794, -0.2346074, -0.1379117, -0.0455250, 0.0397901,
                 0.1202552, 0.2035213, 0.2920138, 0.3893125, 0.5016634, 0.6427869, 0.8614784]


def test_the_nf4_table():
    t = codebook("nf4")
    assert t.numel() == 16 and bool((t[1:] > t[:-1]).all())
    assert (t[0], t[7], t[15]) == (-1.0, 0.0, 1.0)
    assert (t < 0).sum() == 7 and (t > 0).sum() == 8  # asymmetric: 0 exact and all 16 codes in use


def test_nf4_is_derived_from_normal_quantiles():
    """The float64 derivation agrees with the stored float32 table to ~2e-7, not bit for bit (why it is written out)."""
    derived = normal_float_levels()
    assert torch.allclose(derived, torch.tensor(NF4, dtype=torch.float64), atol=1e-6, rtol=0)
    assert not torch.equal(derived.float(), codebook("nf4"))


def test_thresholds_are_midpoints_and_ties_go_to_the_lower_code():
    bounds, order = thresholds(codebook("nf4"))
    assert torch.allclose(bounds, torch.tensor(NF4_MIDPOINTS), atol=1e-7)
    assert torch.equal(order, torch.arange(16))
    # a value exactly on a midpoint gets the lower of the two codes
    on = bounds.view(-1, 1).expand(-1, 64).reshape(-1).clone()
    on[::64] = 1.0  # each block's absmax is 1, so the scaled values are the midpoints themselves
    codes, absmax = absmax_quantize(on, codebook("nf4"), 64)
    assert torch.equal(absmax, torch.ones(15))
    assert torch.equal(codes.view(15, 64)[:, 1], torch.arange(15, dtype=torch.uint8))


def test_one_block_by_hand():
    w = torch.zeros(64)
    w[:8] = torch.tensor([2.0, -2.0, 0.0, 1.0, -1.0, 0.16, -0.18, 1.5])
    q = quantize_nf4(w, double_quant=False)
    assert q.absmax.tolist() == [2.0]
    assert q.codes()[:8].tolist() == [15, 0, 7, 12, 2, 8, 6, 14]
    expected = torch.tensor([2.0, -2.0, 0.0, 0.88141966, -1.05014610, 0.15916060, -0.18210007, 1.44591367])
    assert torch.allclose(q.dequantize()[:8], expected, atol=1e-7, rtol=0)
    assert q.packed[:4].tolist() == [0xF0, 0x7C, 0x28, 0x6E]  # first element in the high nibble
    assert q.packed.numel() == 32


def test_packing_round_trips_and_pads_odd_counts():
    codes = torch.randint(0, 16, (101,), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    packed = pack_nibbles(codes, pad_code=7)
    assert packed.numel() == 51 and int(packed[-1]) & 0x0F == 7
    assert torch.equal(unpack_nibbles(packed, 101), codes)


@pytest.mark.parametrize("quant_type", ["nf4", "fp4", "int4"])
@pytest.mark.parametrize("shape", [(256, 256), (33, 65), (7,)])
def test_round_trip_error_is_within_half_the_largest_gap(quant_type, shape):
    """|w − ŵ| ≤ ½ · max gap · absmax of the element's block (NF4: 0.15190 · absmax), tail blocks included."""
    w = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    w.view(-1)[5] = 25.0  # an outlier: its block gets coarse, the others do not notice
    q = quantize_4bit(w, quant_type, 64, double_quant=False)
    levels = codebook(quant_type).sort().values
    half_gap = float((levels[1:] - levels[:-1]).max()) / 2
    if quant_type == "nf4":
        assert half_gap == pytest.approx(0.15190360, abs=1e-7)
    err = (w - q.dequantize()).abs().reshape(-1)
    bound = q.absmax.repeat_interleave(64)[:w.numel()] * half_gap
    assert bool((err <= bound + 1e-7).all())
    assert q.dequantize().shape == w.shape and q.dequantize().dtype == torch.float32


def test_values_on_the_grid_survive_exactly_and_zero_blocks_stay_zero():
    t = codebook("nf4")
    w = torch.cat([3.0 * t.repeat(4), torch.zeros(64)])  # block 1: 3·T[k] exactly; block 2: all zero
    q = quantize_nf4(w, double_quant=False)
    assert torch.equal(q.dequantize(), w)
    assert q.absmax[1] == 0 and bool(torch.isfinite(q.dequantize()).all())


def test_nf4_beats_int4_and_fp4_on_normal_weights():
    torch.manual_seed(0)
    w = torch.randn(256, 256)
    mse = {k: float(((w - quantize_4bit(w, k, 64, False).dequantize()) ** 2).mean()) for k in ("nf4", "fp4", "int4")}
    assert mse["nf4"] < mse["int4"] < mse["fp4"]
    assert mse["nf4"] == pytest.approx(0.008444, rel=2e-3)
    codes = quantize_nf4(w, double_quant=False).codes()
    p = torch.bincount(codes.long(), minlength=16).double() / codes.numel()
    entropy = float(-(p * p.log2()).sum())
    assert entropy == pytest.approx(3.888, abs=0.01)  # nearly 4 bits: the quantile levels are used about equally


def test_the_dynamic_map():
    m = dynamic_map()
    assert m.numel() == 256 and bool((m[1:] >= m[:-1]).all())
    assert m.min().item() == pytest.approx(-0.99296875) and m.max().item() == 1.0 and bool((m == 0).any())
    assert m[m > 0].min().item() == pytest.approx(5.5e-7, rel=1e-3)


def test_double_quantisation_by_hand():
    dq = double_quantize(torch.tensor([0.5, 1.0, 0.25, 2.0]))
    assert dq.offset.item() == 0.9375 and dq.scales.tolist() == [1.0625]
    assert dq.codes.tolist() == [41, 176, 25, 255]
    expected = torch.tensor([0.4950684, 1.0004200, 0.2560058, 2.0])
    assert torch.allclose(dq.dequantize(), expected, atol=1e-6, rtol=0)
    assert bool(((dq.dequantize() - torch.tensor([0.5, 1.0, 0.25, 2.0])).abs() / 2.0 <= 0.025).all())


def test_bits_per_parameter():
    assert 4 + 8 / 64 + 32 / (64 * 256) == 4.126953125
    w = torch.randn(4096, 4096)
    assert quantize_nf4(w, double_quant=False).bits_per_parameter == 4.5
    q = quantize_nf4(w)
    # codes + one byte per block + one float per 256 blocks + the 4-byte offset
    assert q.nbytes == 4096 * 4096 // 2 + 4096 * 4096 // 64 + 4 * math.ceil(4096 * 4096 / 64 / 256) + 4
    assert q.bits_per_parameter == pytest.approx(4.126953125, abs=1e-5)


def test_the_quantised_tensor_holds_only_codes_and_constants():
    q = quantize_nf4(torch.randn(128, 64))
    assert q.packed.dtype == torch.uint8 and q.packed.numel() == 128 * 64 // 2 and q.absmax is None
    assert q.dq.codes.numel() == 128 and q.dq.scales.numel() == 1


def test_fast_dequantisation_equals_the_plain_one():
    w = torch.randn(33, 65, generator=torch.Generator().manual_seed(2))
    for kind in ("nf4", "fp4", "int4"):
        q = quantize_4bit(w, kind, 32)
        plain = absmax_dequantize(q.codes(), q.block_absmax(), codebook(kind), 32).view(33, 65)
        assert torch.equal(q.dequantize(), plain)
        assert q.dequantize(torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("bad", [16, 48, 8192, True, 64.0])
def test_block_sizes_are_checked(bad):
    with pytest.raises(ConfigError, match="power of two"):
        quantize_nf4(torch.randn(64), block_size=bad)


def test_ggml_blocks_by_hand():
    """Q4_0: d = (signed extreme)/−8; Q4_1: d = (max − min)/15 with the minimum as offset; both with fp16 scales."""
    w = torch.linspace(-1, 2, 32)
    q41 = roundtrip(w, "q4_1")  # evenly spaced values on 16 levels of a 32-value block: within half a step
    assert float((w - q41).abs().max()) <= 3 / 15 / 2 + 1e-3
    q40 = roundtrip(w, "q4_0")
    assert q40.max().item() == pytest.approx(2.0, rel=1e-3)  # the extreme is exact (up to the fp16 scale)
    assert q40.min().item() == pytest.approx(-1.0, abs=0.25 + 1e-3)
    with pytest.raises(ValueError, match="32"):
        roundtrip(torch.randn(33), "q4_0")
