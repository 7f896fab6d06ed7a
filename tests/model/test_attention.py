"""Tests for minift/attention.py and the model's masking: every claim checked against an independent computation.

References: a per-query loop for attention (no shared code with `attention_math`), `F.scaled_dot_product_attention`,
each row of a left-padded batch run alone, and gradients for causality. Models are tiny and seeded.
"""

from __future__ import annotations

import math

import pytest
import torch

from helpers import PROMPTS, install_prefix, left_pad, make_model, tol
from minift.model.attention import attention_fused, attention_math, causal_mask
from minift.errors import InputError


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


@pytest.mark.parametrize("fused", [True, False])
def test_left_padded_batch_equals_single_rows(fused):
    model = make_model(sharpen=True)
    model.set_fused_attention(fused)
    idx, mask = left_pad(PROMPTS, pad_id=50)
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
# Prefix rows (the extension point prefix tuning uses): extra keys/values every query sees
# ---------------------------------------------------------------------------------------------------------------

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
