"""LoReFT / DiReFT (docs/peft.md): hand vectors, orthonormality, subspace write, positions, locality, padding,
cached = uncached generation, counts, frozen base, fp32 R under autocast, save/load."""

import copy

import pytest
import torch

from helpers import LONG_CFG as CFG, assert_base_unchanged, long_base_model as base_model, long_ids as ids, train_steps
from minift.errors import ConfigError, InputError
from minift.training.optim import AdamW, param_groups
from minift.peft import apply_method, count_parameters, disabled, load_adapter, merge, method_config, save_adapter
from minift.peft import reft
from minift.peft.reft import DiReFT, LoReFT, ReftLayer, parse_positions, prompt_lengths, select_positions

L, D = CFG.n_layer, CFG.d_model


def set_loreft(phi, R, W, b):
    with torch.no_grad():
        phi.rotate.weight = torch.tensor(R)
        phi.proj.weight.copy_(torch.tensor(W))
        phi.proj.bias.copy_(torch.tensor(b))


def block_outputs(model, x, **kw):
    """Residual stream after each block, as the next block sees it (after any intervention)."""
    seen = []
    handles = [blk.register_forward_hook(lambda m, a, out: seen.append(out.detach())) for blk in model.blocks]
    model(x, **kw)
    for h in handles:
        h.remove()
    return seen


# --- the interventions on vectors -----------------------------------------------------------------------------------

def test_hand_vectors():
    h = torch.tensor([[2.0, 3.0]])
    lo = LoReFT(2, 1)
    set_loreft(lo, [[1.0, 0.0]], [[0.0, 1.0]], [0.5])
    assert torch.allclose(lo(h), torch.tensor([[3.5, 3.0]]), atol=1e-6)
    set_loreft(lo, [[0.6, 0.8]], [[0.0, 0.0]], [0.0])
    assert torch.allclose(lo(h), torch.tensor([[-0.16, 0.12]]), atol=1e-6)
    assert torch.allclose(lo(h) @ lo.R.T, torch.zeros(1, 1), atol=1e-6)
    di = DiReFT(2, 1)
    with torch.no_grad():
        di.proj.weight.copy_(torch.tensor([[0.0, 1.0]]))
        di.proj.bias.fill_(0.5)
        di.write.copy_(torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(di(h), torch.tensor([[5.5, 3.0]]), atol=1e-6)


def test_loreft_subspace_write_complement_and_identity_init():
    torch.manual_seed(0)
    phi = LoReFT(16, 3)
    h = torch.randn(5, 16) * 3
    out = phi(h)
    R = phi.R
    assert torch.allclose(R @ R.T, torch.eye(3), atol=1e-5)
    assert torch.allclose(out @ R.T, phi.proj(h), atol=1e-5)  # R Φ(h) = W h + b
    assert torch.allclose((out - h) @ (torch.eye(16) - R.T @ R), torch.zeros(5, 16), atol=1e-5)
    assert not torch.allclose(out, h, atol=1e-3)  # default init is not the identity
    assert torch.allclose(LoReFT(16, 3, init="identity")(h), h, atol=1e-6)


def test_direft_edit_lies_in_rowspace_of_w2():
    torch.manual_seed(0)
    phi = DiReFT(16, 3)
    h = torch.randn(5, 16)
    delta = phi(h) - h
    q, _ = torch.linalg.qr(phi.write.T)  # orthonormal basis of rowspace(W₂), (16, 3)
    assert torch.allclose(delta - delta @ q @ q.T, torch.zeros(5, 16), atol=1e-5)
    assert torch.allclose(DiReFT(16, 3, init="identity")(h), h, atol=0)


def test_orthonormal_after_aggressive_training():
    torch.manual_seed(0)
    phi = LoReFT(16, 4)
    assert phi.rotate.parametrizations.weight.original.no_decay
    opt = AdamW(param_groups(phi, weight_decay=0.5), lr=0.1)
    h, target = torch.randn(32, 16), torch.randn(32, 16)
    for _ in range(40):
        loss = ((phi(h) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(phi.R @ phi.R.T, torch.eye(4), atol=1e-5)
    assert phi.R.dtype == torch.float32


# --- positions ------------------------------------------------------------------------------------------------------

def test_parse_positions():
    assert parse_positions("f3+l3") == (3, 3)
    assert parse_positions("f5") == (5, 0)
    assert parse_positions("l1") == (0, 1)
    assert parse_positions("f12+l0") == (12, 0)
    for bad in ["", "f", "l", "3", "f3l3", "l3+f3", "f0", "f0+l0", "f-1", "F3", "f3+", "+l3", "f3+l3+l2", " f3", None]:
        with pytest.raises(ConfigError):
            parse_positions(bad)
    with pytest.raises(ConfigError, match="position spec"):
        method_config("loreft", positions="first3")


@pytest.mark.parametrize("n, spec, first, last", [
    (8, "f3+l3", [0, 1, 2], [5, 6, 7]),
    (5, "f3+l3", [0, 1], [3, 4]),        # ⌊5/2⌋ = 2 each, the middle token untouched
    (4, "f3+l3", [0, 1], [2, 3]),
    (1, "f3+l3", [], []),
    (2, "l3", [], [0, 1]),                # one side only: capped at n
    (6, "f2", [0, 1], []),
])
def test_select_positions_short_prompts(n, spec, first, last):
    rel = torch.arange(-2, 10)[None]  # two slots before the prompt (padding), then prompt-relative indices
    f, m = select_positions(rel, torch.tensor([n]), *parse_positions(spec))
    assert rel[f].tolist() == first and rel[m].tolist() == last


# --- in the model ---------------------------------------------------------------------------------------------------

def test_only_the_chosen_positions_change():
    """DiReFT f2+l2 after block 0 on a prompt of 8 tokens: the block-0 output changes at 0, 1, 6, 7 only; logits before
    the first last-position are untouched when only the suffix is intervened."""
    base = base_model()
    x = ids(t=8)
    model = apply_method(copy.deepcopy(base), method_config("direft", rank=2, layers=[0], positions="f2+l2"))
    got, want = block_outputs(model, x)[0], block_outputs(base, x)[0]
    changed = (got != want).any(-1)  # (B, T)
    assert changed.tolist() == [[True, True, False, False, False, False, True, True]] * 2
    suffix = apply_method(copy.deepcopy(base), method_config("loreft", rank=2, positions="l3"))
    a, b = suffix(x)[0], base(x)[0]
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-4)
    with disabled(suffix):
        assert torch.equal(suffix(x)[0], b)


def test_pinned_prompt_lengths_leave_the_response_alone():
    base = base_model()
    x = ids(t=10)
    model = apply_method(copy.deepcopy(base), method_config("loreft", rank=2, positions="f1+l1", tied=True))
    with prompt_lengths(model, [4, 6]):
        got = block_outputs(model, x)[0]
    want = block_outputs(base, x)[0]
    changed = (got != want).any(-1)
    assert changed[0].nonzero().flatten().tolist() == [0, 3]
    assert changed[1].nonzero().flatten().tolist() == [0, 5]
    with pytest.raises(InputError, match="exceed"):
        with prompt_lengths(model, [4, 11]):
            model(x)
    with pytest.raises(InputError, match="one per row"):
        with prompt_lengths(model, [4, 5, 6]):
            model(x)


def test_left_padding_counts_real_tokens():
    model = apply_method(base_model(), method_config("loreft", rank=2, positions="f2+l2"))
    x = ids(t=9)
    short = x[1:, 3:]
    padded = torch.cat([x[:1], torch.cat([torch.zeros(1, 3, dtype=x.dtype), short], 1)])
    mask = torch.ones_like(padded)
    mask[1, :3] = 0
    logits, _ = model(padded, attention_mask=mask)
    assert torch.allclose(logits[1, 3:], model(short)[0][0], atol=1e-5)
    assert torch.allclose(logits[0], model(x[:1])[0][0], atol=1e-5)
    g = reft.generate(model, padded, 5, attention_mask=mask, temperature=0)
    assert torch.equal(g[1, 9:], reft.generate(model, short, 5, temperature=0)[0, 6:])


@pytest.mark.parametrize("method", ["loreft", "direft"])
def test_cached_generation_equals_uncached(method):
    model = apply_method(base_model(), method_config(method, rank=4, positions="f3+l3"))
    x = ids(t=7)
    cached = reft.generate(model, x, 12, temperature=0)
    uncached = reft.generate(model, x, 12, temperature=0, use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(model.generate(x, 12, temperature=0), cached)  # default: the prefill is the prompt
    # the logits too: one pinned full pass vs a cached prefill followed by single steps
    seq = cached[:, :12]
    with prompt_lengths(model, 7):
        full, _ = model(seq)
        from minift.model.attention import KVCache
        cache = KVCache(L)
        parts = [model(seq[:, :7], cache=cache)[0]] + [model(seq[:, i:i + 1], cache=cache)[0] for i in range(7, 12)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_hidden_path_intervenes_too():
    model = apply_method(base_model(), method_config("loreft", rank=2, positions="l1"))
    x = ids()
    assert torch.equal(model.lm_head(model.hidden(x)), model(x)[0])
    with disabled(model):
        plain = model.hidden(x)
    assert not torch.allclose(model.hidden(x)[:, -1], plain[:, -1], atol=1e-4)


def test_counts_tied_untied_and_layers():
    r, per = 4, 2 * 4 * D + 4
    untied = apply_method(base_model(), method_config("loreft", rank=r))
    tied = apply_method(base_model(), method_config("loreft", rank=r, tied=True))
    one_side = apply_method(base_model(), method_config("direft", rank=r, positions="l2", layers=[1]))
    assert count_parameters(untied)["trainable"] == 2 * L * per
    assert count_parameters(tied)["trainable"] == L * per
    assert count_parameters(one_side)["trainable"] == per
    assert sorted(n for n, m in untied.named_modules() if isinstance(m, ReftLayer)) == ["blocks.0.reft",
                                                                                          "blocks.1.reft"]
    assert 2 * 6 * (2 * 4 * 384 + 4) == 36_912 and 4 * 8 * (2 * 4 * 4096 + 4) // 4 == 262_176  # the paper-sized examples in docs/peft.md
    with pytest.raises(ConfigError, match="rank"):
        apply_method(base_model(), method_config("loreft", rank=33))
    with pytest.raises(ConfigError, match="cannot be merged"):
        merge(untied)


@pytest.mark.parametrize("method", ["loreft", "direft"])
def test_training_keeps_base_and_orthonormality(method, tmp_path):
    base = base_model()
    model = apply_method(copy.deepcopy(base), method_config(method, rank=2, positions="f2+l2"))
    x, y = ids(2), ids(3)
    losses = train_steps(model, x, y, steps=12, lr=3e-2, context=lambda: prompt_lengths(model, 6))
    assert losses[-1] < losses[0]
    assert_base_unchanged(model, base)
    if method == "loreft":
        for blk in model.blocks:
            for phi in (blk.reft.first, blk.reft.last):
                assert torch.allclose(phi.R @ phi.R.T, torch.eye(2), atol=1e-5)
    save_adapter(model, tmp_path / "r.pt")
    fresh = load_adapter(base_model(), tmp_path / "r.pt")
    with prompt_lengths(model, 6), prompt_lengths(fresh, 6):
        assert torch.equal(fresh(x)[0], model(x)[0])
    assert torch.equal(reft.generate(fresh, x, 4, temperature=0), reft.generate(model, x, 4, temperature=0))


def test_r_stays_fp32_under_bf16_autocast():
    model = apply_method(base_model(), method_config("loreft", rank=2))
    x = ids()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = model(x)
    assert torch.isfinite(logits.float()).all()
    assert model.blocks[0].reft.first.R.dtype == torch.float32


def test_sft_prompt_lengths_from_targets_and_deepcopy():
    from minift.model.gpt import IGNORE_INDEX
    targets = torch.tensor([[-100, -100, -100, 5, 6, -100], [-100, 7, 8, 9, 1, 2]])
    assert IGNORE_INDEX == -100
    assert reft.prompt_lengths_from_targets(targets).tolist() == [4, 2]
    with pytest.raises(InputError, match="no supervised"):
        reft.prompt_lengths_from_targets(torch.full((1, 4), -100))
    base = base_model()
    model = apply_method(copy.deepcopy(base), method_config("loreft", rank=2, positions="l1", layers=[0]))
    x = ids(t=6)
    seen = []
    loss_fn = reft.pinned_loss_fn(lambda m, batch: seen.append(block_outputs(m, batch[0])[0]))
    loss_fn(model, (x, targets))
    changed = (seen[0] != block_outputs(base, x)[0]).any(-1)
    assert changed.tolist() == [[False, False, False, True, False, False], [False, True, False, False, False, False]]
    before = model(x)[0]
    twin = copy.deepcopy(model)  # the installed `hidden` must follow the copy, not the original
    with torch.no_grad():
        twin.blocks[0].reft.shared.proj.bias.add_(1.0)
    assert not torch.allclose(twin(x)[0], before, atol=1e-4)
    assert torch.equal(model(x)[0], before)


def test_works_inside_a_classifier():
    from minift.finetune.classify import Classifier
    base = base_model()
    clf = apply_method(Classifier(copy.deepcopy(base), ["a", "b"]), method_config("loreft", rank=2, positions="l1"))
    x = ids()
    mask = torch.ones_like(x)
    mask[1, :3] = 0  # left padding: the last real token is still intervened
    plain = Classifier(base, ["a", "b"])
    plain.head.load_state_dict(clf.head.state_dict())
    assert clf(x, mask).shape == (2, 2)
    assert not torch.allclose(clf(x, mask), plain(x, mask), atol=1e-5)
    with disabled(clf):
        assert torch.equal(clf(x, mask), plain(x, mask))
