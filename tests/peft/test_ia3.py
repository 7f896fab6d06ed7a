"""(IA)³: hand vector (docs/peft.md), exact no-op at init, merging, the l_ff placement, counts."""

import pytest
import torch
import torch.nn as nn

from helpers import CFG, base_model, ids
from minift.errors import ConfigError
from minift.model.gpt import GPT
from minift.peft import (
    IA3Linear, apply_method, count_parameters, load_adapter, merge, merge_and_unload, method_config, save_adapter,
    trainable_parameters, unmerge,
)


def ia3_layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, IA3Linear)}


def perturb(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in ia3_layers(model).values():
            m.ia3_vector.copy_(1 + 0.3 * torch.randn(m.ia3_vector.shape, generator=g))


def test_hand_vector():
    def lin():
        layer = nn.Linear(2, 2)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
            layer.bias.fill_(1.0)
        return layer

    x = torch.tensor([[1.0, 1.0]])
    for scale_input, want in [(False, [8.0, 4.0]), (True, [4.0, 9.0])]:
        layer = IA3Linear(lin(), scale_input=scale_input)
        with torch.no_grad():
            layer.ia3_vector.copy_(torch.tensor([2.0, 0.5]))
        assert torch.allclose(layer(x), torch.tensor([want]), atol=1e-6)


def test_init_is_exactly_the_base():
    model = base_model()
    x = ids()
    want = model(x)[0]
    apply_method(model, method_config("ia3"))
    assert all(torch.equal(m.ia3_vector, torch.ones_like(m.ia3_vector)) for m in ia3_layers(model).values())
    assert torch.equal(model(x)[0], want)


def test_wiring_and_count():
    d, L = CFG.d_model, CFG.n_layer
    model = apply_method(base_model(), method_config("ia3"))
    layers = ia3_layers(model)
    assert sorted(layers) == sorted(f"blocks.{i}.{p}" for i in range(L) for p in ("attn.k", "attn.v", "mlp.proj"))
    for name, m in layers.items():
        assert m.scale_input == name.endswith("mlp.proj")
        assert m.ia3_vector.shape == ((4 * d,) if m.scale_input else (d,))
    assert count_parameters(model)["trainable"] == 6 * L * d  # docs/peft.md: 6Ld
    assert all(n.endswith("ia3_vector") for n, _ in trainable_parameters(model))
    one = apply_method(base_model(), method_config("ia3", layers=[1]))
    assert count_parameters(one)["trainable"] == 6 * d


def test_ff_vector_scales_the_mlp_inner_activation():
    """Independent computation: the paper's l_ff ⊙ GELU(W₁h), done with a forward hook on mlp.act."""
    base = base_model()
    model = apply_method(base_model(), method_config("ia3", targets=["mlp.proj"]))
    perturb(model)
    x = ids()
    handles = [blk.mlp.act.register_forward_hook(
        lambda mod, inp, out, l=model.blocks[i].mlp.proj.ia3_vector.detach(): out * l)
        for i, blk in enumerate(base.blocks)]
    want = base(x)[0]
    for h in handles:
        h.remove()
    assert torch.allclose(model(x)[0], want, atol=1e-6)


def test_merge_equivalence_and_weights_by_hand():
    model = apply_method(base_model(), method_config("ia3"))
    perturb(model)
    x = ids()
    want = model(x)[0]
    w0 = {n: (m.base.weight.detach().clone(), m.base.bias.detach().clone()) for n, m in ia3_layers(model).items()}
    merge(model)
    for n, m in ia3_layers(model).items():
        w, b = w0[n]
        l = m.ia3_vector.detach()
        if m.scale_input:  # W diag(l), bias untouched
            assert torch.allclose(m.base.weight, w @ torch.diag(l), atol=1e-6)
            assert torch.equal(m.base.bias, b)
        else:  # diag(l) W and l ⊙ b
            assert torch.allclose(m.base.weight, torch.diag(l) @ w, atol=1e-6)
            assert torch.allclose(m.base.bias, l * b, atol=1e-6)
    assert torch.allclose(model(x)[0], want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="already merged"):
        merge(model)
    unmerge(model)  # division by l: approximate in floating point
    for n, m in ia3_layers(model).items():
        assert torch.allclose(m.base.weight, w0[n][0], atol=1e-5, rtol=1e-5)
        assert torch.allclose(m.base.bias, w0[n][1], atol=1e-5, rtol=1e-5)
    assert torch.allclose(model(x)[0], want, atol=1e-5, rtol=1e-5)


def test_unmerge_with_zero_entry_raises():
    layer = IA3Linear(nn.Linear(3, 2))
    with torch.no_grad():
        layer.ia3_vector[0] = 0.0
    layer.merge()
    with pytest.raises(ConfigError, match="zero"):
        layer.unmerge()


def test_merge_and_unload_and_adapter_roundtrip(tmp_path):
    model = apply_method(base_model(), method_config("ia3"))
    perturb(model)
    x = ids()
    want = model(x)[0]
    save_adapter(model, tmp_path / "ia3.pt")
    assert torch.equal(load_adapter(base_model(), tmp_path / "ia3.pt")(x)[0], want)
    plain = merge_and_unload(model)
    assert not ia3_layers(plain) and list(plain.state_dict()) == list(GPT(CFG).state_dict())
    assert torch.allclose(plain(x)[0], want, atol=1e-5, rtol=1e-5)


def test_vectors_are_not_weight_decayed():
    from minift.training.optim import param_groups

    model = apply_method(base_model(), method_config("ia3"))
    groups = param_groups(model, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.0]  # decay would pull l towards 0, not the identity 1
    assert all(m.ia3_vector.no_decay is True for m in ia3_layers(model).values())


def test_bad_configs():
    with pytest.raises(ConfigError, match="tied"):
        apply_method(base_model(), method_config("ia3", targets=["lm_head"]))
    with pytest.raises(ConfigError, match="candidates"):
        apply_method(base_model(), method_config("ia3", targets=["attn.kk"]))
    with pytest.raises(ConfigError):
        method_config("ia3", targets=[])
