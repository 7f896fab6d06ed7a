# %% [markdown]
# # Lesson 01 — exercises with worked solutions
#
# Each exercise asks for one change to what lesson 01 did and says what to expect; the solution below it makes the
# change and measures. Run it like a lesson: `python lessons/solutions/01_transformer.py` (`MINIFT_QUICK=1` for the
# smoke test the tests run). It reads the `tiny` base when it is cached (`minift warmup`), else the `quick` one.

# %%
import math

import torch

from minift.base import base_dir, load_base
from minift.model import GPT, GPTConfig, causal_mask
from minift.training import seed_everything
from minift.workshop import claim, mode, report, seed

MODE, SEED = mode(), seed()
PRESET = "tiny" if MODE != "quick" and (base_dir("tiny") / "config.json").is_file() else "quick"
seed_everything(SEED)
model, tok = load_base(PRESET, progress=False)
model.eval()
idx = torch.tensor([tok.encode("Paris is the capital of France. People in France speak French.")])
print(f"mode: {MODE}; base {PRESET}; {idx.size(1)} tokens")

# %% [markdown]
# **Exercise 1 — the 1/√d_h.** Compute one head's attention weights with and without the division by √d_h.
# *Expect:* without it the scores are √d_h ≈ 7 times larger, so the softmax becomes much more peaked: each query
# puts most of its weight on one key (lower entropy), and training would see vanishing gradients through the
# softmax.

# %%
def attention_weights(layer: int, head: int, scale: bool) -> torch.Tensor:
    block = model.blocks[layer]
    d_h = block.attn.d_head
    cols = slice(head * d_h, (head + 1) * d_h)
    x = model.tok_emb(idx) + model.pos_emb(torch.arange(idx.size(1)))
    for earlier in model.blocks[:layer]:
        x = earlier(x)
    z = block.ln1(x)[0]
    scores = block.attn.q(z)[:, cols] @ block.attn.k(z)[:, cols].T
    scores = scores / math.sqrt(d_h) if scale else scores
    t = idx.size(1)
    return torch.softmax(scores.masked_fill(~causal_mask(t, t), float("-inf")), dim=-1)


def mean_entropy(a: torch.Tensor) -> float:
    return float(-(a * a.clamp_min(1e-12).log()).sum(-1).mean())


with torch.no_grad():
    scaled, unscaled = attention_weights(0, 0, True), attention_weights(0, 0, False)
report("mean entropy of a row, with 1/√d_h (nats)", mean_entropy(scaled))
report("mean entropy of a row, without (nats)", mean_entropy(unscaled))
report("mean largest weight, with", scaled.max(-1).values.mean())
report("mean largest weight, without", unscaled.max(-1).values.mean())
claim("without the scaling the attention is more peaked", mean_entropy(unscaled) < mean_entropy(scaled))

# %% [markdown]
# *Solution.* The rows' entropy drops and the largest weight per row rises (the numbers above; on the `tiny` base,
# layer 0, head 0: 1.14 → 0.21 nats, 0.58 → 0.90). The scaling keeps the scores' variance near 1 whatever the head
# width, so that a softmax at initialisation is neither uniform nor one-hot (Vaswani et al., 2017, §3.2.1).
#
# **Exercise 2 — a model without biases.** `GPTConfig(bias=False)` drops every bias, the LayerNorms' β included.
# Write the closed form and check it. *Expect:* each block loses 4d (attention) + 5d (MLP) + 2d (LayerNorm β)
# = 11d, the final LayerNorm d: N = Vd + Td + L(12d² + 2d) + d.

# %%
cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=model.config.block_size, n_layer=model.config.n_layer,
                n_head=model.config.n_head, d_model=model.config.d_model, bias=False)
V, T, L, d = cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.d_model
closed = V * d + T * d + L * (12 * d * d + 2 * d) + d
counted = GPT(cfg).num_parameters()
report("parameters without biases, closed form", closed, fmt=",.0f")
report("parameters with biases minus without", model.num_parameters() - counted, fmt=",.0f")
claim("the closed form without biases counts every parameter", closed == counted)
claim("biases are 11d per block plus d", model.num_parameters() - counted == L * 11 * d + d)

# %% [markdown]
# *Solution.* The count matches, and the biases were 11Ld + d numbers — 8,640 of the `tiny` base's 2.2 M (0.4 %).
# Most modern models (Llama, SmolLM2) drop them: they cost almost nothing, and almost nothing is lost without them.
