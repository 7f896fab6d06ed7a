"""Tests for minift/model.py: configuration, input checks, parameters, extension points and the loss, each checked
against an independent computation.

References: the closed-form parameter count, sample statistics of the GPT-2 init, a manual pass through the blocks,
and a log-softmax written out for the loss. Attention and masking are tested in test_attention.py, generation and
the KV cache in test_generation.py. Models are tiny and seeded, so the file runs in seconds on a laptop CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import TINY, make_model, tol
from minift.errors import ConfigError, InputError
from minift.model.gpt import GPT, IGNORE_INDEX, GPTConfig


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
# Extension points: forward hooks, inputs_embeds; the loss
# ---------------------------------------------------------------------------------------------------------------

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
