"""DoRA (docs/peft.md): hand vector, init = base with magnitude = row norms, merging, the detached-norm gradient,
bias and dropout."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers import CFG, base_model, ids, linear, lora_layers, randomise_B
from minift.peft import LoRALinear, apply_method, count_parameters, merge, method_config, unmerge


def test_dora_hand_vector():
    layer = LoRALinear(linear([[3, 4], [0, 2]], [1, 1]), r=1, alpha=1, use_dora=True)
    assert torch.allclose(layer.lora_magnitude, torch.tensor([5.0, 2.0]))
    with torch.no_grad():  # s·BA = [[0, 1], [0, 0]]
        layer.lora_A.copy_(torch.tensor([[0.0, 1.0]]))
        layer.lora_B.copy_(torch.tensor([[1.0], [0.0]]))
    x = torch.tensor([[1.0, 1.0]])
    assert torch.allclose(layer(x), torch.tensor([[7.8599434, 3.0]]), atol=1e-6)
    layer.merge()
    assert torch.allclose(layer.base.weight, torch.tensor([[2.5724788, 4.2874646], [0.0, 2.0]]), atol=1e-6)
    assert torch.allclose(layer(x), torch.tensor([[7.8599434, 3.0]]), atol=1e-6)
    layer.unmerge()
    assert torch.allclose(layer.base.weight, torch.tensor([[3.0, 4.0], [0.0, 2.0]]), atol=1e-6)


def test_dora_init_is_base_and_magnitude_is_row_norm():
    model = base_model()
    x = ids()
    want = model(x)[0]
    apply_method(model, method_config("dora", r=4, targets="all-linear"))
    assert torch.allclose(model(x)[0], want, atol=1e-6, rtol=0)
    for m in lora_layers(model).values():
        assert m.lora_magnitude.shape == (m.base.out_features,)
        assert torch.allclose(m.lora_magnitude, m.base.weight.norm(dim=1), atol=1e-6)
    d, L, r = CFG.d_model, CFG.n_layer, 4
    assert count_parameters(model)["trainable"] == 18 * L * r * d + L * (5 * d + 4 * d)  # + out per matrix


def test_dora_merge_row_norms_and_equivalence():
    model = apply_method(base_model(), method_config("dora", r=4, targets="all-linear"))
    randomise_B(model)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in lora_layers(model).values():
            m.lora_magnitude.mul_(1 + 0.1 * torch.randn(m.lora_magnitude.shape, generator=g))
    x = ids()
    want = model(x)[0]
    w0 = {n: m.base.weight.detach().clone() for n, m in lora_layers(model).items()}
    merge(model)
    for m in lora_layers(model).values():
        assert torch.allclose(m.base.weight.norm(dim=1), m.lora_magnitude, atol=1e-5, rtol=1e-5)
    assert torch.allclose(model(x)[0], want, atol=1e-5, rtol=1e-5)
    unmerge(model)
    for n, m in lora_layers(model).items():
        assert torch.allclose(m.base.weight, w0[n], atol=1e-5, rtol=1e-5)


def _dora_reference(x, w0, b, A, B, m, s, detach):
    v = w0 + s * B @ A
    n = v.norm(dim=1)
    n = n.detach() if detach else n
    return (m / n) * (x @ v.T) + b


def test_dora_gradients_use_detached_norm():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, r=2, alpha=4, use_dora=True)
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(5, 2))
        layer.lora_magnitude.mul_(1.3)
    x = torch.randn(4, 6)
    params = [layer.lora_magnitude, layer.lora_A, layer.lora_B]
    got = torch.autograd.grad(layer(x).square().sum(), params)
    for detach in (True, False):
        ref = [p.detach().clone().requires_grad_(True) for p in params]
        y = _dora_reference(x, base.weight.detach(), base.bias.detach(), ref[1], ref[2], ref[0], layer.scale, detach)
        want = torch.autograd.grad(y.square().sum(), ref)
        close = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, want))
        assert close == detach


def test_dora_bias_not_rescaled():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), r=2, use_dora=True)
    with torch.no_grad():
        layer.lora_magnitude.mul_(2.0)
    x = torch.randn(4, 6)
    assert torch.allclose(layer(x) - layer.base.bias, 2 * (x @ layer.base.weight.T), atol=1e-6)


def test_dora_dropout_formula():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), r=2, alpha=4, dropout=0.5, use_dora=True).train()
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(5, 2))
        layer.lora_magnitude.mul_(1.2)
    x = torch.randn(4, 6)
    torch.manual_seed(7)
    y = layer(x)
    torch.manual_seed(7)
    xd = F.dropout(x, 0.5, training=True)  # the same mask the layer drew
    w0, b = layer.base.weight.detach(), layer.base.bias.detach()
    g = layer.lora_magnitude.detach() / (w0 + layer.delta_weight().detach()).norm(dim=1)
    want = x @ w0.T + b + (g - 1) * (xd @ w0.T) + g * layer.scale * (xd @ layer.lora_A.T @ layer.lora_B.T)
    assert torch.allclose(y, want, atol=1e-6)
