# %% [markdown]
# # Lesson 01 — The transformer, piece by piece
#
# A language model reads a sequence of tokens and, at every position, predicts a probability distribution over the
# next token. This lesson takes minift's GPT (`minift/model/gpt.py`) apart and rebuilds the interesting pieces by hand:
#
# 1. **tokens** — text becomes integer ids with a byte-level BPE tokenizer;
# 2. **embeddings** — ids become vectors, plus a vector for each position;
# 3. **one attention head** — computed by hand from the model's own weights, drawn as a heat-map, and checked
#    against the model's output;
# 4. **the causal mask** — why a token cannot look at the future;
# 5. **the block** — attention and an MLP, each added to a residual stream;
# 6. **the parameter count** — where the numbers live, in closed form;
# 7. **the output** — next-token probabilities.
#
# Nothing here re-implements the model: we call its modules and only write out the formulas to *look* at them.
#
# Run it as a notebook, or as a script: `python lessons/01_transformer.py` (≈ 15 s). Workshop mode
# (`MINIFT_DEMO=1`) is the same lesson here: it is already short. With `MINIFT_QUICK=1` every setting is small and
# it finishes in seconds (a smoke test, what the tests run). To look inside a *trained* model the lesson loads a
# pretrained base model: the small `quick` one (pretrained in seconds the first time), or — once `minift warmup`
# or lesson 02 has pretrained and cached it — the `tiny` base, whose attention patterns are more telling.

# %%
import math

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import PowerNorm

from minift.base import PRESETS, base_dir, load_base
from minift.data import generate_corpus
from minift.model import GPT, Tokenizer, causal_mask
from minift.finetune.forgetting import lm_val_loss, pretraining_batches
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
# the pretrained model to look inside: `tiny` if `minift warmup` (or lesson 02) has already cached it
PRESET = "tiny" if not QUICK and (base_dir("tiny") / "config.json").is_file() else "quick"
N_DOCS = pick(quick=300, demo=3000, full=3000)  # documents for our own small tokenizer
seed_everything(SEED)
projector_style()  # large fonts: readable on a projector
torch.set_printoptions(precision=3, sci_mode=False)
print(f"mode: {MODE}; seed {SEED}; base preset: {PRESET}; torch {torch.__version__}")
if not QUICK and PRESET == "quick":
    print("(the tiny base is not cached yet: run lesson 02 once, then re-run this lesson to look inside it)")

# %% [markdown]
# ## 1. Text → tokens
#
# minift ships its own small world (countries and capitals, animals, a shop, people) and a generator that writes
# documents about it: stories, encyclopedia facts, shop dialogues, reviews. Everything we pretrain and fine-tune
# on comes from there, so the lessons need no downloads.

# %%
docs = generate_corpus(seed=0, n_docs=N_DOCS)
print(f"{len(docs)} documents, {sum(len(d) for d in docs):,} characters. Two of them:\n")
for d in docs[:2]:
    print(d[:300], "\n---")

# %% [markdown]
# A model cannot read characters directly; it reads integers from a fixed **vocabulary**. *Byte-pair encoding*
# (BPE; Sennrich et al., 2016, and GPT-2's byte-level variant) builds that vocabulary by starting from the 256 byte
# values and repeatedly merging the most frequent adjacent pair into a new token, until the vocabulary has the size
# we asked for. Frequent words end up as one token; rare words are spelled from pieces; any text at all can still
# be encoded, byte by byte if need be.
#
# Two **special tokens** are reserved: `<|endoftext|>` separates documents (the model learns to produce it when a
# text is finished) and `<|pad|>` fills the unused end of a batch.

# %%
tok = Tokenizer.train(docs, vocab_size=512)
sentence = "Paris is the capital of France. People in France speak French."
ids = tok.encode(sentence)
print(f"vocabulary: {tok.vocab_size} tokens (end-of-text id {tok.eos_id}, padding id {tok.pad_id})")
print(f"{sentence!r}\n→ {len(ids)} token ids: {ids}")
print("pieces:", [tok.decode([i]) for i in ids])
assert tok.decode(ids) == sentence  # encoding loses nothing

# %% [markdown]
# Notice the leading spaces: byte-level BPE keeps the space *inside* the following word's token (`' capital'`), so
# decoding is just concatenation. The vocabulary size is a trade-off: more merges mean fewer tokens per text
# (shorter sequences, cheaper attention) but a bigger embedding table. The smallest possible byte-level vocabulary
# is the 256 bytes plus the 2 special tokens: one token per byte.

# %%
sample = docs[:200]
n_chars = sum(len(d) for d in sample)
for size in (258, 512, 1024):
    t = tok if size == 512 else Tokenizer.train(docs, vocab_size=size)
    n_tokens = sum(len(x) for x in t.encode_batch(sample))
    print(f"vocab {t.vocab_size:>5}: {n_chars / n_tokens:.2f} characters per token; the sentence is "
          f"{len(t.encode(sentence)):>2} tokens: {[t.decode([i]) for i in t.encode(sentence)][:10]} …")

# %% [markdown]
# From here on we use the **base model** and the tokenizer it was trained with (the same algorithm, trained on more
# text). `load_base` returns both; lesson 02 explains how the base was pretrained.

# %%
model, tok = load_base(PRESET, progress=False)
model.eval()
cfg = model.config
print(cfg)
ids = tok.encode(sentence)
idx = torch.tensor([ids])  # (B=1, T)
labels = [tok.decode([i]).replace(" ", "·") for i in ids]  # '·' marks the leading space
print(f"{len(ids)} tokens:", labels)

# %% [markdown]
# ## 2. Embeddings
#
# Each token id selects a row of the token embedding matrix $E_\text{tok}$ ($V \times d$), and each position
# $t = 0, 1, \dots$ selects a row of the position embedding matrix $E_\text{pos}$ ($T_\max \times d$, with
# $T_\max$ the context length `block_size`). Their sum is the input to the first block:
#
# $$x_0[t] = E_\text{tok}[\text{idx}_t] + E_\text{pos}[t] \qquad x_0 \in \mathbb{R}^{B \times T \times d}$$
#
# Attention by itself does not know the order of its inputs (permute the keys and you permute nothing else);
# the position embedding is what tells the model that "dog bites man" is not "man bites dog".
#
# Below we compute $x_0$ by hand and compare it with what actually enters `model.blocks[0]` (captured with a
# forward pre-hook, the standard PyTorch way to look inside a model without changing it).

# %%
captured = {}
hook = model.blocks[0].register_forward_pre_hook(lambda mod, args: captured.__setitem__("x0", args[0].detach()))
with torch.no_grad():
    model(idx)
hook.remove()

T = idx.size(1)
x0 = model.tok_emb.weight[idx] + model.pos_emb.weight[torch.arange(T)]  # (1, T, d)
print("x0 shape (B, T, d):", tuple(x0.shape))
print("max |hand − model| =", (x0 - captured["x0"]).abs().max().item())
claim("x0 by hand = what enters the first block", torch.allclose(x0, captured["x0"], atol=1e-6))

# %% [markdown]
# What did the position embeddings learn? The cosine similarity between every pair of position vectors shows it.
# **Look for** a bright diagonal band: after pretraining, neighbouring positions get similar vectors, so "position 17"
# and "position 18" mean almost the same thing to the model, while distant positions differ.

# %%
P = model.pos_emb.weight.detach()
P = P / P.norm(dim=1, keepdim=True)
fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
im = ax.imshow(P @ P.T, cmap="viridis", vmin=-1, vmax=1)
ax.set_title(f"position embeddings, {PRESET} base:\ncosine similarity")
ax.set_xlabel("position")
ax.set_ylabel("position")
fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# ## 3. One attention head, by hand
#
# Attention lets every position gather information from earlier positions. Layer ℓ first normalises the residual
# stream, $z = \text{LN}_1(x)$, then projects it three times ($W_Q, W_K, W_V$ are `attn.q`, `attn.k`, `attn.v`,
# each $d \times d$ with a bias). The $d$ output columns are split into $H$ heads of $d_h = d/H$ columns each; head
# $n$ uses its own slice $[n]$ of columns (here $V$ means the *values*, not the vocabulary):
#
# $$Q = z W_Q^{[n]},\quad K = z W_K^{[n]},\quad V = z W_V^{[n]} \qquad (T \times d_h)$$
#
# $$A = \text{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_h}} + M\right) \qquad y = A V$$
#
# $A_{ij}$ is how much query position $i$ attends to key position $j$; each row sums to 1. $M$ is the causal mask:
# 0 where $j \le i$, $-\infty$ where $j > i$ (section 4). Dividing by $\sqrt{d_h}$ keeps the scores' variance
# near 1 whatever the head size, so the softmax does not saturate at initialisation.
#
# The heads' outputs are concatenated and projected by $W_O$ (`attn.o`). Below, `head_by_hand` writes out the
# formula using the layer's own projection weights.

# %%
def head_by_hand(model: GPT, idx: torch.Tensor, layer: int, head: int):
    """Attention weights A (T, T) and output y (T, d_h) of one head, written out from the model's weights."""
    block = model.blocks[layer]
    d_h = block.attn.d_head
    cols = slice(head * d_h, (head + 1) * d_h)  # this head's columns of Q, K, V
    x = model.tok_emb(idx) + model.pos_emb(torch.arange(idx.size(1)))
    for earlier in model.blocks[:layer]:
        x = earlier(x)  # the residual stream arriving at `layer`
    z = block.ln1(x)[0]  # (T, d), batch of one
    q, k, v = block.attn.q(z)[:, cols], block.attn.k(z)[:, cols], block.attn.v(z)[:, cols]
    scores = q @ k.T / math.sqrt(d_h)  # (T, T)
    t = idx.size(1)
    scores = scores.masked_fill(~causal_mask(t, t), float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights, weights @ v


LAYER, HEAD = 0, 0
with torch.no_grad():
    A, y_hand = head_by_hand(model, idx, LAYER, HEAD)
print(f"A has shape {tuple(A.shape)}; its top-left corner (rows = queries, columns = keys):")
print(A[:5, :5])
print("every row sums to 1:", torch.allclose(A.sum(-1), torch.ones(T)))
for i in (3, T // 2, T - 1):
    top = A[i].topk(3)
    print(f"query {i:>2} {labels[i]!r:>10} attends most to "
          + ", ".join(f"{labels[j]!r} ({w:.2f})" for w, j in zip(top.values.tolist(), top.indices.tolist())))

# %% [markdown]
# Now check it against the model. The concatenated head outputs are the *input* of the output projection `attn.o`,
# so a pre-hook on `attn.o` captures them; head `HEAD` is its slice of columns. The model by default computes
# attention with PyTorch's fused kernel (`F.scaled_dot_product_attention`), a different code path, so agreement to
# float rounding is a real check of the formula.

# %%
got = {}
hook = model.blocks[LAYER].attn.o.register_forward_pre_hook(lambda mod, args: got.__setitem__("y", args[0].detach()))
with torch.no_grad():
    model(idx)
hook.remove()
d_h = model.blocks[LAYER].attn.d_head
y_model = got["y"][0, :, HEAD * d_h:(HEAD + 1) * d_h]
print("head output shape (T, d_h):", tuple(y_model.shape))
report("max |head by hand − model|", (y_hand - y_model).abs().max().item(), fmt=".1e")
claim("one attention head by hand = the model's fused attention", torch.allclose(y_hand, y_model, atol=1e-5))

# %% [markdown]
# The heat-map of $A$. **What to look at:** everything above the diagonal is exactly 0 (the future is masked).
# In the freshly initialised model (left) the weights are almost uniform over the visible past: row $i$ is close to
# $1/(i+1)$ everywhere, because tiny random weights make all scores ≈ 0. After pretraining (right) each head has
# preferences — some look at the previous token, some at the first token (a common "resting place" for attention),
# some at a related word. Change `LAYER` and `HEAD` above to look at other heads.

# %%
torch.manual_seed(SEED)
fresh = GPT(cfg).eval()
with torch.no_grad():
    A_fresh, _ = head_by_hand(fresh, idx, LAYER, HEAD)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
for ax, weights, title in [(axes[0], A_fresh, "freshly initialised"), (axes[1], A, f"pretrained ({PRESET})")]:
    # a square-root colour scale, so that small weights are still visible
    im = ax.imshow(weights.numpy(), cmap="magma", norm=PowerNorm(0.5, vmin=0, vmax=1))
    ax.set_xticks(range(T), labels, rotation=90)
    ax.set_yticks(range(T), labels)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(f"{title}: layer {LAYER}, head {HEAD}")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %% [markdown]
# ## 4. The causal mask
#
# A language model is trained to predict token $t+1$ from tokens $0..t$ at *every* position of a sequence at once.
# That only works if position $t$ cannot peek at token $t+1$. The mask adds $-\infty$ to those scores before the
# softmax, and $e^{-\infty} = 0$, so they get exactly zero weight. `causal_mask(T, T)` is the boolean picture:
# True (yellow) where query $i$ may look at key $j$, i.e. $j \le i$.

# %%
mask = causal_mask(8, 8)
raw = torch.randn(8, 8)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
axes[0].imshow(mask.numpy(), cmap="viridis")
axes[0].set_title("causal_mask(8, 8): True where j ≤ i")
axes[1].imshow(torch.softmax(raw, -1).numpy(), cmap="magma", vmin=0, vmax=1)
axes[1].set_title("softmax of random scores, no mask")
axes[2].imshow(torch.softmax(raw.masked_fill(~mask, float("-inf")), -1).numpy(), cmap="magma", vmin=0, vmax=1)
axes[2].set_title("the same scores, masked")
for ax in axes:
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
plt.show()
print("first row after masking:", torch.softmax(raw.masked_fill(~mask, float("-inf")), -1)[0])

# %% [markdown]
# The first query sees only itself, so its weight on key 0 is exactly 1. Because of the mask, one forward pass over
# a sequence of $T$ tokens gives $T$ training examples (predict token 1 from token 0, token 2 from tokens 0–1, …).
#
# ## 5. The block
#
# minift uses GPT-2's *pre-LayerNorm* block. The residual stream $x$ is never replaced, only added to:
#
# $$x \leftarrow x + \text{Attn}(\text{LN}_1(x)) \qquad x \leftarrow x + \text{MLP}(\text{LN}_2(x))$$
#
# $$\text{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta \qquad
#   \text{MLP}(h) = W_2\,\text{GELU}(W_1 h + b_1) + b_2,\quad d \to 4d \to d$$
#
# Attention moves information *between* positions; the MLP transforms each position on its own (it is where much
# of the "knowledge" is stored). The residual additions give gradients a direct path from the loss to every layer,
# which is what makes deep stacks trainable. Below: one block by hand, from its parts, against `block(x)`.

# %%
block = model.blocks[0]
with torch.no_grad():
    x = x0
    after_attn = x + block.attn(block.ln1(x))
    after_mlp = after_attn + block.mlp(block.ln2(after_attn))
    print("max |hand − block(x)| =", (after_mlp - block(x)).abs().max().item())
    assert torch.allclose(after_mlp, block(x), atol=1e-5)

# %% [markdown]
# How much does each sublayer write into the stream? The plot shows, layer by layer, the average norm of the
# residual stream and of the update each attention and MLP sublayer adds to it, computed with each block's own
# modules as above. **Look for** the stream's norm growing with depth: each block adds its updates on top of what is
# already there and nothing rescales the stream between blocks (the LayerNorms only normalise the *input* of each
# sublayer), which is why there is a final LayerNorm `ln_f` before the output.

# %%
stream, attn_upd, mlp_upd = [], [], []
with torch.no_grad():
    x = x0
    for block in model.blocks:
        a = block.attn(block.ln1(x))
        m = block.mlp(block.ln2(x + a))
        stream.append(x.norm(dim=-1).mean().item())
        attn_upd.append(a.norm(dim=-1).mean().item())
        mlp_upd.append(m.norm(dim=-1).mean().item())
        x = x + a + m
    stream.append(x.norm(dim=-1).mean().item())
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(range(len(stream)), stream, "o-", label="residual stream ‖x‖ entering layer")
ax.plot(range(len(attn_upd)), attn_upd, "s--", label="attention update ‖Attn(LN₁ x)‖")
ax.plot(range(len(mlp_upd)), mlp_upd, "^--", label="MLP update ‖MLP(LN₂ x)‖")
ax.set_xlabel("layer")
ax.set_ylabel("mean L2 norm per token")
ax.set_xticks(range(len(stream)))
ax.legend()
plt.show()

# %% [markdown]
# ## 6. Counting parameters
#
# With $V$ the vocabulary, $T$ the context length, $L$ layers and width $d$:
#
# | piece | parameters |
# |---|---|
# | token embedding $E_\text{tok}$ (also the output layer: *tied*) | $V d$ |
# | position embedding $E_\text{pos}$ | $T d$ |
# | attention: $W_Q, W_K, W_V, W_O$ with biases | $4d^2 + 4d$ per layer |
# | MLP: $d \to 4d$ and $4d \to d$ with biases | $8d^2 + 5d$ per layer |
# | two LayerNorms ($\gamma, \beta$ each) | $4d$ per layer |
# | final LayerNorm | $2d$ |
#
# $$N = Vd + Td + L\,(12d^2 + 13d) + 2d$$
#
# The output layer costs nothing extra because it *is* $E_\text{tok}$ (weight tying, Press & Wolf 2017):
# `model.lm_head.weight is model.tok_emb.weight`.

# %%
def closed_form(V: int, T: int, L: int, d: int) -> int:
    return V * d + T * d + L * (12 * d * d + 13 * d) + 2 * d


V, Tmax, L, d = cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.d_model
print(f"V={V}, T={Tmax}, L={L}, d={d}")
print(f"closed form:            {closed_form(V, Tmax, L, d):,}")
print(f"model.num_parameters(): {model.num_parameters():,}")
print("lm_head tied to tok_emb:", model.lm_head.weight is model.tok_emb.weight)
report("parameters", model.num_parameters(), fmt=",.0f")
claim("the closed form counts every parameter", closed_form(V, Tmax, L, d) == model.num_parameters())
for name, group in [("embeddings", ["tok_emb", "pos_emb"]), ("blocks", ["blocks"]), ("final LN", ["ln_f"])]:
    n = sum(p.numel() for n_, p in model.named_parameters() if n_.split(".")[0] in group)
    print(f"  {name:<11}{n:>10,}  ({n / model.num_parameters():.0%})")

# %% [markdown]
# The same formula gives GPT-2 small ($V$=50257, $T$=1024, $L$=12, $d$=768): 124,439,808 parameters — the "124M".
# **Look at** the split. Ignoring the small terms, the embeddings' share is about $V / (V + 12Ld)$: large when the
# vocabulary is big compared with depth × width (GPT-2 small: almost a third), small once models get deep and wide
# (GPT-2 XL: 5%). In every model that matters, the blocks' $12Ld^2$ weights dominate — which is why methods such as
# LoRA (later lessons) adapt the blocks' weight matrices.

# %%
sizes = {f"{name} base": (p.vocab_size, p.model["block_size"], p.model["n_layer"], p.model["d_model"])
         for name, p in PRESETS.items()}
sizes |= {"GPT-2 small": (50257, 1024, 12, 768), "GPT-2 XL": (50257, 1024, 48, 1600)}
print(f"GPT-2 small: {closed_form(50257, 1024, 12, 768):,}")
fig, ax = plt.subplots(figsize=(6.5, 2.8))
for row, (name, (V_, T_, L_, d_)) in enumerate(sizes.items()):
    total = closed_form(V_, T_, L_, d_)
    emb = (V_ + T_) * d_ / total
    ax.barh(row, emb, color="tab:orange", label="embeddings" if row == 0 else None)
    ax.barh(row, 1 - emb, left=emb, color="tab:blue", label="blocks + final LN" if row == 0 else None)
    ax.text(1.01, row, f"{total / 1e6:.2f}M", va="center")
ax.set_yticks(range(len(sizes)), list(sizes))
ax.set_xlim(0, 1.15)
ax.set_xlabel("fraction of parameters")
ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=11)
plt.show()

# %% [markdown]
# ## 7. From the last hidden state to the next token
#
# After the last block and `ln_f`, the model multiplies each position's vector by $E_\text{tok}^\top$, giving one
# score (*logit*) per vocabulary entry; a softmax turns them into probabilities for the next token:
#
# $$p(\text{next} = w \mid \text{tokens}_{0..t}) = \text{softmax}(\text{LN}_f(x_L[t])\,E_\text{tok}^\top)_w$$
#
# An untrained model spreads probability evenly, so its loss (cross-entropy, $-\ln p$ of the true next token) starts
# near $\ln V$. A pretrained model is far more certain — and usually right about the grammar of its small world.
# The loss below is measured on the pretraining corpus's **validation** windows: text the model never trained on
# (a training document would flatter it: the `tiny` base scores about 0.23 on the one shown in section 1, half
# its validation loss — the gap between what was seen and what generalises).

# %%
prompt = "The capital of France is"
p_ids = torch.tensor([tok.encode(prompt)])
with torch.no_grad():
    for name, m in [("fresh", fresh), (f"pretrained {PRESET}", model)]:
        probs = torch.softmax(m(p_ids)[0][0, -1], dim=-1)
        top = torch.topk(probs, 5)
        guesses = ", ".join(f"{tok.decode([i])!r} {p:.2f}" for p, i in zip(top.values.tolist(), top.indices.tolist()))
        print(f"{name:>16}: {prompt!r} → {guesses}")
held_out = pretraining_batches(tok, PRESET)  # the pretraining corpus's validation windows, never trained on
losses = {name: lm_val_loss(m, held_out) for name, m in [("fresh", fresh), ("pretrained", model)]}
for name, loss in losses.items():
    print(f"{name:>16}: loss on held-out pretraining text {loss:.3f}   (ln V = {math.log(V):.3f})")
report("held-out loss, fresh", losses["fresh"])
report(f"held-out loss, pretrained {PRESET}", losses["pretrained"])
claim("a fresh model's loss is within 0.1 of ln V (it spreads probability evenly)",
      abs(losses["fresh"] - math.log(V)) < 0.1)
claim("pretraining lowers the held-out loss", losses["pretrained"] < losses["fresh"] - 1)

# %% [markdown]
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 4–5 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | max \|head by hand − model\| | 3.0e-07 (every seed) |
# | parameters | 2,197,632 (every seed) |
# | held-out loss, fresh | 7.66 ± 0.01 (7.65 – 7.67) |
# | held-out loss, pretrained tiny | 0.507 (every seed) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/01_transformer.py` (each asks for one change, says what to
# expect, and solves it). More ideas to try on your own:
#
# 1. Change `LAYER` and `HEAD` in section 3 and find a head that mostly attends to the previous token, and one
#    that attends to the first token. Try a longer sentence.
# 2. Remove the division by $\sqrt{d_h}$ in `head_by_hand` (the check against the model will fail — by how much?)
#    and look at how peaked the heat-map becomes.
# 3. Delete the mask line in `head_by_hand`: which numbers change, and why would a model trained like that be
#    useless for generation?
# 4. Add up the closed form for a model with `bias=False` (`GPTConfig(bias=False)`) and check it against
#    `num_parameters()`.
# 5. Train the tokenizer of section 1 with `vocab_size=4096` on more documents: which whole words become single
#    tokens first, and how many parameters would $E_\text{tok}$ cost at $d = 192$?
