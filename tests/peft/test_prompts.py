"""Prefix tuning and prompt tuning (docs/peft.md): explicit attention, caching, hard = soft prompt, labels,
context budget, counts, frozen base, save/load."""

import copy
import math

import pytest
import torch

from helpers import LONG_CFG as CFG, assert_base_unchanged, long_base_model as base_model, long_ids as ids, train_steps
from minift.errors import ConfigError, InputError
from minift.model.attention import KVCache
from minift.model.gpt import IGNORE_INDEX
from minift.peft import apply_method, count_parameters, disabled, load_adapter, merge, method_config, save_adapter
from minift.peft.prompts import PrefixConfig, PromptConfig, _base_kv, fold_prefix
from minift.training.device import seed_everything

L, D, H = CFG.n_layer, CFG.d_model, CFG.n_head


def randomise(model, seed=5, std=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * std)


# --- prefix tuning --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [True, False])
def test_prefix_rows_are_seen_by_every_query(fused):
    """Attention output with the prefix = softmax(q [P_K; K]ᵀ/√d_h + M) [P_V; V] written out, M = 0 on every
    prefix column and causal on the real ones."""
    model = apply_method(base_model(), method_config("prefix", n_virtual=3))
    model.set_fused_attention(fused)
    attn = model.blocks[1].attn
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(0))
    got = attn(x)

    def split(t):
        return t.view(2, 5, H, D // H).transpose(1, 2)

    q, k, v = split(attn.q(x)), split(attn.k(x)), split(attn.v(x))
    kp, vp = attn.prefix()
    assert kp.shape == vp.shape == (H, 3, D // H)
    k = torch.cat([kp.expand(2, -1, -1, -1), k], 2)
    v = torch.cat([vp.expand(2, -1, -1, -1), v], 2)
    allowed = torch.ones(5, 8, dtype=torch.bool)
    allowed[:, 3:] = torch.tril(torch.ones(5, 5, dtype=torch.bool))
    w = (q @ k.transpose(-2, -1) / math.sqrt(D // H)).masked_fill(~allowed, float("-inf")).softmax(-1)
    assert (w[..., :3] > 0).all()  # every query puts weight on every prefix row
    want = attn.o((w @ v).transpose(1, 2).reshape(2, 5, D))
    assert torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("reparam", [False, True])
def test_prefix_cached_equals_uncached(reparam):
    model = apply_method(base_model(), method_config("prefix", n_virtual=4, reparam=reparam))
    x = ids(t=9)
    full, _ = model(x)
    cache = KVCache(L)
    parts = [model(x[:, :5], cache=cache)[0]] + [model(x[:, i:i + 1], cache=cache)[0] for i in range(5, 9)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.generate(x[:, :4], 12, temperature=0), model.generate(x[:, :4], 12, temperature=0,
                                                                                   use_cache=False))
    assert full.shape == (2, 9, CFG.vocab_size)


def test_prefix_causality_and_disabled():
    base = base_model()
    model = apply_method(copy.deepcopy(base), method_config("prefix", n_virtual=4))
    x = ids(t=8)
    x2 = x.clone()
    x2[:, 5:] = (x2[:, 5:] + 1) % CFG.vocab_size
    a, b = model(x)[0], model(x2)[0]
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5:], b[:, 5:])
    assert not torch.allclose(a, base(x)[0], atol=1e-3)
    with disabled(model):
        assert torch.equal(model(x)[0], base(x)[0])


def test_prefix_counts_and_frozen_base():
    P, h = 5, 16
    base = base_model()
    plain = apply_method(copy.deepcopy(base), method_config("prefix", n_virtual=P))
    assert count_parameters(plain)["trainable"] == 2 * L * P * D
    assert 2 * 6 * 10 * 384 == 46_080  # the example in docs/peft.md
    rep = apply_method(copy.deepcopy(base), method_config("prefix", n_virtual=P, reparam=True, reparam_hidden=h))
    assert count_parameters(rep)["trainable"] == P * D + D * h + h + 2 * L * D * h + 2 * L * D
    assert plain.prefix_encoder.table.no_decay and rep.prefix_encoder.emb.no_decay
    x, y = ids(2), ids(3)
    for model in (plain, rep):
        losses = train_steps(model, x, y)
        assert losses[-1] < losses[0]
        assert_base_unchanged(model, base)


def test_fold_prefix_keeps_outputs(tmp_path):
    model = apply_method(base_model(), method_config("prefix", n_virtual=4, reparam=True))
    randomise(model)
    x = ids()
    want, _ = model(x)
    fold_prefix(model)
    assert torch.allclose(model(x)[0], want, atol=1e-6)
    assert count_parameters(model)["trainable"] == 2 * L * 4 * D
    assert model.peft_config == PrefixConfig(n_virtual=4)
    save_adapter(model, tmp_path / "p.pt")
    assert torch.allclose(load_adapter(base_model(), tmp_path / "p.pt")(x)[0], want, atol=1e-6)


def test_prefix_vocab_init_is_the_base_models_keys_and_values():
    base = base_model()
    seed_everything(7)
    model = apply_method(copy.deepcopy(base), method_config("prefix", n_virtual=3, init="vocab"))
    seed_everything(7)
    c = torch.randint(0, CFG.vocab_size, (3,))
    table = model.prefix_encoder.table
    assert table.shape == (L, 2, H, 3, D // H)
    assert torch.allclose(table, _base_kv(base, c), atol=1e-6)
    # layer 0 keys by hand: k = W_k LN₁(E_tok[c] + E_pos[0..2])
    h0 = base.blocks[0].ln1(base.tok_emb(c) + base.pos_emb(torch.arange(3)))
    k0 = base.blocks[0].attn.k(h0).view(3, H, D // H).transpose(0, 1)
    assert torch.allclose(table[0, 0], k0, atol=1e-6)


# --- prompt tuning --------------------------------------------------------------------------------------------------

def test_soft_prompt_from_text_is_the_hard_prompt():
    base = base_model()
    c = [5, 17, 3, 42]
    model = apply_method(copy.deepcopy(base), method_config("prompt", n_virtual=4, init="text", init_ids=c))
    x = ids(t=7)
    hard = torch.cat([torch.tensor(c).expand(2, -1), x], 1)
    soft, _ = model(x)
    assert soft.shape == (2, 7, CFG.vocab_size)
    assert torch.equal(soft, base(hard)[0][:, 4:])
    assert torch.equal(model.hidden(x), base.hidden(hard)[:, 4:])  # the classification path too
    assert torch.equal(model.generate(x, 5, temperature=0)[:, 7:], base.generate(hard, 5, temperature=0)[:, 11:])


def test_prompt_labels_and_loss():
    model = apply_method(base_model(), method_config("prompt", n_virtual=3))
    x, y = ids(2), ids(3)
    y[0, :2] = IGNORE_INDEX
    embeds, targets, mask = model.soft_prompt.extend(model, x, y, torch.ones_like(x))
    assert embeds.shape == (2, 13, D) and torch.equal(mask, torch.ones(2, 13, dtype=x.dtype))
    assert (targets[:, :3] == IGNORE_INDEX).all() and torch.equal(targets[:, 3:], y)
    logits, loss = model(x, y)
    # the same loss from the explicit form, and from the x-slice of the logits (prompt slots ignored)
    full = type(model).hidden(model, None, mask, None, embeds)
    ref = torch.nn.functional.cross_entropy(model.lm_head(full).flatten(0, 1), targets.flatten(),
                                            ignore_index=IGNORE_INDEX)
    assert torch.allclose(loss, ref, atol=1e-6)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()), atol=1e-6)


def test_prompt_context_budget():
    model = apply_method(base_model(), method_config("prompt", n_virtual=5))
    model(ids(t=27))
    with pytest.raises(InputError, match="at most 27 tokens"):
        model(ids(t=28))
    with pytest.raises(ConfigError, match="no room"):
        apply_method(base_model(), method_config("prompt", n_virtual=32))


def test_prompt_generation_cached_uncached_and_left_padding():
    model = apply_method(base_model(), method_config("prompt", n_virtual=4, init="random"))
    randomise(model, std=0.05)
    x = ids(t=6)
    g = model.generate(x, 10, temperature=0)
    assert torch.equal(g, model.generate(x, 10, temperature=0, use_cache=False))
    # row 1 shorter, left padded: same continuation as alone (positions count real slots only)
    short = x[1:, 2:]
    padded = torch.cat([x[:1], torch.cat([torch.zeros(1, 2, dtype=x.dtype), short], 1)])
    mask = torch.ones_like(padded)
    mask[1, :2] = 0
    gp = model.generate(padded, 6, temperature=0, attention_mask=mask)
    assert torch.equal(gp[1, 6:], model.generate(short, 6, temperature=0)[0, 4:])
    logits_p, _ = model(padded, attention_mask=mask)
    assert torch.allclose(logits_p[1, 2:], model(short)[0][0], atol=1e-5)


def test_prompt_init_options_and_text_repeat():
    base = base_model()
    emb = base.tok_emb.weight
    m = apply_method(copy.deepcopy(base), method_config("prompt", n_virtual=5, init="text", init_ids=[3, 9]))
    assert torch.equal(m.soft_prompt.prompt, emb[[3, 9, 3, 9, 3]])
    m = apply_method(copy.deepcopy(base), method_config("prompt", n_virtual=2, init="text", init_ids=[3, 9, 11]))
    assert torch.equal(m.soft_prompt.prompt, emb[[3, 9]])
    m = apply_method(copy.deepcopy(base), method_config("prompt", n_virtual=6, init="vocab"))
    rows = m.soft_prompt.prompt
    assert all((emb == r).all(1).any() for r in rows)  # each vector is some vocabulary row

    class Tok:
        def encode(self, text):
            return [ord(ch) % 64 for ch in text]

    cfg = PromptConfig(n_virtual=3, init="text", init_text="abc").with_tokenizer(Tok())
    assert cfg.init_ids == [97 % 64, 98 % 64, 99 % 64]
    with pytest.raises(ConfigError, match="with_tokenizer"):
        apply_method(copy.deepcopy(base), PromptConfig(n_virtual=3, init="text", init_text="abc"))
    with pytest.raises(ConfigError, match="init"):
        method_config("prompt", init="zeros")


def test_prompt_trains_only_the_prompt_and_round_trips(tmp_path):
    base = base_model()
    model = apply_method(copy.deepcopy(base), method_config("prompt", n_virtual=4))
    assert count_parameters(model)["trainable"] == 4 * D
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["soft_prompt.prompt"]
    x, y = ids(2), ids(3)
    losses = train_steps(model, x, y)
    assert losses[-1] < losses[0]
    assert_base_unchanged(model, base)
    with disabled(model):
        assert torch.equal(model(x)[0], base(x)[0])
    save_adapter(model, tmp_path / "s.pt")
    fresh = load_adapter(base_model(), tmp_path / "s.pt")
    assert torch.equal(fresh(x)[0], model(x)[0])


def test_prefix_save_load_and_not_mergeable(tmp_path):
    for kw in ({}, {"reparam": True}):
        model = apply_method(base_model(), method_config("prefix", n_virtual=3, **kw))
        randomise(model)
        x = ids()
        save_adapter(model, tmp_path / "p.pt")
        fresh = load_adapter(base_model(), tmp_path / "p.pt")
        assert torch.equal(fresh(x)[0], model(x)[0])
        with pytest.raises(ConfigError, match="cannot be merged"):
            merge(model)
    assert not PromptConfig.mergeable and not PrefixConfig.mergeable


def test_inputs_embeds_path_and_deepcopy():
    model = apply_method(base_model(), method_config("prompt", n_virtual=3))
    x = ids()
    want, _ = model(x)
    assert torch.equal(model(inputs_embeds=model.tok_emb(x))[0], want)  # e.g. NEFTune feeds embeddings
    twin = copy.deepcopy(model)  # the installed `hidden` must follow the copy, not the original
    with torch.no_grad():
        twin.soft_prompt.prompt.add_(torch.randn(3, D))  # (a constant shift would vanish in LayerNorm)
    assert torch.equal(model(x)[0], want) and not torch.allclose(twin(x)[0], want, atol=1e-3)


def test_soft_prompt_reaches_the_classifier_path():
    from minift.finetune.classify import Classifier
    c = [5, 17, 3]
    base = base_model()
    clf = apply_method(Classifier(copy.deepcopy(base), ["a", "b"]),
                       method_config("prompt", n_virtual=3, init="text", init_ids=c))
    plain = Classifier(base, ["a", "b"])
    plain.head.load_state_dict(clf.head.state_dict())
    x = ids(t=6)
    hard = torch.cat([torch.tensor(c).expand(2, -1), x], 1)
    assert torch.equal(clf(x), plain(hard))
