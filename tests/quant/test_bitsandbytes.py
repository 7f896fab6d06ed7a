"""minift's 4-bit formats against bitsandbytes' CPU backend (the test-only `peers` extra): the same codes and the
same dequantised values, bit for bit, on several shapes with an outlier and a tail block."""

import pytest
import torch

from minift.quant import codebook, dynamic_map, quantize_4bit
from minift.quant.blockwise import absmax_quantize

bnb_functional = pytest.importorskip("bitsandbytes.functional")
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute  # noqa: E402

SHAPES = [(256, 256), (33, 65), (1536, 576), (7,), (3, 1000), (64, 384)]


def weights(shape, seed=0):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 0.05
    w.view(-1)[3] = 1.5    # an outlier: one coarse block
    w.view(-1)[-1] = -0.9  # and one in the tail block
    return w


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("block_size", [64, 128])
@pytest.mark.parametrize("shape", SHAPES)
def test_codes_constants_and_values_equal_bitsandbytes(shape, block_size, quant_type):
    w = weights(shape)
    ours = quantize_4bit(w, quant_type, block_size, double_quant=False)
    packed, state = bnb_functional.quantize_4bit(w, blocksize=block_size, quant_type=quant_type)
    assert torch.equal(packed.view(-1), ours.packed)
    assert torch.equal(state.absmax, ours.absmax)
    # bitsandbytes' PyTorch reference dequantisation (eager, not compiled)
    reference = _dequantize_4bit_compute.__wrapped__(packed.view(-1), state.absmax, state.code, block_size,
                                                     w.shape, torch.float32)
    assert torch.equal(reference, ours.dequantize())
    # its native CPU kernel decodes row by row, which is right only when no block straddles two rows
    if len(shape) == 1 or shape[-1] % block_size == 0:
        assert torch.equal(bnb_functional.dequantize_4bit(packed, state), ours.dequantize())
    assert torch.equal(bnb_functional.get_4bit_type(quant_type, device="cpu"), codebook(quant_type))


def test_the_dynamic_map_equals_bitsandbytes():
    assert torch.equal(bnb_functional.create_dynamic_map(signed=True), dynamic_map())


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_double_quantisation_agrees_with_bitsandbytes(shape):
    """The offset and the second-level scales are identical. The 8-bit codes are the nearest map entry, as in
    bitsandbytes' PyTorch backend; its native CPU kernel picks the neighbouring entry for a few constants (its
    search is approximate), so there the test checks that minift's code is the nearer one. Given the same
    constants, the dequantised weights are identical."""
    w = weights(shape, seed=1)
    ours = quantize_4bit(w, "nf4", 64, double_quant=True)
    packed, state = bnb_functional.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    assert torch.equal(packed.view(-1), ours.packed)
    assert torch.equal(state.offset, ours.dq.offset) and torch.equal(state.state2.absmax, ours.dq.scales)
    _, first = absmax_quantize(w, torch.tensor([0.0]), 64)  # the first-level constants a_b
    c = first - first.mean()
    scaled = c / ours.dq.scales.repeat_interleave(256)[:c.numel()]
    m = dynamic_map()
    differ = (state.absmax != ours.dq.codes).nonzero().view(-1)
    assert differ.numel() <= 0.02 * c.numel()
    for i in differ.tolist():
        assert abs(scaled[i] - m[ours.dq.codes[i].long()]) < abs(scaled[i] - m[state.absmax[i].long()])
    # bitsandbytes' dequantisation from minift's constants gives minift's weights
    state.absmax = ours.dq.codes.clone()
    assert torch.equal(bnb_functional.dequantize_4bit(packed, state), ours.dequantize())
