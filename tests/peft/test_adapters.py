"""Bottleneck adapters (docs/peft.md): hand vector, exact no-op init, placement, counts, frozen base, save/load."""

import copy

import pytest
import torch
import torch.nn as nn

from helpers import LONG_CFG as CFG, assert_base_unchanged, long_base_model as base_model, long_ids as ids, train_steps
from minift.errors import ConfigError
from minift.peft import apply_method, count_parameters, disabled, load_adapter, merge, method_config, save_adapter
from minift.peft.adapters import BottleneckAdapter

L, D = CFG.n_layer, CFG.d_model


def adapters_of(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, BottleneckAdapter)}


def randomise(model, seed=5, std=0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def test_hand_vector():
    a = BottleneckAdapter(2, 1, "relu")
    with torch.no_grad():
        a.down.weight.copy_(torch.tensor([[1.0, 1.0]]))
        a.down.bias.zero_()
        a.up.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        a.up.bias.zero_()
    assert torch.equal(a(torch.tensor([[1.0, 2.0]])), torch.tensor([[4.0, -1.0]]))
    a.disabled = True
    assert torch.equal(a(torch.tensor([[1.0, 2.0]])), torch.tensor([[1.0, 2.0]]))


@pytest.mark.parametrize("method", ["adapter-houlsby", "adapter-pfeiffer"])
@pytest.mark.parametrize("activation", ["relu", "silu", "gelu", "tanh"])
def test_zero_init_is_bit_exact_noop(method, activation):
    base = base_model()
    x = ids()
    ref, _ = base(x)
    model = apply_method(copy.deepcopy(base), method_config(method, reduction_factor=4, activation=activation))
    out, _ = model(x)
    assert torch.equal(out, ref)
    for a in adapters_of(model).values():
        assert torch.equal(a.up.weight, torch.zeros_like(a.up.weight)) and not a.down.weight.eq(0).all()


def test_counts_and_placement_names():
    m = D // 4
    per = 2 * m * D + m + D
    h = apply_method(base_model(), method_config("adapter-houlsby", reduction_factor=4))
    p = apply_method(base_model(), method_config("adapter-pfeiffer", reduction_factor=4))
    assert sorted(adapters_of(h)) == sorted(f"blocks.{i}.{s}.adapter" for i in range(L) for s in ("attn", "mlp"))
    assert sorted(adapters_of(p)) == [f"blocks.{i}.adapter" for i in range(L)]
    assert count_parameters(h)["trainable"] == 2 * L * per
    assert count_parameters(p)["trainable"] == L * per
    assert count_parameters(h)["total"] == CFG_TOTAL() + 2 * L * per
    # d = 384, L = 6, rf = 16 (m = 24): the 226,080 / 113,040 of docs/peft.md
    assert 2 * 6 * (2 * 24 * 384 + 24 + 384) == 226_080 and 6 * (2 * 24 * 384 + 24 + 384) == 113_040
    for name, param in h.named_parameters():
        assert param.requires_grad == (".adapter." in name)
    one = apply_method(base_model(), method_config("adapter-houlsby", reduction_factor=4, layers=[1]))
    assert sorted(adapters_of(one)) == ["blocks.1.attn.adapter", "blocks.1.mlp.adapter"]


def CFG_TOTAL():
    v, t = CFG.vocab_size, CFG.block_size
    return L * (12 * D * D + 13 * D) + v * D + t * D + 2 * D


def test_train_layernorm_option_counts():
    m = D // 4
    model = apply_method(base_model(), method_config("adapter-houlsby", reduction_factor=4, train_layernorm=True))
    assert count_parameters(model)["trainable"] == 2 * L * (2 * m * D + m + D) + 4 * L * D
    assert model.blocks[0].ln1.weight.requires_grad and not model.ln_f.weight.requires_grad


@pytest.mark.parametrize("method", ["adapter-houlsby", "adapter-pfeiffer"])
def test_placement_by_constant_offset(method):
    """W_down = 0, b_down = 0, W_up = 0, b_up = c, σ(0) = 0 ⇒ each adapter adds exactly c: the model equals the base
    with a hook adding c to the attention and MLP outputs (Houlsby) or to the post-MLP stream (Pfeiffer)."""
    c = torch.linspace(-0.5, 0.5, D)
    base = base_model()
    model = apply_method(copy.deepcopy(base), method_config(method, reduction_factor=4, activation="relu"))
    with torch.no_grad():
        for a in adapters_of(model).values():
            a.down.weight.zero_()
            a.up.bias.copy_(c)
    hosts = ([blk.attn for blk in base.blocks] + [blk.mlp for blk in base.blocks] if method == "adapter-houlsby"
             else list(base.blocks))
    for host in hosts:
        host.register_forward_hook(lambda mod, args, out: out + c)
    x = ids()
    assert torch.allclose(model(x)[0], base(x)[0], atol=1e-6)


def test_houlsby_init_is_near_identity():
    base = base_model()
    x = ids()
    ref, _ = base(x)
    model = apply_method(copy.deepcopy(base), method_config("adapter-houlsby", reduction_factor=4, zero_init=False))
    for a in adapters_of(model).values():
        for w in (a.down.weight, a.up.weight):
            assert w.abs().max() <= 2e-2 and 0.004 < w.std() < 0.012  # truncated N(0, 1e-2²) at ±2σ
    out, _ = model(x)
    assert not torch.equal(out, ref)
    assert (out - ref).abs().max() / ref.abs().max() < 1e-2


def test_zero_init_gradients_and_frozen_base_after_training():
    base = base_model()
    model = apply_method(copy.deepcopy(base), method_config("adapter-pfeiffer", reduction_factor=4))
    x, y = ids(2), ids(3)
    model.train()
    _, loss = model(x, y)
    loss.backward()
    for a in adapters_of(model).values():
        assert torch.equal(a.down.weight.grad, torch.zeros_like(a.down.weight))  # W_up = 0 blocks it on step 1
        assert a.up.weight.grad.abs().sum() > 0
    model.zero_grad()
    losses = train_steps(model, x, y, steps=15)
    assert losses[-1] < losses[0]
    assert_base_unchanged(model, base)
    model.eval()
    with disabled(model):
        assert torch.equal(model(x)[0], base(x)[0])
    assert not torch.equal(model(x)[0], base(x)[0])


@pytest.mark.parametrize("method", ["adapter-houlsby", "adapter-pfeiffer"])
def test_save_load_round_trip(method, tmp_path):
    cfg = method_config(method, reduction_factor=8, activation="gelu")
    model = apply_method(base_model(), cfg)
    randomise(model)
    x = ids()
    want, _ = model(x)
    save_adapter(model, tmp_path / "a.pt")
    fresh = load_adapter(base_model(), tmp_path / "a.pt")
    assert fresh.peft_config == cfg
    assert torch.equal(fresh(x)[0], want)


def test_not_mergeable_and_config_errors():
    model = apply_method(base_model(), method_config("adapter-houlsby", reduction_factor=4))
    assert not type(model.peft_config).mergeable
    with pytest.raises(ConfigError, match="cannot be merged"):
        merge(model)
    with pytest.raises(ConfigError, match="no bottleneck"):
        apply_method(base_model(), method_config("adapter-pfeiffer", reduction_factor=64))
    with pytest.raises(ConfigError, match="activation"):
        method_config("adapter-houlsby", activation="swishy")
    with pytest.raises(ConfigError, match="reduction_factor"):
        method_config("adapter-houlsby", reduction_factor=0)
    with pytest.raises(ConfigError, match="do not exist"):
        apply_method(base_model(), method_config("adapter-houlsby", layers=[2]))


def test_adapter_keeps_fp32_with_bf16_input():
    a = BottleneckAdapter(8, 2, "silu", zero_init=False)
    z = torch.randn(3, 8).to(torch.bfloat16)
    out = a(z)
    assert out.dtype == torch.bfloat16 and a.up.weight.dtype == torch.float32
    assert isinstance(a.act, nn.SiLU)
