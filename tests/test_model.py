"""Tests for minift/model.py: every claim the model makes, checked against an independent computation.

Reference computations used here: a per-query loop for attention (no shared code with `attention_math`),
`F.scaled_dot_product_attention`, a hand-written greedy loop, the closed-form parameter count, a manual pass
through the blocks, and a log-softmax written out for the loss. Models are tiny and seeded, so the file runs in
seconds on a laptop CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.errors import ConfigError, InputError
from minift.model import (
    GPT, IGNORE_INDEX, GPTConfig, KVCache, attention_fused, attention_math, causal_mask,
)

TINY = dict(vocab_size=97, block_size=32, n_layer=2, n_head=4, d_model=32)


def make_model(seed: int = 0, sharpen: bool = False, **overrides) -> GPT:
    """A tiny GPT in eval mode. `sharpen` scales every matrix ×15: a GPT-2-init model is so close to uniform that
    greedy decoding repeats one token, which a broken cache or mask could still reproduce; scaled weights make the
    next token depend on the whole context."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**TINY, **overrides})).eval()
    if sharpen:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() >= 2:
                    p.mul_(15.0)
    return model


def tol(reference: torch.Tensor, rel: float = 1e-5) -> float:
    """fp32 tolerance for model outputs: `rel` of the largest magnitude (sharpened logits reach about ±5)."""
    return rel * reference.detach().abs().max().item()


def naive_attention(q, k, v, allowed):
    """Reference: one query at a time, softmax written out. allowed: bool (B, H, T_q, T_k) or None."""
    b, h, t_q, d_h = q.shape
    out = torch.zeros(b, h, t_q, v.size(-1), dtype=q.dtype)
    for bi in range(b):
        for hi in range(h):
            for i in range(t_q):
                s = torch.stack([(q[bi, hi, i] * k[bi, hi, j]).sum() for j in range(k.size(2))]) / math.sqrt(d_h)
                if allowed is not None:
                    s = torch.where(allowed[bi, hi, i], s, torch.full_like(s, float("-inf")))
                w = torch.exp(s - s.max())
                w = w / w.sum()
                out[bi, hi, i] = (w[:, None] * v[bi, hi]).sum(0)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Attention: explicit maths == fused kernel == per-query loop
# ---------------------------------------------------------------------------------------------------------------

def test_causal_mask_values():
    assert torch.equal(causal_mask(3, 3), torch.tril(torch.ones(3, 3, dtype=torch.bool)))
    # bottom-right: with 2 cached keys, query 0 (absolute position 2) sees keys 0..2, the last query sees all
    expected = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(2, 4), expected)


def _attention_case(name, b=2, h=3, t_q=5, t_k=5, d_h=8, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(b, h, t, d_h, generator=g, dtype=dtype) for t in (t_q, t_k, t_k))
    if name == "none":
        mask = None
    elif name in ("causal", "bottom_right"):
        mask = causal_mask(t_q, t_k)[None, None]
    elif name == "padding":  # left padding of 2 keys in row 0, combined with causality; every row keeps a key
        keys = torch.ones(b, t_k, dtype=torch.bool)
        keys[0, :2] = False
        mask = causal_mask(t_q, t_k)[None] & keys[:, None, :]
        mask = mask | torch.eye(t_q, t_k, dtype=torch.bool)[None]
        mask = mask[:, None]
    return q, k, v, mask


CASES = [("none", 5, 5), ("causal", 5, 5), ("bottom_right", 3, 7), ("padding", 6, 6)]


@pytest.mark.parametrize("name,t_q,t_k", CASES)
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_attention_math_equals_fused_and_loop(name, t_q, t_k, dtype, atol):
    q, k, v, mask = _attention_case(name, t_q=t_q, t_k=t_k, dtype=dtype)
    y_math = attention_math(q, k, v, mask)
    y_fused = attention_fused(q, k, v, mask)
    allowed = None if mask is None else mask.expand(q.size(0), q.size(1), t_q, t_k)
    y_loop = naive_attention(q, k, v, allowed)
    torch.testing.assert_close(y_math, y_fused, atol=atol, rtol=0)
    torch.testing.assert_close(y_math, y_loop, atol=atol, rtol=0)


def test_fused_is_causal_flag_equals_causal_mask():
    q, k, v, _ = _attention_case("none", t_q=6, t_k=6)
    torch.testing.assert_close(attention_fused(q, k, v, is_causal=True),
                               attention_math(q, k, v, causal_mask(6, 6)), atol=1e-6, rtol=0)


def test_masked_keys_have_no_influence():
    q, k, v, mask = _attention_case("padding", t_q=6, t_k=6)
    k2, v2 = k.clone(), v.clone()
    k2[0, :, :2] += 100.0  # change only the padded keys/values of row 0
    v2[0, :, :2] -= 100.0
    y, y2 = attention_math(q, k, v, mask), attention_math(q, k2, v2, mask)
    torch.testing.assert_close(y[0, :, 2:], y2[0, :, 2:], atol=1e-6, rtol=0)  # real queries unaffected


@pytest.mark.parametrize("padded", [False, True])
def test_model_fused_equals_math(padded):
    model = make_model(sharpen=True)
    idx = torch.randint(0, 97, (3, 12), generator=torch.Generator().manual_seed(2))
    mask = None
    if padded:
        mask = torch.ones(3, 12, dtype=torch.long)
        mask[1, :4] = 0
        mask[2, :7] = 0
    fused, _ = model(idx, attention_mask=mask)
    model.set_fused_attention(False)
    assert all(not b.attn.fused for b in model.blocks)
    explicit, _ = model(idx, attention_mask=mask)
    torch.testing.assert_close(fused, explicit, atol=tol(fused), rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Causality and padding
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [True, False])
def test_causality(fused):
    model = make_model(sharpen=True)
    model.set_fused_attention(fused)
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 97, (2, 16), generator=g)
    t = 9
    other = idx.clone()
    other[:, t + 1:] = torch.randint(0, 97, (2, 16 - t - 1), generator=g)
    a, _ = model(idx)
    b, _ = model(other)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=1e-5, rtol=0)
    assert (a[:, t + 1:] - b[:, t + 1:]).abs().max() > 1e-2  # the later positions did see the change
    # and the gradient of an early logit with respect to later inputs is exactly zero
    x = model.tok_emb(idx).detach().requires_grad_(True)
    logits, _ = model(inputs_embeds=x)
    (grad,) = torch.autograd.grad(logits[:, t].sum(), x)
    assert grad[:, t + 1:].abs().max() == 0
    assert grad[:, : t + 1].abs().max() > 0


def _left_pad(prompts, pad_id=0):
    width = max(len(p) for p in prompts)
    idx = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        idx[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    return idx, mask


PROMPTS = [[5, 17, 3, 88, 41, 9, 60], [12, 7], [30, 31, 32, 33]]


@pytest.mark.parametrize("fused", [True, False])
def test_left_padded_batch_equals_single_rows(fused):
    model = make_model(sharpen=True)
    model.set_fused_attention(fused)
    idx, mask = _left_pad(PROMPTS, pad_id=50)
    batched, _ = model(idx, attention_mask=mask)
    assert torch.isfinite(batched).all()  # padding queries see themselves, so nothing turns into NaN
    for i, p in enumerate(PROMPTS):
        alone, _ = model(torch.tensor([p]))
        torch.testing.assert_close(batched[i, -len(p):], alone[0], atol=1e-5, rtol=0)  # logits ≈ ±5 here


def test_attention_mask_wrong_shape():
    model = make_model()
    with pytest.raises(InputError, match="attention_mask"):
        model(torch.zeros(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4))


# ---------------------------------------------------------------------------------------------------------------
# Generation: KV cache == no cache == a hand-written greedy loop
# ---------------------------------------------------------------------------------------------------------------

def greedy_reference(model, prompt, n):
    """The definition of greedy decoding: rerun the last block_size tokens, append the argmax."""
    seq = list(prompt)
    bs = model.config.block_size
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(torch.tensor([seq[-bs:]]))
            seq.append(int(logits[0, -1].argmax()))
    return seq


@pytest.mark.parametrize("n_new", [20, 40])  # 5 + 40 > block_size 32: the cached path must fall back
def test_cached_equals_uncached_greedy(n_new):
    model = make_model(sharpen=True)
    prompt = [62, 87, 68, 43, 85]
    idx = torch.tensor([prompt])
    with_cache = model.generate(idx, n_new, temperature=0, use_cache=True)
    no_cache = model.generate(idx, n_new, temperature=0, use_cache=False)
    assert with_cache.tolist()[0] == no_cache.tolist()[0] == greedy_reference(model, prompt, n_new)
    assert len(set(with_cache[0, 5:].tolist())) > 3  # not a degenerate repeat of one token


def test_cache_step_logits_equal_full_forward():
    model = make_model(sharpen=True)
    idx = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(4))
    full, _ = model(idx)
    cache = KVCache(model.config.n_layer)
    pieces = [model(idx[:, :8], cache=cache)[0]]  # prefill 8 tokens, then a chunk of 4, then one at a time
    pieces.append(model(idx[:, 8:12], cache=cache)[0])
    for t in range(12, 20):
        pieces.append(model(idx[:, t:t + 1], cache=cache)[0])
    assert cache.n_tokens == 20
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=tol(full), rtol=0)
    with pytest.raises(InputError, match="block_size"):  # the cache counts toward the context
        model(torch.zeros(2, 13, dtype=torch.long), cache=cache)


@pytest.mark.parametrize("use_cache", [True, False])
def test_batched_left_padded_generation_equals_alone(use_cache):
    model = make_model(sharpen=True)
    idx, mask = _left_pad(PROMPTS, pad_id=50)
    out = model.generate(idx, 15, temperature=0, use_cache=use_cache, attention_mask=mask)
    for i, p in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([p]), 15, temperature=0, use_cache=use_cache)
        assert out[i, idx.size(1):].tolist() == alone[0, len(p):].tolist()


def test_padded_generation_past_block_size_cached_equals_uncached():
    # Past block_size a padded row's window still holds its pads, so it no longer matches the row alone;
    # what must hold is that the cache changes nothing.
    model = make_model(sharpen=True)
    idx, mask = _left_pad(PROMPTS, pad_id=50)
    cached = model.generate(idx, 40, temperature=0, use_cache=True, attention_mask=mask)
    assert torch.equal(cached, model.generate(idx, 40, temperature=0, use_cache=False, attention_mask=mask))


def _expected_with_eos(free_rows, eos, n):
    """What eos_id must do to the free-running greedy rows: keep up to the first eos, then eos; stop the loop
    as soon as every row has produced it."""
    firsts = [row.index(eos) if eos in row else None for row in free_rows]
    length = n if None in firsts else 1 + max(firsts)
    return [row[:length] if k is None else (row[: k + 1] + [eos] * n)[:length] for row, k in zip(free_rows, firsts)]


def test_eos_stops_rows():
    model = make_model(sharpen=True)
    idx, mask = _left_pad(PROMPTS, pad_id=50)
    width, n = idx.size(1), 15
    free = model.generate(idx, n, temperature=0, attention_mask=mask)[:, width:].tolist()
    # (a) a token only some rows produce: those rows stop and are filled with eos, the others run on
    eos = free[0][3]
    assert any(eos not in row for row in free)
    out = model.generate(idx, n, temperature=0, attention_mask=mask, eos_id=eos)[:, width:].tolist()
    assert out == _expected_with_eos(free, eos, n)
    # (b) a token rows 0 and 1 both produce: once both have, generation ends early
    common = set(free[0]) & set(free[1])
    assert common
    eos = min(common, key=lambda tok: max(free[0].index(tok), free[1].index(tok)))
    out = model.generate(idx[:2], n, temperature=0, attention_mask=mask[:2], eos_id=eos)[:, width:].tolist()
    assert out == _expected_with_eos(free[:2], eos, n)
    assert len(out[0]) < n


def test_generate_edge_cases():
    model = make_model()
    model.train()
    idx = torch.tensor([[1, 2, 3]])
    assert torch.equal(model.generate(idx, 0), idx)
    assert model.training  # generate restores the mode it found
    with pytest.raises(InputError, match="max_new_tokens"):
        model.generate(idx, -1)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a = model.generate(idx, 10, temperature=0.8, top_k=5, generator=g1)
    b = model.generate(idx, 10, temperature=0.8, top_k=5, generator=g2)
    assert torch.equal(a, b)  # sampling is reproducible from the generator


# ---------------------------------------------------------------------------------------------------------------
# Configuration and input validation
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,needle", [
    (dict(d_model=30, n_head=4), "30"),
    (dict(d_model=0), "0"),
    (dict(n_layer=-1), "-1"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(block_size=2.5), "2.5"),
    (dict(dropout=1.0), "1.0"),
    (dict(dropout=-0.1), "-0.1"),
    (dict(n_layer=True), "True"),  # bool is an int subclass; a JSON `true` must not silently mean 1 layer
    (dict(dropout="0.1"), "0.1"),  # a string must give ConfigError, not a TypeError from the comparison
])
def test_config_validation(overrides, needle):
    with pytest.raises(ConfigError) as err:
        GPTConfig(**{**TINY, **overrides})
    assert needle in str(err.value)


def test_config_dict_round_trip_and_unknown_keys():
    cfg = GPTConfig(**TINY, dropout=0.1, bias=False)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="n_embd"):
        GPTConfig.from_dict({**TINY, "n_embd": 32})


def test_input_validation():
    model = make_model()
    with pytest.raises(InputError) as err:
        model(torch.zeros(1, 33, dtype=torch.long))
    assert "33" in str(err.value) and "truncate" in str(err.value)
    for bad in (97, -1):
        with pytest.raises(InputError) as err:
            model(torch.tensor([[1, bad, 2]]))
        assert str(bad) in str(err.value) and "tokenizer" in str(err.value)
    with pytest.raises(InputError, match="33"):
        model(inputs_embeds=torch.zeros(1, 33, 32))
    with pytest.raises(InputError, match="shape"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match="integer"):
        model(torch.zeros(1, 5))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_integer_id_dtypes_accepted_or_rejected_cleanly(dtype):
    """_check_ids lets int16/uint8 through; the model must then either use them or raise InputError,
    never fail deep inside nn.Embedding with a RuntimeError."""
    model = make_model()
    idx = torch.tensor([[1, 2, 90, 4]])
    expected, _ = model(idx)
    try:
        got, _ = model(idx.to(dtype))
    except InputError:
        return
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Parameters: count, tying, initialisation
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("v,t,layers,h,d", [(97, 32, 2, 4, 32), (50, 8, 3, 2, 16), (256, 64, 1, 1, 8)])
def test_parameter_count_closed_form(v, t, layers, h, d):
    model = GPT(GPTConfig(vocab_size=v, block_size=t, n_layer=layers, n_head=h, d_model=d))
    expected = v * d + t * d + layers * (12 * d * d + 13 * d) + 2 * d
    assert model.num_parameters() == expected
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.num_parameters(exclude_position=True) == expected - t * d
    for p in model.blocks.parameters():
        p.requires_grad_(False)
    assert model.num_parameters(trainable_only=True) == v * d + t * d + 2 * d


def test_lm_head_is_tied():
    model = make_model()
    assert model.lm_head.weight is model.tok_emb.weight
    assert model.lm_head.weight.data_ptr() == model.tok_emb.weight.data_ptr()
    with torch.no_grad():
        model.tok_emb.weight[3, 0] = 42.0
    assert model.lm_head.weight[3, 0] == 42.0
    logits, _ = model(torch.tensor([[1, 2]]))
    (grad,) = torch.autograd.grad(logits.sum(), model.tok_emb.weight)
    assert grad.abs().sum() > 0


def test_gpt2_init():
    """Linear weights and embeddings ~ N(0, 0.02²); attn.o and mlp.proj ~ N(0, (0.02/√(2L))²); biases 0, LN (1, 0).

    Tolerance: for n samples the sample std has relative standard error ≈ 1/√(2n). The smallest tensor here has
    n = 384² ≈ 147k samples ⇒ ≈ 0.18%; we allow 2% (> 10 standard errors), still far below the 3.5× gap
    between 0.02 and 0.02/√12."""
    torch.manual_seed(0)
    layers = 6
    model = GPT(GPTConfig(vocab_size=512, block_size=384, n_layer=layers, n_head=6, d_model=384))
    resid = 0.02 / math.sqrt(2 * layers)
    checked = 0
    for name, p in model.named_parameters():
        if name.endswith("attn.o.weight") or name.endswith("mlp.proj.weight"):
            target = resid
        elif p.dim() == 2:
            target = 0.02
        elif p.dim() == 1 and name.endswith("weight"):  # LayerNorm gains
            assert torch.all(p == 1), name
            continue
        else:
            assert torch.all(p == 0), name  # Linear and LayerNorm biases
            continue
        checked += 1
        assert abs(p.std().item() / target - 1) < 0.02, (name, p.std().item(), target)
        assert abs(p.mean().item()) < 0.02 * target * 10, name
    assert checked == 2 + layers * 6  # tok_emb (= lm_head), pos_emb, and q, k, v, o, fc, proj per layer


# ---------------------------------------------------------------------------------------------------------------
# Extension points: prefix rows, forward hooks, inputs_embeds; the loss
# ---------------------------------------------------------------------------------------------------------------

class FixedPrefix(nn.Module):
    """Returns fixed (H, P, d_h) key and value rows, like a trained prefix-tuning module would."""

    def __init__(self, n_head, n_rows, d_head, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = nn.Parameter(torch.randn(n_head, n_rows, d_head, generator=g) * 2)
        self.v = nn.Parameter(torch.randn(n_head, n_rows, d_head, generator=g) * 2)

    def forward(self):
        return self.k, self.v


def install_prefix(model, n_rows=3):
    cfg = model.config
    for i, block in enumerate(model.blocks):
        block.attn.prefix = FixedPrefix(cfg.n_head, n_rows, cfg.d_model // cfg.n_head, seed=10 + i)


@pytest.mark.parametrize("fused", [True, False])
def test_prefix_attention_equals_explicit(fused):
    model = make_model(sharpen=True)
    install_prefix(model, n_rows=3)
    attn = model.blocks[0].attn
    attn.fused = fused
    b, t, d, h = 2, 6, 32, 4
    x = torch.randn(b, t, d, generator=torch.Generator().manual_seed(5))

    def split(z):
        return z.view(b, -1, h, d // h).transpose(1, 2)

    k_p, v_p = attn.prefix()
    k = torch.cat([k_p.expand(b, -1, -1, -1), split(attn.k(x))], dim=2)
    v = torch.cat([v_p.expand(b, -1, -1, -1), split(attn.v(x))], dim=2)
    allowed = torch.cat([torch.ones(t, 3, dtype=torch.bool), causal_mask(t, t)], dim=1)  # prefix: every query
    y = naive_attention(split(attn.q(x)), k, v, allowed.expand(b, h, t, t + 3))
    expected = attn.o(y.transpose(1, 2).reshape(b, t, d))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=0)
    attn.prefix = None
    assert (attn(x) - expected).abs().max() > 1e-3  # the prefix rows did matter


def test_prefix_with_cache_padding_and_generation():
    model = make_model(sharpen=True)
    base = model.generate(torch.tensor([PROMPTS[0]]), 12, temperature=0)
    install_prefix(model)
    idx = torch.randint(0, 97, (2, 14), generator=torch.Generator().manual_seed(6))
    full, _ = model(idx)
    cache = KVCache(model.config.n_layer)
    steps = [model(idx[:, :9], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(9, 14)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=tol(full), rtol=0)
    prompt = torch.tensor([PROMPTS[0]])
    cached = model.generate(prompt, 12, temperature=0, use_cache=True)
    assert torch.equal(cached, model.generate(prompt, 12, temperature=0, use_cache=False))
    assert not torch.equal(cached, base)  # the prefix changed what the model says
    padded, mask = _left_pad(PROMPTS, pad_id=50)
    out = model.generate(padded, 10, temperature=0, attention_mask=mask)
    for i, p in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([p]), 10, temperature=0)
        assert out[i, padded.size(1):].tolist() == alone[0, len(p):].tolist()


def test_forward_hooks_read_and_replace_residual_stream():
    model = make_model(sharpen=True)
    idx = torch.randint(0, 97, (2, 10), generator=torch.Generator().manual_seed(8))
    base, _ = model(idx)
    seen = {}
    handle = model.blocks[1].register_forward_hook(lambda mod, args, out: seen.setdefault("h", out))
    model(idx)
    handle.remove()
    with torch.no_grad():  # the residual stream after block 1, by hand
        x = model.tok_emb(idx) + model.pos_emb(torch.arange(10))
        for block in model.blocks[:2]:
            x = block(x)
    torch.testing.assert_close(seen["h"], x, atol=0, rtol=0)

    handle = model.blocks[0].register_forward_hook(lambda mod, args, out: out)
    same, _ = model(idx)
    handle.remove()
    assert torch.equal(same, base)

    shift = torch.randn(32, generator=torch.Generator().manual_seed(9))
    handle = model.blocks[0].register_forward_hook(lambda mod, args, out: out + shift)
    steered, _ = model(idx)
    handle.remove()
    with torch.no_grad():
        x = model.blocks[0](model.tok_emb(idx) + model.pos_emb(torch.arange(10))) + shift
        for block in model.blocks[1:]:
            x = block(x)
        expected = model.lm_head(model.ln_f(x))
    torch.testing.assert_close(steered, expected, atol=tol(expected), rtol=0)
    assert (steered - base).abs().max() > 1e-2


def test_loss_equals_cross_entropy_by_hand():
    model = make_model(sharpen=True)
    g = torch.Generator().manual_seed(11)
    idx = torch.randint(0, 97, (3, 9), generator=g)
    targets = torch.randint(0, 97, (3, 9), generator=g)
    targets[0, :4] = IGNORE_INDEX
    targets[2, -2:] = IGNORE_INDEX
    logits, loss = model(idx, targets)
    keep = targets != IGNORE_INDEX
    logp = logits.double() - torch.logsumexp(logits.double(), dim=-1, keepdim=True)
    by_hand = -logp[keep].gather(1, targets[keep][:, None]).mean()
    torch.testing.assert_close(loss.double(), by_hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(loss, F.cross_entropy(logits[keep], targets[keep]), atol=1e-6, rtol=0)
    assert model(idx)[1] is None
    hidden = model.hidden(idx)
    torch.testing.assert_close(model.lm_head(hidden), logits, atol=0, rtol=0)


def test_inputs_embeds_equals_ids():
    model = make_model(sharpen=True)
    idx = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(12))
    by_ids, _ = model(idx)
    by_embeds, _ = model(inputs_embeds=model.tok_emb(idx))
    torch.testing.assert_close(by_embeds, by_ids, atol=0, rtol=0)


def test_dropout_is_inert_in_eval():
    plain = make_model(seed=3)
    dropped = make_model(seed=3, dropout=0.3)
    idx = torch.randint(0, 97, (2, 8), generator=torch.Generator().manual_seed(13))
    torch.testing.assert_close(dropped(idx)[0], plain(idx)[0], atol=0, rtol=0)
    dropped.train()
    assert not torch.equal(dropped(idx)[0], plain(idx)[0])
