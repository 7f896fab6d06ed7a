"""The frozen 4-bit linear layer: it computes the dequantised float layer, gives the input its gradient (gradcheck)
and gives the 4-bit weight none."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.quant import Linear4bit, quantize_nf4, weight_memory_bytes
from minift.quant.linear4bit import _FrozenMatmul


def layer(bias=True, seed=0, **kw):
    torch.manual_seed(seed)
    return Linear4bit(nn.Linear(64, 48, bias=bias), **kw)


@pytest.mark.parametrize("kw", [{}, {"quant_type": "fp4", "double_quant": False}, {"quant_type": "int4",
                                                                                   "block_size": 32}])
def test_the_forward_is_the_dequantised_float_layer(kw):
    q = layer(**kw)
    x = torch.randn(3, 5, 64)
    assert torch.equal(q(x), F.linear(x, q.dequantize(), q.bias))


def test_input_gradient_by_gradcheck():
    q = layer()
    x = torch.randn(4, 64, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _FrozenMatmul.apply(t, q), (x,))
    # and it equals the float layer's input gradient
    x32 = torch.randn(4, 64, requires_grad=True)
    q(x32).square().sum().backward()
    x_ref = x32.detach().clone().requires_grad_(True)
    F.linear(x_ref, q.dequantize(), q.bias).square().sum().backward()
    assert torch.allclose(x32.grad, x_ref.grad, atol=1e-6)


def test_no_gradient_reaches_the_4bit_weight_but_a_trainable_bias_gets_one():
    q = layer()
    q.bias.requires_grad_(True)
    before = {n: b.clone() for n, b in q.named_buffers()}
    q(torch.randn(2, 64, requires_grad=True)).sum().backward()
    assert [n for n, p in q.named_parameters()] == ["bias"] and q.bias.grad is not None
    assert all(not b.requires_grad for b in q.buffers())
    assert all(torch.equal(b, before[n]) for n, b in q.named_buffers())


def test_the_backward_dequantises_again_instead_of_keeping_the_float_weight():
    """Nothing of size out × in in float is saved for the backward pass: only the input."""
    q = layer()
    x = torch.randn(2, 64, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        q(x)
    assert 64 * 48 not in saved


def test_bf16_autocast_computes_in_bf16_and_returns_an_fp32_input_gradient():
    q = layer()
    x = torch.randn(2, 64, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = q(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32
    expected = F.linear(x.bfloat16(), q.dequantize(torch.bfloat16)) + q.bias.bfloat16()
    assert torch.equal(y, expected)


def test_weight_bytes_and_memory():
    q = layer(bias=False)
    assert q.weight_bytes == quantize_nf4(torch.randn(48, 64)).nbytes == 48 * 64 // 2 + 48 + 4 + 4
    model = nn.Sequential(nn.Embedding(10, 64), layer(bias=True))
    assert weight_memory_bytes(model) == 4 * (10 * 64 + 48) + model[1].weight_bytes
