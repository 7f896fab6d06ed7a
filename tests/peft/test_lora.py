"""LoRA: hand vectors (docs/peft.md), init, gradients, scaling, merging, targets, bias modes.
DoRA, which reuses LoRALinear, is tested in test_dora.py."""

import math

import pytest
import torch
import torch.nn as nn

from helpers import CFG, base_model, ids, linear, lora_layers, randomise_B
from minift.errors import ConfigError
from minift.model.gpt import GPT
from minift.peft import (
    LoRALinear, PeftModule, apply_method, count_parameters, disabled, lora_scale, merge, merge_and_unload,
    method_config, trainable_parameters, unmerge,
)


def test_hand_vector():
    layer = LoRALinear(linear([[1, 2], [3, 4]], [0.5, -0.5]), r=1, alpha=2)
    with torch.no_grad():
        layer.lora_A.copy_(torch.tensor([[1.0, -1.0]]))
        layer.lora_B.copy_(torch.tensor([[2.0], [1.0]]))
    x = torch.tensor([[1.0, 2.0]])
    assert torch.allclose(layer(x), torch.tensor([[1.5, 8.5]]), atol=1e-6)
    layer.merge()
    assert torch.allclose(layer.base.weight, torch.tensor([[5.0, -2.0], [5.0, 2.0]]), atol=1e-6)
    assert torch.allclose(layer(x), torch.tensor([[1.5, 8.5]]), atol=1e-6)


def test_init_distributions():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(400, 16), r=64)
    bound = 1 / math.sqrt(400)  # Kaiming-uniform(a=√5): gain √(1/3) · √(3/in) = 1/√in
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.99 * bound
    assert torch.equal(layer.lora_B, torch.zeros(16, 64))
    assert layer.lora_A.dtype == torch.float32
    gauss = LoRALinear(nn.Linear(4000, 16), r=4, init="gaussian")
    assert gauss.lora_A.std().item() == pytest.approx(1 / 4, rel=0.05)


@pytest.mark.parametrize("kwargs", [{}, {"r": 1, "alpha": 7.0}, {"targets": "all-linear", "dropout": 0.3},
                                    {"r": 16, "rslora": True, "targets": "all-linear"}])
def test_zero_B_is_exactly_the_base(kwargs):
    model = base_model()
    x = ids()
    want = model(x)[0]
    apply_method(model, method_config("lora", **kwargs))
    assert torch.equal(model(x)[0], want)


def test_step_one_gradients():
    model = apply_method(base_model().train(), method_config("lora", r=4, targets="all-linear"))
    x = ids()
    _, loss = model(x, targets=ids(2))
    loss.backward()
    for m in lora_layers(model).values():
        assert torch.equal(m.lora_A.grad, torch.zeros_like(m.lora_A))  # ∂L/∂A = s·Bᵀ(…) and B = 0
        assert m.lora_B.grad.abs().sum() > 0
    before = {n: m.lora_A.detach().clone() for n, m in lora_layers(model).items()}
    torch.optim.SGD([p for _, p in trainable_parameters(model)], lr=0.1).step()
    for n, m in lora_layers(model).items():
        assert torch.equal(m.lora_A, before[n])


def test_scaling_rule_and_branch_by_hand():
    assert lora_scale(8, 4) == 2 and lora_scale(8, 4, rslora=True) == 4
    assert lora_scale(16, 16) == 1 and lora_scale(16, 16, rslora=True) == 4
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    x = torch.randn(3, 6)
    deltas = {}
    for alpha, rs in [(4.0, False), (8.0, False), (8.0, True)]:
        layer = LoRALinear(base, r=4, alpha=alpha, rslora=rs)
        with torch.no_grad():
            layer.lora_A.copy_(torch.arange(24.0).view(4, 6) / 24)
            layer.lora_B.copy_(torch.arange(20.0).view(5, 4) / 20 - 0.5)
        s = alpha / (math.sqrt(4) if rs else 4)
        want = base(x) + s * (x @ layer.lora_A.T @ layer.lora_B.T)
        assert torch.allclose(layer(x), want, atol=1e-6)
        deltas[(alpha, rs)] = layer.delta_weight()
        assert torch.linalg.matrix_rank(deltas[(alpha, rs)]) <= 4
    assert torch.allclose(deltas[(8.0, False)], 2 * deltas[(4.0, False)])
    assert torch.allclose(deltas[(8.0, True)], 2 * deltas[(8.0, False)])  # α/√4 = 2·α/4


def test_merge_matches_hand_computation_and_unmerge_restores():
    model = apply_method(base_model(), method_config("lora", r=4, alpha=8, targets="all-linear"))
    randomise_B(model)
    x = ids()
    want = model(x)[0]
    w0 = {n: m.base.weight.detach().clone() for n, m in lora_layers(model).items()}
    by_hand = {n: w0[n] + 2.0 * m.lora_B.detach() @ m.lora_A.detach() for n, m in lora_layers(model).items()}
    merge(model)
    for n, m in lora_layers(model).items():
        assert m.merged
        assert torch.allclose(m.base.weight, by_hand[n], atol=1e-6)
    assert torch.allclose(model(x)[0], want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="already merged"):
        merge(model)
    unmerge(model)
    # (W + Δ) − Δ is not bit-exact in floating point: the tolerance is 1e-6 in fp32
    for n, m in lora_layers(model).items():
        assert torch.allclose(m.base.weight, w0[n], atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="not merged"):
        unmerge(model)


def test_merge_is_not_tied_to_train_eval():
    model = apply_method(base_model(), method_config("lora", r=4))
    randomise_B(model)
    w = model.blocks[0].attn.q.base.weight.detach().clone()
    model.train()
    model.eval()
    assert torch.equal(model.blocks[0].attn.q.base.weight, w)
    assert not any(m.merged for m in lora_layers(model).values())


def test_base_is_bit_identical_after_training():
    model = apply_method(base_model().train(), method_config("lora", r=4, targets="all-linear", dropout=0.1))
    start = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(3):
        _, loss = model(ids(step), targets=ids(step + 10))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in start:
            assert torch.equal(p, start[n]), n
    assert any(m.lora_A.abs().sum() > 0 and m.lora_B.abs().sum() > 0 for m in lora_layers(model).values())


def _wrapped(**kwargs):
    return sorted(lora_layers(apply_method(base_model(), method_config("lora", **kwargs))))


def test_target_selection():
    assert _wrapped(targets=["attn.q", "attn.v"]) == [
        "blocks.0.attn.q", "blocks.0.attn.v", "blocks.1.attn.q", "blocks.1.attn.v"]
    assert _wrapped(targets=r"blocks\.1\.mlp\.(fc|proj)") == ["blocks.1.mlp.fc", "blocks.1.mlp.proj"]
    every = _wrapped(targets="all-linear")
    assert len(every) == 6 * CFG.n_layer and "lm_head" not in every
    assert every == sorted(n for n, m in base_model().named_modules() if isinstance(m, nn.Linear) and n != "lm_head")
    assert _wrapped(targets=["mlp.fc"], layers=[1]) == ["blocks.1.mlp.fc"]


def test_bad_targets_raise_with_candidates():
    with pytest.raises(ConfigError, match="attn.q.*candidates|candidates.*attn.q"):
        apply_method(base_model(), method_config("lora", targets=["attn.qq"]))
    with pytest.raises(ConfigError, match="candidates"):
        apply_method(base_model(), method_config("lora", targets="attn.q"))  # regex must match the full name
    with pytest.raises(ConfigError, match="tied"):
        apply_method(base_model(), method_config("lora", targets=["lm_head"]))
    with pytest.raises(ConfigError, match="not Linear"):
        apply_method(base_model(), method_config("lora", targets=["tok_emb"]))
    for bad in [{"r": 0}, {"alpha": -1}, {"dropout": 1.0}, {"bias": "some"}, {"targets": []}, {"layers": "1"}]:
        with pytest.raises(ConfigError):
            method_config("lora", **bad)


def test_bias_modes():
    d, L, r = CFG.d_model, CFG.n_layer, 4
    lora = 4 * L * r * d  # q, v
    counts = {}
    for mode in ("none", "all", "lora_only"):
        model = apply_method(base_model(), method_config("lora", r=r, bias=mode))
        counts[mode] = count_parameters(model)["trainable"]
        biases = [n for n, _ in trainable_parameters(model) if n.endswith("bias")]
        if mode == "none":
            assert biases == []
        elif mode == "lora_only":
            assert sorted(biases) == sorted(f"blocks.{i}.attn.{p}.base.bias" for i in range(L) for p in "qv")
    # every bias: per layer q,k,v,o (4d), fc (4d), proj (d), ln1, ln2 (2d) → 11d; plus ln_f's d
    assert counts["none"] == lora
    assert counts["all"] == lora + L * 11 * d + d
    assert counts["lora_only"] == lora + 2 * L * d


def test_trained_bias_changes_the_disabled_model():
    model = base_model()
    x = ids()
    want = model(x)[0]
    apply_method(model, method_config("lora", r=4, bias="all"))
    with torch.no_grad():
        model.ln_f.bias.add_(0.5)  # as if training moved it
    with disabled(model):
        assert not torch.allclose(model(x)[0], want)  # documented: "bias: all" is no longer the base when off


def test_dropout_train_vs_eval():
    model = apply_method(base_model(), method_config("lora", r=4, dropout=0.5, targets="all-linear"))
    randomise_B(model, std=0.5)
    x = ids()
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    a, b = model(x)[0], model(x)[0]
    assert torch.equal(a, b)
    merge(model)
    assert torch.allclose(model(x)[0], a, atol=1e-5, rtol=1e-5)


def test_merge_and_unload_gives_plain_gpt():
    model = apply_method(base_model(), method_config("lora", r=4, targets="all-linear"))
    randomise_B(model)
    x = ids()
    want = model(x)[0]
    plain = merge_and_unload(model)
    assert isinstance(plain, GPT) and not any(isinstance(m, PeftModule) for m in plain.modules())
    assert getattr(plain, "peft_config", None) is None
    assert list(plain.state_dict()) == list(GPT(CFG).state_dict())
    assert all(p.requires_grad for p in plain.parameters())
    assert plain.lm_head.weight is plain.tok_emb.weight
    assert torch.allclose(plain(x)[0], want, atol=1e-5, rtol=1e-5)


def test_low_precision_base_keeps_fp32_adapter():
    base = nn.Linear(8, 4).to(torch.bfloat16)
    layer = LoRALinear(base, r=2)
    with torch.no_grad():
        layer.lora_B.fill_(0.1)
    x = torch.randn(3, 8, dtype=torch.bfloat16)
    y = layer(x)
    assert layer.lora_A.dtype == torch.float32 and y.dtype == torch.bfloat16
    want = base(x).float() + layer.scale * (x.float() @ layer.lora_A.T @ layer.lora_B.T)
    assert torch.allclose(y.float(), want, atol=1e-2)


def test_weight_decay_decision():
    """A, B are decayed like any matrix (towards B = 0, i.e. the base); the DoRA magnitude never is."""
    from minift.training.optim import param_groups

    model = apply_method(base_model(), method_config("dora", r=2))
    groups = {g["weight_decay"]: {id(p) for p in g["params"]} for g in param_groups(model, 0.1)}
    for m in lora_layers(model).values():
        assert id(m.lora_A) in groups[0.1] and id(m.lora_B) in groups[0.1]
        assert id(m.lora_magnitude) in groups[0.0] and m.lora_magnitude.no_decay is True
