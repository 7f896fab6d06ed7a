"""Plain helpers shared by the test folders (fixtures live in conftest.py). Test files import them with
`from helpers import ...` (pyproject.toml puts tests/ on the path).

One model factory, `make_model(seed, **shape)`, in two named shapes:
  * TINY for the model tests (tests/model): 4 heads, vocabulary 97, context 32;
  * CFG / LONG_CFG for the PEFT tests (tests/peft), whose parameter counts are checked by formula on these
    numbers; `base_model` and `long_base_model` are make_model in those shapes.
and the inputs and a short training loop the PEFT tests share.

Everything is seeded with its own generator, so a helper returns the same tensors whatever ran before it.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn as nn

from minift.model.gpt import GPT, GPTConfig
from minift.training.optim import AdamW, param_groups
from minift.peft import LoRALinear
from minift.training.device import seed_everything

# ---------------------------------------------------------------------------------------------------------------
# The model tests
# ---------------------------------------------------------------------------------------------------------------

TINY = dict(vocab_size=97, block_size=32, n_layer=2, n_head=4, d_model=32)


def make_model(seed: int = 0, sharpen: bool = False, **overrides) -> GPT:
    """A tiny GPT in eval mode, shape TINY unless overridden; the same seed gives the same weights. `sharpen`
    scales every matrix ×15: a GPT-2-init model is so close to uniform that greedy decoding repeats one token,
    which a broken cache or mask could still reproduce; scaled weights make the next token depend on the whole
    context."""
    seed_everything(seed)
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


def left_pad(prompts, pad_id=0):
    """(ids, attention_mask), both (B, max len): each prompt right-aligned, padded on the left with `pad_id`."""
    width = max(len(p) for p in prompts)
    idx = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        idx[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    return idx, mask


PROMPTS = [[5, 17, 3, 88, 41, 9, 60], [12, 7], [30, 31, 32, 33]]


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


# ---------------------------------------------------------------------------------------------------------------
# The PEFT tests
# ---------------------------------------------------------------------------------------------------------------

CFG = GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, d_model=32)
LONG_CFG = GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2, d_model=32)  # room for virtual tokens


def base_model(seed=0, cfg=CFG):
    """`make_model` in the PEFT tests' shape."""
    return make_model(seed, **cfg.to_dict())


def ids(seed=1, b=2, t=8):
    """(b, t) token ids below the vocabulary size of CFG and LONG_CFG (both 64)."""
    return torch.randint(0, CFG.vocab_size, (b, t), generator=torch.Generator().manual_seed(seed))


def long_base_model(seed=0):
    return base_model(seed, LONG_CFG)


def long_ids(seed=1, b=2, t=10):
    return ids(seed, b, t)


def train_steps(model, x, y, steps=10, lr=1e-2, context=None):
    """`steps` AdamW steps (weight decay 0.1) on loss(model(x), y) in train mode; returns the losses and leaves
    the model in eval mode. `context`, if given, is called for a context manager to run each forward in."""
    model.train()
    opt = AdamW(param_groups(model, 0.1), lr=lr)
    losses = []
    for _ in range(steps):
        with context() if context is not None else nullcontext():
            _, loss = model(x, y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return losses


def assert_base_unchanged(model, base):
    """Every parameter of `base` is still bit-identical, under the same name, in `model` (a trained copy)."""
    own = dict(model.named_parameters())
    for name, p in base.named_parameters():
        assert torch.equal(own[name], p), name


def linear(w, b):
    """An nn.Linear with the given weight rows `w` and bias `b` (nested lists), for hand-computed vectors."""
    lin = nn.Linear(len(w[0]), len(w), bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w, dtype=torch.float32))
        lin.bias.copy_(torch.tensor(b, dtype=torch.float32))
    return lin


def lora_layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def randomise_B(model, seed=3, std=0.1):
    """Random B in every LoRA layer: B = 0 at init makes the update vanish, which would hide a wrong formula."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_layers(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * std)
