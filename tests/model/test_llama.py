"""The Llama architecture on a tiny random model: RMSNorm and SwiGLU in closed form, RoPE makes q·k depend on the
relative position only, grouped-query attention equals full attention with the k/v heads repeated, the fused and
explicit attention agree, the KV cache and left padding change nothing, and PEFT methods apply as on the GPT."""

from __future__ import annotations

import pytest
import torch

from helpers import PROMPTS, left_pad, tol
from minift.model.attention import rotary_angles, rotate
from minift.model.llama import Llama, LlamaConfig, RMSNorm
from minift.peft import apply_method, count_parameters, merge, method_config, unmerge
from minift.training.device import seed_everything

CFG = dict(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_ff=48, rope_theta=1e4)


def make_llama(seed=0, **overrides) -> Llama:
    seed_everything(seed)
    model = Llama(LlamaConfig(**{**CFG, **overrides})).eval()
    with torch.no_grad():  # weights large enough that every position matters
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(10.0)
    return model


def test_rmsnorm_and_swiglu_closed_form():
    x = torch.randn(2, 3, 8)
    norm = RMSNorm(8, 1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2, 8))
    want = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    assert torch.allclose(norm(x), want, atol=1e-6)
    mlp = make_llama().blocks[0].mlp
    h = torch.randn(4, 32)
    g, u = h @ mlp.gate.weight.T, h @ mlp.up.weight.T
    assert torch.allclose(mlp(h), (g * torch.sigmoid(g) * u) @ mlp.down.weight.T, atol=1e-4)


def test_rope_depends_on_relative_position_only():
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq, pk):
        cq = rotary_angles(torch.tensor([[pq]]), 16, 1e4)
        ck = rotary_angles(torch.tensor([[pk]]), 16, 1e4)
        return (rotate(q, *cq) * rotate(k, *ck)).sum().item()

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-4) and score(3, 1) != pytest.approx(score(3, 2))
    assert torch.allclose(rotate(q, *rotary_angles(torch.tensor([[0]]), 16, 1e4)), q)  # position 0: no turn


def test_gqa_equals_full_attention_with_repeated_kv_heads():
    gqa = make_llama()
    full = Llama(LlamaConfig(**{**CFG, "n_kv_head": 4})).eval()
    state = dict(gqa.state_dict())
    for i in range(CFG["n_layer"]):
        for name in ("k", "v"):  # (2 heads · 8, 32) → each head's rows twice, in head order
            w = state[f"blocks.{i}.attn.{name}.weight"].view(2, 8, 32)
            state[f"blocks.{i}.attn.{name}.weight"] = w.repeat_interleave(2, dim=0).reshape(32, 32)
    full.load_state_dict(state)
    full.lm_head.weight = full.tok_emb.weight
    x = torch.randint(0, 97, (2, 9))
    assert torch.allclose(gqa(x)[0], full(x)[0], atol=tol(full(x)[0]))


def test_fused_equals_explicit_cache_equals_uncached_and_padding_is_invisible():
    model = make_llama()
    x = torch.randint(0, 97, (2, 12))
    fused = model(x)[0]
    model.set_fused_attention(False)
    assert torch.allclose(model(x)[0], fused, atol=tol(fused))
    model.set_fused_attention(True)
    prompt = torch.tensor([PROMPTS[0]])
    cached = model.generate(prompt, 10, temperature=0.0, use_cache=True)
    assert torch.equal(cached, model.generate(prompt, 10, temperature=0.0, use_cache=False))
    idx, mask = left_pad(PROMPTS)
    batch = model.generate(idx, 6, temperature=0.0, attention_mask=mask)
    for row, p in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([p]), 6, temperature=0.0)
        assert batch[row, -6:].tolist() == alone[0, -6:].tolist()


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "adapter-houlsby", "adapter-pfeiffer", "prefix", "prompt",
                                    "loreft", "direft"])
def test_peft_methods_apply_to_the_llama(method):
    model = make_llama(block_size=64)
    x = torch.randint(0, 97, (2, 8))
    base = model(x)[0]
    apply_method(model, method_config(method))
    assert count_parameters(model)["trainable"] > 0
    out, loss = model(x, targets=torch.roll(x, -1, 1))
    loss.backward()  # gradients reach the method's parameters through RoPE and grouped-query attention
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    if method == "ia3":  # k, v and the SwiGLU's inner activation (the input of mlp.down)
        assert {n.split(".", 2)[2] for n, _ in model.named_parameters() if "ia3" in n} == {
            "attn.k.ia3_vector", "attn.v.ia3_vector", "mlp.down.ia3_vector"}
    if method in ("lora", "adapter-houlsby", "prefix"):  # these start as exactly the base
        assert torch.allclose(out, base, atol=tol(base)) if method != "prefix" else out.shape == base.shape
    if method == "lora":
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.1)
            unmerged = model(x)[0]
            merge(model)
            assert torch.allclose(model(x)[0], unmerged, atol=tol(unmerged, 1e-4))
            unmerge(model)
