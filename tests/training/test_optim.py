"""Tests for minift.optim: AdamW against torch.optim.AdamW and closed forms, param_groups, cosine_lr, clipping.

Fixed vectors are hand-computed closed forms (AdamW's first two steps, nanoGPT's schedule values, clipping by
1/(N + 1e-6)); everything else is compared with the PyTorch implementations run side by side.
"""

import copy
import io
import math

import pytest
import torch
from torch import nn

from minift.errors import ConfigError
from minift.model.gpt import GPT, GPTConfig
from minift.training.optim import AdamW, clip_grad_norm, cosine_lr, param_groups

# A model-like set of shapes: embedding, attention/MLP matrices, biases, LayerNorm vectors.
SHAPES = [(50, 16), (16, 16), (16,), (64, 16), (64,), (16, 64), (16,), (16,)]


def _make_params(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]


def _groups(params: list[torch.Tensor]) -> list[dict]:
    # Two groups with their own lr and weight decay; the second uses the constructor defaults for lr.
    return [{"params": params[:4], "lr": 3e-3, "weight_decay": 0.2}, {"params": params[4:], "weight_decay": 0.0}]


def _run_pair(dtype, amsgrad, maximize, foreach, torch_foreach, steps=300, seed=0):
    """Drive minift AdamW and torch AdamW with identical grads; return both parameter lists and optimizers."""
    ours, ref = _make_params(dtype, seed), _make_params(dtype, seed)
    kw = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, amsgrad=amsgrad, maximize=maximize)
    opt = AdamW(_groups(ours), foreach=foreach, **kw)
    ref_opt = torch.optim.AdamW(_groups(ref), foreach=torch_foreach, **kw)
    gen = torch.Generator().manual_seed(seed + 1)
    for t in range(steps):
        for i, (p, q) in enumerate(zip(ours, ref)):
            if i == 2 and t % 4 == 1 or i == 5 and 50 <= t < 120:  # some grads are None for some steps
                p.grad = q.grad = None
                continue
            g = torch.randn(p.shape, generator=gen, dtype=dtype) * (0.01 + t % 7)
            p.grad, q.grad = g.clone(), g.clone()
        if t == 150:  # the lr changes between steps (as a schedule does)
            for o in (opt, ref_opt):
                o.param_groups[0]["lr"] = 1e-3
                o.param_groups[1]["lr"] = 5e-4
        opt.step()
        ref_opt.step()
    return ours, ref, opt, ref_opt


@pytest.mark.parametrize("foreach", [True, False, None])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
def test_adamw_matches_torch(foreach, amsgrad, maximize):
    # float64: agreement to 1e-12 over 300 steps; both torch paths (foreach and single-tensor).
    for torch_foreach in (True, False):
        ours, ref, opt, ref_opt = _run_pair(torch.float64, amsgrad, maximize, foreach, torch_foreach)
        assert max((p - q).abs().max().item() for p, q in zip(ours, ref)) <= 1e-12
        for p, q in zip(ours, ref):
            s, r = opt.state[p], ref_opt.state[q]
            assert s["step"] == int(r["step"].item())
            for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()):
                assert (s[key] - r[key]).abs().max().item() <= 1e-12
    # The parameter whose grad was None every 4th step has fewer steps than the others.
    assert opt.state[ours[2]]["step"] == 300 - 75 and opt.state[ours[0]]["step"] == 300
    # float32: the same op sequence gives bit-identical results (verified with torch 2.13 on CPU).
    ours, ref, _, _ = _run_pair(torch.float32, amsgrad, maximize, foreach, foreach, steps=100)
    assert all(torch.equal(p, q) for p, q in zip(ours, ref))


def test_foreach_and_reference_paths_agree_with_mixed_dtypes():
    # One group holding fp32 and fp64 tensors: the foreach path must bucket them by dtype.
    a = [torch.randn(8, 4), torch.randn(5, dtype=torch.float64), torch.randn(3)]
    b = [x.clone() for x in a]
    c, start = [x.clone() for x in a], [x.clone() for x in a]
    opts = [AdamW(a, lr=0.05, foreach=True), AdamW(b, lr=0.05, foreach=False), AdamW(c, lr=0.05)]
    for t in range(20):
        for x, y, z in zip(a, b, c):
            x.grad = torch.full_like(x, math.sin(t + x.numel()))
            y.grad, z.grad = x.grad.clone(), x.grad.clone()
        for opt in opts:
            opt.step()
    assert all(torch.equal(x, y) and torch.equal(x, z) for x, y, z in zip(a, b, c))
    assert not any(torch.equal(x, x0) for x, x0 in zip(a, start))  # every parameter moved


@pytest.mark.parametrize("foreach", [True, False])
def test_closed_form_first_two_steps(foreach):
    theta = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    g = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    opt = AdamW([theta], lr=1e-3, weight_decay=0.1, foreach=foreach)
    theta.grad = g.clone()
    opt.step()
    expected1 = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64) * (1 - 1e-4) - 1e-3 * g / (g.abs() + 1e-8)
    torch.testing.assert_close(theta, expected1, rtol=0, atol=1e-15)
    torch.testing.assert_close(theta, torch.tensor([0.9989000001, -1.99880000005, 2.9987000000333333],
                                                   dtype=torch.float64), rtol=0, atol=1e-15)
    state = opt.state[theta]
    assert state["step"] == 1
    torch.testing.assert_close(state["exp_avg"], 0.1 * g, rtol=1e-14, atol=0)
    torch.testing.assert_close(state["exp_avg_sq"], 0.001 * g * g, rtol=1e-14, atol=0)
    opt.step()  # same gradient again: m̂ = g, v̂ = g² so the Adam term is again lr·g/(|g| + ε)
    expected2 = expected1 * (1 - 1e-4) - 1e-3 * g / (g.abs() + 1e-8)
    torch.testing.assert_close(theta, expected2, rtol=0, atol=1e-14)
    torch.testing.assert_close(theta, torch.tensor([0.99780011019999, -1.997600120099995, 2.9974001300666635],
                                                   dtype=torch.float64), rtol=0, atol=1e-14)


@pytest.mark.parametrize("foreach", [True, False])
def test_decoupled_decay_vector(foreach):
    theta = torch.ones(1, dtype=torch.float64)
    theta.grad = torch.zeros(1, dtype=torch.float64)
    AdamW([theta], lr=0.1, weight_decay=0.5, foreach=foreach).step()
    assert theta.item() == 0.95  # 1·(1 − 0.1·0.5); the zero gradient adds exactly nothing
    # Adam with L2 decay normalises the decay gradient by √v̂ instead: a step of ≈ lr.
    l2 = torch.ones(1, dtype=torch.float64)
    l2.grad = torch.zeros(1, dtype=torch.float64)
    torch.optim.Adam([l2], lr=0.1, weight_decay=0.5).step()
    assert l2.item() == pytest.approx(0.900000002, abs=1e-12)


def test_first_step_size_is_lr_whatever_the_gradient_scale():
    theta = torch.zeros(5, dtype=torch.float64)
    g = torch.tensor([1e-6, 1e-3, 1.0, -10.0, 1e4], dtype=torch.float64)
    theta.grad = g.clone()
    AdamW([theta], lr=0.01, weight_decay=0.0).step()
    torch.testing.assert_close(theta, -0.01 * g / (g.abs() + 1e-8), rtol=1e-15, atol=0)


@pytest.mark.parametrize("foreach", [True, False])
def test_frozen_and_gradless_parameters_untouched(foreach):
    frozen = nn.Parameter(torch.randn(4, 4), requires_grad=False)
    no_grad = nn.Parameter(torch.randn(4, 4))
    live = nn.Parameter(torch.randn(4, 4))
    before = [frozen.detach().clone(), no_grad.detach().clone()]
    opt = AdamW([frozen, no_grad, live], lr=0.1, weight_decay=0.5, foreach=foreach)
    for _ in range(3):
        live.grad = torch.randn(4, 4)
        opt.step()
    assert torch.equal(frozen, before[0]) and torch.equal(no_grad, before[1])
    assert len(opt.state[frozen]) == 0 and len(opt.state[no_grad]) == 0 and opt.state[live]["step"] == 3


def _grad_stream(params, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


@pytest.mark.parametrize("amsgrad", [False, True])
def test_state_dict_resume_is_exact(amsgrad):
    params = _make_params(torch.float32)
    opt = AdamW(_groups(params), amsgrad=amsgrad)
    grads = list(_grad_stream(params, 40, seed=3))
    for gs in grads[:20]:
        for p, g in zip(params, gs):
            p.grad = g
        opt.step()
    buf = io.BytesIO()
    torch.save({"params": [p.clone() for p in params], "opt": opt.state_dict()}, buf)
    for gs in grads[20:]:  # uninterrupted run
        for p, g in zip(params, gs):
            p.grad = g
        opt.step()
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    resumed = [p.clone() for p in ckpt["params"]]
    opt2 = AdamW(_groups(resumed), amsgrad=amsgrad)
    opt2.load_state_dict(ckpt["opt"])
    for gs in grads[20:]:
        for p, g in zip(resumed, gs):
            p.grad = g
        opt2.step()
    assert all(torch.equal(p, q) for p, q in zip(params, resumed))


def test_loads_a_torch_adamw_state_dict():
    # torch stores step as a 0-d float tensor; minift accepts it and continues bit-identically.
    ours, ref = _make_params(torch.float32), _make_params(torch.float32)
    ref_opt = torch.optim.AdamW(_groups(ref), lr=1e-2)
    grads = list(_grad_stream(ref, 20, seed=4))
    for gs in grads[:10]:
        for p, g in zip(ref, gs):
            p.grad = g.clone()
        ref_opt.step()
    for p, q in zip(ours, ref):
        p.copy_(q)
    opt = AdamW(_groups(ours), lr=1e-2)
    opt.load_state_dict(copy.deepcopy(ref_opt.state_dict()))  # deepcopy: load_state_dict may alias tensors
    for gs in grads[10:]:
        for p, q, g in zip(ours, ref, gs):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref_opt.step()
    assert all(torch.equal(p, q) for p, q in zip(ours, ref))


@pytest.mark.parametrize("bias", [True, False])
def test_param_groups_on_gpt(bias):
    V, T, L, d = 37, 11, 2, 8
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=2, d_model=d, bias=bias))
    groups = param_groups(model, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # each once; parameters() dedups the tie
    assert sum(p is model.tok_emb.weight for p in groups[0]["params"]) == 1
    n_decay = sum(p.numel() for p in groups[0]["params"])
    n_plain = sum(p.numel() for p in groups[1]["params"])
    assert n_decay == V * d + T * d + L * 12 * d * d
    assert n_plain == (L * 13 * d + 2 * d if bias else L * 2 * d + d)  # biases + LayerNorm, or LayerNorm gains
    AdamW(groups, lr=1e-3)  # the groups are valid optimizer input


def test_param_groups_frozen_and_no_decay():
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, d_model=8))
    model.requires_grad_(False)
    extra_matrix = nn.Parameter(torch.zeros(8, 8))
    extra_matrix.no_decay = True  # e.g. the matrix behind an orthogonal parametrisation
    model.register_parameter("adapter_matrix", extra_matrix)
    model.register_parameter("adapter_vector", nn.Parameter(torch.ones(8)))
    model.blocks[0].attn.q.weight.requires_grad_(True)
    groups = param_groups(model, 0.05)
    assert groups[0]["params"] == [model.blocks[0].attn.q.weight]
    assert groups[1]["params"] == [extra_matrix, model.adapter_vector]
    model.blocks[0].attn.q.weight.requires_grad_(False)
    only = param_groups(model, 0.05)  # the empty decayed group is dropped
    assert len(only) == 1 and only[0]["weight_decay"] == 0.0
    with pytest.raises(ConfigError):
        param_groups(model, -0.1)


NANOGPT = dict(max_lr=6e-4, warmup_steps=2000, total_steps=600000, min_lr=6e-5)
SMALL = dict(max_lr=1e-3, warmup_steps=10, total_steps=100, min_lr=1e-4)


@pytest.mark.parametrize("cfg, values", [
    (NANOGPT, {0: 2.998500749625187e-07, 1: 5.997001499250374e-07, 1999: 5.997001499250374e-04, 2000: 6e-4,
               301000: 3.3e-4, 600000: 6e-5, 600001: 6e-5}),
    (SMALL, {0: 9.0909091e-05, 5: 5.45454545e-04, 9: 9.09090909e-04, 10: 1e-3, 55: 5.5e-4, 100: 1e-4, 150: 1e-4}),
])
def test_cosine_lr_values_and_shape(cfg, values):
    for step, lr in values.items():
        assert cosine_lr(step, **cfg) == pytest.approx(lr, rel=1e-7, abs=1e-15)
    W, D = cfg["warmup_steps"], cfg["total_steps"]
    stride = max(1, D // 2000)
    warm = [cosine_lr(s, **cfg) for s in range(W)]
    decay = [cosine_lr(s, **cfg) for s in range(W, D + 10 * stride, stride)]
    assert all(a < b for a, b in zip(warm, warm[1:]))
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert min(decay) == cfg["min_lr"] and max(warm + decay) == cfg["max_lr"]  # floor holds after warmup
    # Continuous at W: the warmup line extended to step W meets the cosine's start, max_lr.
    assert cfg["max_lr"] * (W + 1) / (W + 1) == cosine_lr(W, **cfg) == cfg["max_lr"]
    assert cosine_lr(W, **cfg) - cosine_lr(W - 1, **cfg) == pytest.approx(cfg["max_lr"] / (W + 1))


def test_cosine_lr_edge_cases():
    assert cosine_lr(0, 1.0, 0, 10, 0.1) == 1.0  # no warmup: starts at max_lr
    assert cosine_lr(5, 1.0, 0, 10, 0.1) == pytest.approx(0.55)
    # total ≤ warmup: warmup then the floor, no division by zero.
    assert [cosine_lr(s, 1.0, 3, 3, 0.1) for s in range(5)] == [0.25, 0.5, 0.75, 0.1, 0.1]
    assert [cosine_lr(s, 1.0, 3, 1, 0.1) for s in range(5)] == [0.25, 0.5, 0.75, 0.1, 0.1]
    assert cosine_lr(0, 1.0, 0, 0, 0.1) == 0.1
    for bad in [(-1, 1.0, 1, 2, 0.0), (0, 1.0, -1, 2, 0.0), (0, 1.0, 1, 2, 2.0), (0, 1.0, 1, 2, -0.1)]:
        with pytest.raises(ConfigError):
            cosine_lr(*bad)


def _with_grads(*grads):
    params = []
    for g in grads:
        p = nn.Parameter(torch.zeros(len(g)))
        p.grad = torch.tensor(g)
        params.append(p)
    return params


def test_clip_grad_norm_vectors():
    a, b = _with_grads([3.0, 4.0], [12.0])
    norm = clip_grad_norm([a, b], 1.0)
    assert norm.item() == 13.0
    torch.testing.assert_close(a.grad, torch.tensor([0.23076921701, 0.30769228935]), rtol=0, atol=1e-8)
    torch.testing.assert_close(b.grad, torch.tensor([0.92307686806]), rtol=0, atol=1e-8)
    a, b = _with_grads([3.0, 4.0], [12.0])
    assert clip_grad_norm([a, b], 100.0).item() == 13.0
    assert torch.equal(a.grad, torch.tensor([3.0, 4.0])) and torch.equal(b.grad, torch.tensor([12.0]))
    assert clip_grad_norm([a, b], float("inf")).item() == 13.0  # max_norm = ∞: measure only (factor exactly 1)
    assert torch.equal(a.grad, torch.tensor([3.0, 4.0])) and torch.equal(b.grad, torch.tensor([12.0]))
    (c,) = _with_grads([0.6, 0.8])
    clip_grad_norm(c, 1.0)  # a single tensor is accepted too
    torch.testing.assert_close(c.grad, torch.tensor([0.6, 0.8]) / (1 + 1e-6), rtol=0, atol=0)
    torch.testing.assert_close(c.grad, torch.tensor([0.59999943, 0.79999924]), rtol=0, atol=1e-8)
    with pytest.raises(ConfigError):
        clip_grad_norm([c], 0.0)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    ours, ref = _make_params(torch.float32), _make_params(torch.float32)
    gen = torch.Generator().manual_seed(7)
    for i, (p, q) in enumerate(zip(ours, ref)):
        if i == 3:
            continue  # grad None: skipped by both
        p.grad = torch.randn(p.shape, generator=gen)
        q.grad = p.grad.clone()
    n_ours = clip_grad_norm(ours, max_norm)
    expected = torch.cat([q.grad.flatten().double() for q in ref if q.grad is not None]).norm()
    n_ref = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    assert torch.equal(n_ours, n_ref)
    assert ours[3].grad is None
    torch.testing.assert_close(n_ours.double(), expected, rtol=1e-6, atol=0)
    assert all(p.grad is None and q.grad is None or torch.equal(p.grad, q.grad) for p, q in zip(ours, ref))
    clipped = torch.cat([p.grad.flatten().double() for p in ours if p.grad is not None]).norm()
    assert clipped.item() == pytest.approx(min(max_norm, expected.item()), rel=1e-5)
    assert clip_grad_norm([nn.Parameter(torch.ones(2))], 1.0).item() == 0.0  # nothing to clip


@pytest.mark.parametrize("kwargs", [dict(lr=-1e-3), dict(betas=(1.0, 0.999)), dict(betas=(0.9, -0.1)),
                                    dict(betas=(0.9, 1.0)), dict(eps=-1e-8), dict(weight_decay=-0.1)])
def test_invalid_arguments_raise_value_error_like_torch(kwargs):
    with pytest.raises(ValueError):
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ConfigError):  # a ValueError subclass
        AdamW([torch.zeros(1, requires_grad=True)], **kwargs)
