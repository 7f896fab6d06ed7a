"""Attention: the one place in the transformer where positions exchange information.

Per head (d_h = d / n_head):

    Attn(Q, K, V) = softmax(Q Kᵀ / √d_h + M) V        q: (B, H, T_q, d_h); k, v: (B, H, T_k, d_h)

with M = 0 where a query may look and −∞ where it may not (the future, padding). `causal_mask` builds the
"may look" pattern; the function is written twice, as `attention_math` (the explicit maths a learner reads) and
`attention_fused` (PyTorch's fused kernel, used by default; equal up to float rounding).

`CausalSelfAttention` is the layer built on them: separate q, k, v, o projections (so parameter-efficient methods
can target them by name) and an optional `prefix` of extra key/value rows every query sees (prefix tuning).
`KVCache` keeps the keys and values of earlier tokens, so generating one more token costs one position of compute.

gpt.py assembles the GPT from this layer; docs/attention.md derives it, the cache and the masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------------------------
# Attention, twice: the explicit maths a learner reads, and PyTorch's fused kernel used by default.
# ----------------------------------------------------------------------------------------------------------------

def causal_mask(t_q: int, t_k: int, device=None) -> torch.Tensor:
    """Boolean (t_q, t_k) mask, True where query i may attend key j.

    Aligned bottom-right: the last query is the newest token and sees every key, so with t_k − t_q cached keys
    query i sees keys j ≤ i + (t_k − t_q). With t_q = t_k this is the usual lower triangle.
    """
    offset = t_k - t_q
    i = torch.arange(t_q, device=device)[:, None]
    j = torch.arange(t_k, device=device)[None, :]
    return j <= i + offset


def attention_math(q, k, v, mask=None, dropout_p: float = 0.0):
    """softmax(Q Kᵀ / √d_h + M) V, written out.

    q: (B, H, T_q, d_h); k, v: (B, H, T_k, d_h); mask: bool, broadcastable to (B, H, T_q, T_k), True = may attend,
    or None for "every query sees every key". Returns (B, H, T_q, d_h).
    """
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, H, T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


def attention_fused(q, k, v, mask=None, dropout_p: float = 0.0, is_causal: bool = False):
    """The same function through `F.scaled_dot_product_attention`, which picks a fused kernel (flash or
    memory-efficient) and never materialises the T_q × T_k weights when it can avoid it."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)


def rotate(x, cos, sin):
    """Rotary position embedding (Su et al., 2021, "RoFormer"), in the rotate-half layout: coordinate i of a head is
    paired with coordinate i + d_h/2, and the pair is turned by the angle pos · θ_i:

        (x_i, x_{i+d/2}) ↦ (x_i cos φ − x_{i+d/2} sin φ,  x_{i+d/2} cos φ + x_i sin φ),   φ = pos · base^(−2i/d_h)

    x: (B, H, T, d_h); cos, sin: (B, 1, T, d_h) (each angle written twice, for both halves). Rotating q and k by
    their own positions makes q·k depend on the positions only through their difference."""
    half = x.size(-1) // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + turned * sin


def rotary_angles(pos, d_head: int, base: float, dtype=torch.float32):
    """(cos, sin), each (B, 1, T, d_h), for integer positions pos (B, T): computed once per forward, used by every
    layer."""
    inv_freq = base ** (-torch.arange(0, d_head, 2, device=pos.device, dtype=torch.float32) / d_head)  # θ_i
    angles = pos.to(torch.float32)[..., None] * inv_freq  # (B, T, d_h/2)
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos().to(dtype), angles.sin().to(dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with separate q, k, v, o projections.

    Grouped-query attention (Ainslie et al., 2023) when n_kv_head < n_head: k and v have n_kv_head heads (d →
    n_kv_head·d_h), each serving n_head / n_kv_head query heads, so the KV cache is that many times smaller. With
    `rope` angles given to forward, q and k are rotated (`rotate`) instead of the model adding position embeddings.
    """

    def __init__(self, d_model: int, n_head: int, bias: bool = True, dropout: float = 0.0,
                 n_kv_head: int | None = None):
        super().__init__()
        self.n_head = n_head
        self.n_kv_head = n_kv_head or n_head
        self.d_head = d_model // n_head
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.k = nn.Linear(d_model, self.n_kv_head * self.d_head, bias=bias)
        self.v = nn.Linear(d_model, self.n_kv_head * self.d_head, bias=bias)
        self.o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)
        self.fused = True  # False → attention_math (identical up to float rounding; see tests)
        self.prefix = None  # optional module: () → (k_p, v_p), each (H_kv, P, d_h): extra rows every query sees

    def _split(self, x):  # (B, T, heads·d_h) → (B, heads, T, d_h)
        b, t, _ = x.shape
        return x.view(b, t, -1, self.d_head).transpose(1, 2)

    def forward(self, x, mask=None, cache: "KVCache | None" = None, layer: int = 0, rope=None):
        """x: (B, T, d). mask: None (plain causal) or bool (B|1, 1, T, T_past + T). rope: (cos, sin) from
        `rotary_angles` for rotary models, else None. Returns (B, T, d).

        With a cache, this layer's keys/values of earlier tokens are read from it and the new ones appended (k
        already rotated: a cached key keeps the position it was computed at).
        """
        b, t, d = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        t_k = k.size(2)
        if self.prefix is not None and not getattr(self.prefix, "disabled", False):
            k_p, v_p = self.prefix()
            n_p = k_p.size(1)
            k = torch.cat([k_p.to(k.dtype).unsqueeze(0).expand(b, -1, -1, -1), k], dim=2)
            v = torch.cat([v_p.to(v.dtype).unsqueeze(0).expand(b, -1, -1, -1), v], dim=2)
            if mask is None:
                mask = causal_mask(t, t_k, x.device)[None, None]
            mask = torch.cat([mask.new_ones(*mask.shape[:-1], n_p), mask], dim=-1)
        if self.n_kv_head != self.n_head:  # each key/value head serves n_head / n_kv_head query heads
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        p = self.dropout if self.training else 0.0
        if self.fused:
            # the common cases get SDPA's own causal flag, which lets it pick its fastest kernel
            if mask is None and t == t_k:
                y = attention_fused(q, k, v, None, p, is_causal=True)
            else:
                if mask is None and t > 1:
                    mask = causal_mask(t, t_k, x.device)
                y = attention_fused(q, k, v, mask, p)
        else:
            if mask is None and t > 1:
                mask = causal_mask(t, t_k, x.device)
            y = attention_math(q, k, v, mask, p)
        y = y.transpose(1, 2).reshape(b, t, d)  # re-join the heads
        return self.resid_dropout(self.o(y))


class KVCache:
    """Keys and values of the tokens seen so far, one (B, H, S, d_h) pair per layer, so generating a token costs one
    position of compute instead of re-running the whole prefix.

    Written in place: each layer's buffer is allocated once, (B, H, capacity, d_h), and a step writes its keys into
    the next free slots, k_buf[:, :, S:S+t] = k, returning the views k_buf[:, :, :S+t]. Appending with torch.cat
    instead copies all S cached rows every step, O(n²) bytes moved for n tokens. `capacity` (the most tokens the
    cache will hold: prompt + new tokens, at most the context) sizes the buffers; None, or a sequence that outgrows
    it, doubles the buffer when needed (amortised O(1) per token). `key_mask` (B, S) marks real tokens (False on
    left padding); None means all real.
    """

    def __init__(self, n_layer: int, capacity: int | None = None):
        self._k: list = [None] * n_layer
        self._v: list = [None] * n_layer
        self._len = [0] * n_layer
        self.capacity = capacity
        self.n_tokens = 0
        self.key_mask: torch.Tensor | None = None

    @property
    def keys(self) -> list:
        """Per layer, the cached keys (B, H, S, d_h) (views of the buffers), or None before the first token."""
        return [None if k is None else k[:, :, :n] for k, n in zip(self._k, self._len)]

    @property
    def values(self) -> list:
        return [None if v is None else v[:, :, :n] for v, n in zip(self._v, self._len)]

    def update(self, layer: int, k, v):
        """Write this step's keys and values (B, H, t, d_h) after the cached ones; return all of them as views."""
        n, t = self._len[layer], k.size(2)
        buf = self._k[layer]
        if buf is None or n + t > buf.size(2) or buf.dtype != k.dtype:
            size = max(n + t, self.capacity or 0, 2 * n)
            new_k = k.new_empty(k.size(0), k.size(1), size, k.size(3))
            new_v = v.new_empty(v.size(0), v.size(1), size, v.size(3))
            if buf is not None:
                new_k[:, :, :n], new_v[:, :, :n] = buf[:, :, :n], self._v[layer][:, :, :n]
            self._k[layer], self._v[layer] = new_k, new_v
        self._k[layer][:, :, n:n + t] = k
        self._v[layer][:, :, n:n + t] = v
        self._len[layer] = n + t
        return self._k[layer][:, :, :n + t], self._v[layer][:, :, :n + t]
