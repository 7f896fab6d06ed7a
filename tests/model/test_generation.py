"""Tests for GPT.generate and the KV cache: cached == uncached == a hand-written greedy loop.

References: the definition of greedy decoding (rerun the last block_size tokens, append the argmax), a full forward
for the cache's step-by-step logits, and each row of a left-padded batch generated alone. Models are tiny, seeded
and sharpened, so a broken cache or mask changes the tokens.
"""

from __future__ import annotations

import pytest
import torch

from helpers import PROMPTS, install_prefix, left_pad, make_model, tol
from minift.model.attention import KVCache
from minift.errors import InputError


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
    idx, mask = left_pad(PROMPTS, pad_id=50)
    out = model.generate(idx, 15, temperature=0, use_cache=use_cache, attention_mask=mask)
    for i, p in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([p]), 15, temperature=0, use_cache=use_cache)
        assert out[i, idx.size(1):].tolist() == alone[0, len(p):].tolist()


def test_padded_generation_past_block_size_cached_equals_uncached():
    # Past block_size a padded row's window still holds its pads, so it no longer matches the row alone;
    # what must hold is that the cache changes nothing.
    model = make_model(sharpen=True)
    idx, mask = left_pad(PROMPTS, pad_id=50)
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
    idx, mask = left_pad(PROMPTS, pad_id=50)
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
    padded, mask = left_pad(PROMPTS, pad_id=50)
    out = model.generate(padded, 10, temperature=0, attention_mask=mask)
    for i, p in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([p]), 10, temperature=0)
        assert out[i, padded.size(1):].tolist() == alone[0, len(p):].tolist()


def test_the_cache_is_written_in_place_and_grows_when_it_must():
    """A sized cache allocates each layer's buffer once (the storage never moves while tokens are appended); an
    unsized one grows by doubling; both give exactly the keys and logits of the whole sequence."""
    model = make_model(sharpen=True)
    idx = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(5))
    full, _ = model(idx)
    for capacity in (20, None):
        cache = KVCache(model.config.n_layer, capacity=capacity)
        pieces = [model(idx[:, :6], cache=cache)[0]]
        where = cache.keys[0].data_ptr()
        moved = 0
        for t in range(6, 20):
            pieces.append(model(idx[:, t:t + 1], cache=cache)[0])
            moved += cache.keys[0].data_ptr() != where
            where = cache.keys[0].data_ptr()
        assert moved == (0 if capacity else 2)  # None: 6 → 12 → 24 slots
        assert cache.keys[0].shape == (2, 4, 20, 8) and cache.n_tokens == 20
        torch.testing.assert_close(torch.cat(pieces, 1), full, atol=tol(full), rtol=0)
