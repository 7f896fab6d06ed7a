# %% [markdown]
# # Lesson 06 — LoRA: why low rank, by hand, and what rank and α do
#
# Full fine-tuning changes every one of the base model's weights. LoRA (Hu et al., 2021, *LoRA: Low-Rank
# Adaptation of Large Language Models*) changes none of them: it freezes the base and learns, next to a few of its
# weight matrices, a *low-rank* update $\Delta W = s\,BA$ with a few thousand numbers. This lesson
#
# 1. looks at the update that **full** fine-tuning makes, $\Delta W = W_\text{ft} - W_0$, and finds that most of its
#    energy lies in a handful of directions — the observation that makes LoRA work;
# 2. builds LoRA on one layer **by hand** with `minift.peft.lora.LoRALinear`: the exact no-op at initialisation,
#    the zero gradient of $A$ on the first step, and the scale $\alpha/r$ against rsLoRA's $\alpha/\sqrt{r}$;
# 3. **sweeps rank and α** on the sentiment task, with a table and a plot;
# 4. **merges** the update into the base weights for inference at zero extra cost, and times both;
# 5. compares the size of the adapter file with the size of the model.
#
# Full mode fine-tunes the `tiny` base (pretrained and cached by lesson 02 or `minift warmup`), 3–4 minutes on
# 2 CPU cores. Workshop mode (`MINIFT_DEMO=1`) runs the same budget and a smaller sweep, about a minute and a
# half. Quick mode (`MINIFT_QUICK=1`, what the tests run) uses the small `quick` base and a few steps per run: a
# smoke test of the mechanics whose numbers mean nothing.

# %%
import atexit
import copy
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minift.base import base_dir, load_base, load_model_dir
from minift.data import load_task
from minift.finetune import FinetuneConfig, collate_classify, encode_labelled, finetune, load_finetuned
from minift.peft import merge, merge_and_unload, unmerge
from minift.peft.core import peft_modules
from minift.peft.lora import LoRALinear, lora_scale
from minift.tables import markdown_table
from minift.training import seed_everything
from minift.training.costs import path_bytes
from minift.workshop import claim, mode, pick, projector_style, report, seed, show_code

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
PRESET = "quick" if QUICK else "tiny"
# the training budget of every fine-tuning run in this lesson: 3 epochs of the 500 sentiment posts (96 steps of 16)
# in full and workshop mode; a handful of steps on 64 posts in quick mode. One validation at the
# end (eval_every larger than the run) keeps each run short; the model scored is the one at the last step.
BUDGET = pick(quick=dict(max_steps=4, n_train=64, n_eval=40), demo=dict(epochs=3), full=dict(epochs=3))
BUDGET.update(eval_every=10**6, seed=SEED)
# learning rates, fixed here so that this lesson's numbers do not move when minift's defaults are retuned
LR = {"full": 3e-4, "lora": 2e-3}
OUT = Path(tempfile.mkdtemp(prefix="minift-lesson06-"))  # every run of this lesson writes under here ...
atexit.register(shutil.rmtree, OUT, ignore_errors=True)  # ... removed when the script or the kernel ends
seed_everything(SEED)
projector_style()
torch.set_printoptions(precision=4, sci_mode=False)
print(f"mode: {MODE}; seed {SEED}; base preset: {PRESET}; budget per run: {BUDGET}; lr {LR}")

# %% [markdown]
# ## 1. Why low rank: the update full fine-tuning makes
#
# We fine-tune every weight of the base on the sentiment task (`minift.finetune.finetune` with method `"full"`:
# a new classification head on the last token, trained with AdamW) and then look at what changed. For one weight
# matrix $W_0 \in \mathbb{R}^{\text{out}\times\text{in}}$ the change is $\Delta W = W_\text{ft} - W_0$, and its
# singular value decomposition writes it as a sum of rank-one pieces, largest first:
#
# $$\Delta W = \sum_{i} \sigma_i\, u_i v_i^\top, \qquad \sigma_1 \ge \sigma_2 \ge \dots \ge 0,
#   \qquad \|\Delta W\|_F^2 = \sum_i \sigma_i^2 .$$
#
# The **energy** in the top $k$ directions, $E(k) = \sum_{i \le k}\sigma_i^2 / \sum_i \sigma_i^2$, says how much of
# the change a rank-$k$ matrix could capture (the best rank-$k$ approximation keeps exactly the top $k$ terms:
# Eckart–Young). For comparison we use a random Gaussian matrix of the same shape, whose energy is spread evenly
# over all directions.

# %%
full_dir = OUT / "full"
full = finetune(FinetuneConfig(base=PRESET, task="sentiment", method="full", lr=LR["full"], **BUDGET), full_dir,
                force=True, progress=False)
base, tok = load_base(PRESET, progress=False)
tuned, _ = load_model_dir(full_dir / "model")  # the fully fine-tuned GPT body (the head is in head.pt)
print(f"full fine-tuning: {full['trainable_params']:,} trainable parameters, test accuracy "
      f"{full['metrics']['test']['accuracy']:.3f}, {full['steps']} steps, {full['wall_seconds']:.0f} s")
print("baselines on the same test posts: " + ", ".join(f"{k} {v['accuracy']:.3f}"
                                                      for k, v in full["baselines"].items()))

L = base.config.n_layer
names = ["blocks.0.attn.q.weight", f"blocks.{L - 1}.attn.v.weight", f"blocks.{min(1, L - 1)}.mlp.fc.weight",
         f"blocks.{L - 1}.mlp.proj.weight"]
W0, Wft = dict(base.named_parameters()), dict(tuned.named_parameters())
torch.manual_seed(SEED)
spectra, rows = {}, []
for name in names:
    dW = (Wft[name] - W0[name]).detach()
    s = torch.linalg.svdvals(dW)
    s_rand = torch.linalg.svdvals(torch.randn_like(dW))
    energy = (s**2).cumsum(0) / (s**2).sum()
    energy_rand = (s_rand**2).cumsum(0) / (s_rand**2).sum()
    spectra[name] = (s, s_rand, energy, energy_rand)
    rows.append({"matrix": name.removesuffix(".weight"), "shape": "×".join(map(str, dW.shape)),
                 "‖ΔW‖/‖W₀‖": f"{(dW.norm() / W0[name].norm()).item():.3f}",
                 **{f"E({k})": f"{energy[k - 1].item():.2f} (rand {energy_rand[k - 1].item():.2f})"
                    for k in (1, 4, 8)},
                 "rand E(8) / (8/n)": f"{energy_rand[7].item() / (8 / len(s)):.1f}",
                 "rank for 90%": int((energy < 0.9).sum()) + 1})
print(markdown_table(rows))
report("E(8) of ΔW, lowest over the matrices", min(sp[2][7].item() for sp in spectra.values()))
report("E(8) of a random matrix, highest", max(sp[3][7].item() for sp in spectra.values()))
if not QUICK:
    claim("every ΔW holds more of its energy in 8 directions than a random matrix of its shape",
          all(sp[2][7] > sp[3][7] + 0.3 for sp in spectra.values()))

# %% [markdown]
# **Look at** two numbers per row. $\|\Delta W\|/\|W_0\|$: fine-tuning moved each matrix by a few percent of its
# size — a small change. $E(k)$: a handful of directions carry most of that change, where a random matrix of the
# same shape needs most of its directions. A random matrix's top directions are not empty either: its largest
# singular values are about twice the typical one (the Marchenko–Pastur law), so its top $k$ directions hold 3.5–4 ×
# $k/n$ of its energy for small $k$ (the column "rand E(8) / (8/n)"), still a small share. The plots show the whole
# spectra: the fine-tuning update's singular values fall off steeply after the first few, the random matrix's stay
# flat.
#
# That is the hypothesis of the LoRA paper (§4.1, and the analysis of §7): the change a task needs has a low
# *intrinsic rank* (Aghajanyan et al., 2020, found the same for whole models: a few hundred random directions
# suffice to fine-tune RoBERTa to 90% of full performance). So instead of learning $\Delta W$ with out × in free
# numbers, learn it as a product of two thin matrices.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
for name, (s, s_rand, energy, energy_rand) in spectra.items():
    short = name.removesuffix(".weight")
    line, = axes[0].semilogy(range(1, len(s) + 1), (s / s[0]).numpy(), label=short)
    axes[1].plot(range(1, len(s) + 1), energy.numpy(), color=line.get_color(), label=short)
    axes[1].plot(range(1, len(s) + 1), energy_rand.numpy(), color=line.get_color(), ls=":", lw=1)
axes[0].semilogy(range(1, len(s_rand) + 1), (s_rand / s_rand[0]).numpy(), "k:", label="random (last matrix)")
axes[0].set_xlim(0, 64)
axes[0].set_ylim(1e-3, 1.2)
axes[0].set_xlabel("index i")
axes[0].set_ylabel("σᵢ / σ₁ of ΔW")
axes[0].set_title("singular values of ΔW = W_ft − W₀")
axes[0].legend()
axes[1].axvline(8, color="grey", ls="--", lw=1)
axes[1].text(9, 0.05, "r = 8", color="grey")
axes[1].set_xscale("log")
axes[1].set_xlabel("k (top-k directions)")
axes[1].set_ylabel("energy E(k)")
axes[1].set_title("cumulative energy (dotted: random matrix of the same shape)")
plt.show()

# %% [markdown]
# ## 2. LoRA on one layer, by hand
#
# For a frozen linear layer $y = xW_0^\top + b$ LoRA adds a branch through a bottleneck of width $r$:
#
# $$y = x W_0^\top + b + s\,(x A^\top) B^\top, \qquad A \in \mathbb{R}^{r\times \text{in}},\;
#   B \in \mathbb{R}^{\text{out}\times r}, \qquad \Delta W = s\,BA \;(\text{rank} \le r).$$
#
# Shapes for a batch $x$ of shape (B, T, in): $xA^\top$ is (B, T, r) — the bottleneck — and $(xA^\top)B^\top$ is
# (B, T, out). Trainable numbers: $r(\text{in} + \text{out})$ instead of in × out.
#
# **Initialisation** (loralib and huggingface/peft): $A$ random (Kaiming-uniform, the `nn.Linear` default), $B = 0$.
# So $\Delta W = 0$ and the layer starts as *exactly* the pretrained layer — not approximately: the branch adds
# $+0.0$ to every output. A side effect: $\partial L/\partial A = s\,B^\top(\dots) = 0$, so on the very first step
# only $B$ learns; once $B \ne 0$, $A$ gets gradients too.
#
# `LoRALinear` wraps an `nn.Linear`; below we wrap the query projection of the base's first block. Its forward
# pass, as the library writes it (printed from the source, so it cannot drift from what runs):

# %%
show_code(LoRALinear.forward)

# %%
lin = copy.deepcopy(base.blocks[0].attn.q).requires_grad_(False)  # a frozen d → d layer of the pretrained base
torch.manual_seed(0)
layer = LoRALinear(lin, r=4, alpha=8)
d_in, d_out = lin.in_features, lin.out_features
print(layer)
print(f"W₀ {tuple(lin.weight.shape)} frozen: {d_in * d_out:,} numbers;  A {tuple(layer.lora_A.shape)}, "
      f"B {tuple(layer.lora_B.shape)}: {layer.r * (d_in + d_out):,} trainable numbers")

x = torch.randn(2, 5, d_in)  # (B, T, in)
y = layer(x)
print("B = 0 ⇒ output identical to the base layer:", torch.equal(y, lin(x)))
claim("B = 0: the wrapped layer is exactly the pretrained one", torch.equal(y, lin(x)))
y.pow(2).sum().backward()  # any loss
print(f"first backward: max |∂L/∂A| = {layer.lora_A.grad.abs().max().item():.1f}, "
      f"‖∂L/∂B‖ = {layer.lora_B.grad.norm().item():.3f}")

# %% [markdown]
# Now give $B$ some values, as training would, and check the forward against the formula written out with the
# merged matrix $W_0 + s\,BA$. The update has rank $r$ however large the layer is.

# %%
with torch.no_grad():
    layer.lora_B.normal_(std=0.05)
    by_hand = x @ (lin.weight + layer.scale * layer.lora_B @ layer.lora_A).T + lin.bias
    print(f"s = α/r = {layer.alpha}/{layer.r} = {layer.scale}")
    print("max |LoRALinear − x(W₀ + sBA)ᵀ − b| =", (layer(x) - by_hand).abs().max().item())
    print("rank of ΔW = sBA:", torch.linalg.matrix_rank(layer.delta_weight()).item(), "of a possible", d_in)
    claim("LoRALinear = x(W₀ + sBA)ᵀ + b", torch.allclose(layer(x), by_hand, atol=1e-5))
    claim("ΔW = sBA has rank r", torch.linalg.matrix_rank(layer.delta_weight()).item() == layer.r)

# %% [markdown]
# ### The scale: α/r or α/√r?
#
# The LoRA paper multiplies the branch by $s = \alpha/r$ so that changing $r$ does not require retuning the learning
# rate "much". rsLoRA (Kalajdzievski, 2023) points out what happens as $r$ grows: $BA = \sum_{j=1}^r b_j a_j^\top$ is
# a sum of $r$ rank-one terms, and if the entries of $A$ and $B$ have a fixed size (Adam moves every entry by about
# the learning rate per step, whatever $r$ is) the terms add up like a random walk, $\|BA\| \propto \sqrt{r}$. Then
#
# $$\|\Delta W\| = s\,\|BA\| \propto \frac{\alpha}{r}\sqrt{r} = \frac{\alpha}{\sqrt r} \to 0
#   \qquad\text{while}\qquad \frac{\alpha}{\sqrt r}\sqrt r = \alpha \text{ stays put (rsLoRA).}$$
#
# So with $\alpha/r$ a larger rank means a *smaller* update and the extra directions are wasted; rsLoRA's
# $s = \alpha/\sqrt{r}$ keeps the update's size independent of $r$. Below: $A$ at its initialisation and $B$ with
# entries of a fixed size, for growing $r$ (8 random draws each).

# %%
ranks = [1, 2, 4, 8, 16, 32, 64, 128]
alpha = 16
norms = {"α/r (LoRA)": [], "α/√r (rsLoRA)": []}
for r in ranks:
    draws = []
    for draw in range(8):
        torch.manual_seed(draw)
        probe = LoRALinear(lin, r=r, alpha=alpha)
        with torch.no_grad():
            probe.lora_B.normal_(std=0.01)  # entries of a fixed size, as after some training
        draws.append((probe.lora_B @ probe.lora_A).norm().item())
    bba = sum(draws) / len(draws)
    norms["α/r (LoRA)"].append(lora_scale(alpha, r) * bba)
    norms["α/√r (rsLoRA)"].append(lora_scale(alpha, r, rslora=True) * bba)
print("r:            ", ranks)
for k, v in norms.items():
    print(f"{k:<15}‖ΔW‖_F:", [f"{n:.3f}" for n in v])
fig, ax = plt.subplots(figsize=(5.5, 3.3))
for k, v in norms.items():
    ax.loglog(ranks, v, "o-", label=k, base=2)
ax.set_xlabel("rank r")
ax.set_ylabel("‖s·BA‖_F")
ax.set_title(f"update size vs rank, α = {alpha}")
ax.legend()
plt.show()

# %% [markdown]
# ## 3. Rank and α on a real task
#
# Time to train. `finetune` with method `"lora"` freezes the tiny base, wraps the query and value projections of
# every block (`targets=["attn.q", "attn.v"]`, the paper's choice), attaches a new classification head (trainable,
# outside the adapter) and trains only $A$, $B$ and the head. Every run below has the same budget (3 epochs,
# learning rate 2e-3); only the LoRA options change:
#
# * **rank** $r \in \{1, 4, 16, 64\}$ at $\alpha = 16$, once with $s = \alpha/r$ and once with rsLoRA's
#   $\alpha/\sqrt{r}$ (at $r = 1$ they coincide);
# * **α** $\in \{1, 4, 16, 64\}$ at $r = 8$.
#
# Each run also reports **forgetting**: how much the model's loss on held-out *pretraining* text rises (Δ loss, in
# nats per token) with the adapter switched on — the price of specialising — and how far the adapted weights
# moved, $\|\Delta W\|_F = (\sum \|s\,BA\|_F^2)^{1/2}$ over all adapted matrices. Trainable parameters per run are
# $4Lrd$ for the adapters ($L$ blocks, two $d\times d$ matrices each, $r(d+d)$ per matrix) plus $2d + 2$ for the head.

# %%
def lora_run(r: int, alpha: float, rslora: bool = False) -> dict:
    """One LoRA fine-tuning run on sentiment; returns a row for the table."""
    name = f"lora_r{r}_a{alpha:g}" + ("_rs" if rslora else "")
    res = finetune(FinetuneConfig(base=PRESET, task="sentiment", method="lora",
                                  method_options=dict(r=r, alpha=alpha, rslora=rslora), lr=LR["lora"], **BUDGET),
                   OUT / name, force=True, progress=False)
    model, _, _ = load_finetuned(OUT / name)  # base + the saved adapter
    moved = sum(m.delta_weight().pow(2).sum() for _, m in peft_modules(model)).sqrt().item()
    return {"run": name, "r": r, "α": alpha, "scaling": "α/√r" if rslora else "α/r",
            "s": round(lora_scale(alpha, r, rslora), 3), "trainable": res["trainable_params"],
            "trainable %": round(res["trainable_pct"], 2), "adapter KB": round(res["adapter_bytes"] / 1024, 1),
            "accuracy": round(res["metrics"]["test"]["accuracy"], 3),
            "‖ΔW‖_F": round(moved, 2), "forgetting Δloss": round(res["forgetting"]["delta_loss"], 3),
            "seconds": round(res["wall_seconds"], 1)}


SWEEP_RANKS = pick(quick=[1, 4], demo=[1, 8, 64], full=[1, 4, 16, 64])
SWEEP_ALPHAS = pick(quick=[4, 16], demo=[1, 64], full=[1, 4, 16, 64])
t0 = time.perf_counter()
rank_rows = [lora_run(r, 16) for r in SWEEP_RANKS] + [lora_run(r, 16, rslora=True) for r in SWEEP_RANKS if r > 1]
alpha_rows = [lora_run(8, a) for a in SWEEP_ALPHAS]
print(f"{len(rank_rows) + len(alpha_rows)} runs in {time.perf_counter() - t0:.0f} s\n")
print(markdown_table(rank_rows + alpha_rows))
by_name = {row["run"]: row for row in rank_rows + alpha_rows}
report("full fine-tuning: test accuracy", full["metrics"]["test"]["accuracy"])
report("full fine-tuning: forgetting Δloss", full["forgetting"]["delta_loss"])
if 64 in SWEEP_RANKS:
    report("LoRA r 64, α/r: test accuracy", by_name["lora_r64_a16"]["accuracy"])
    report("LoRA r 64, α/√r: test accuracy", by_name["lora_r64_a16_rs"]["accuracy"])
print(f"\nfull fine-tuning, same budget: accuracy {full['metrics']['test']['accuracy']:.3f}, forgetting Δloss "
      f"{full['forgetting']['delta_loss']:.3f}, {full['trainable_params']:,} trainable parameters")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
full_acc = full["metrics"]["test"]["accuracy"]
bow = full["baselines"]["bow_logreg_1gram"]["accuracy"]
for scaling, marker in [("α/r", "o-"), ("α/√r", "s--")]:
    pts = sorted((row["r"], row["accuracy"]) for row in rank_rows if row["scaling"] == scaling or row["r"] == 1)
    axes[0].plot(*zip(*pts), marker, label=f"s = {scaling}")
axes[0].set_xscale("log", base=2)
axes[0].set_xlabel("rank r (α = 16)")
axes[1].plot([row["α"] for row in alpha_rows], [row["accuracy"] for row in alpha_rows], "o-", color="tab:green",
             label="r = 8, s = α/r")
axes[1].set_xscale("log", base=2)
axes[1].set_xlabel("α (r = 8)")
for ax in axes[:2]:
    ax.axhline(full_acc, color="black", ls="--", lw=1, label="full fine-tuning")
    ax.axhline(bow, color="grey", ls=":", lw=1, label="bag-of-words baseline")
    ax.set_ylabel("test accuracy")
    ax.legend()
for row in rank_rows + alpha_rows:
    axes[2].scatter(row["‖ΔW‖_F"], row["forgetting Δloss"], color="tab:blue" if row in rank_rows else "tab:green")
    axes[2].annotate(f"r{row['r']} α{row['α']}" + (" rs" if row["scaling"] == "α/√r" else ""),
                     (row["‖ΔW‖_F"], row["forgetting Δloss"]), fontsize=11, xytext=(3, 3), textcoords="offset points")
axes[2].axhline(full["forgetting"]["delta_loss"], color="black", ls="--", lw=1, label="full fine-tuning")
axes[2].set_xlabel("‖ΔW‖_F of the trained adapter")
axes[2].set_ylabel("forgetting: Δ loss on pretraining text")
axes[2].legend()
plt.show()

# %% [markdown]
# **Look at** the three panels.
#
# * **Rank** (left): with $s = \alpha/r$, a larger rank does not buy accuracy — each extra direction comes with a
#   smaller scale (section 2), and at the largest rank the update stays too small to learn the task in this budget.
#   With rsLoRA's $s = \alpha/\sqrt{r}$ the update keeps its size and the larger ranks can use their extra
#   directions. Note also how far $r = 1$ gets, with a fraction of a percent of the parameters: section 1's
#   observation at work.
# * **α** (middle): at a fixed rank, α behaves like a learning rate for the update: $s$ multiplies $\Delta W$, and
#   Adam's steps on $A$ and $B$ do not grow to compensate, so with a small α the model barely leaves the base
#   within the budget.
# * **Forgetting** (right), against how far the adapted weights moved: the further they moved, the more the loss
#   on ordinary text rose. The rank-1 update is large but confined to one direction per matrix, and disturbs less
#   for its size. The most accurate runs here are also among the most forgetful: a trade-off to choose
#   deliberately, not a free lunch.
#
# With a budget this small and 200 test examples, differences of a point or two are noise: to trust one, repeat
# the run with other seeds (`FinetuneConfig(seed=...)`).
#
# ## 4. Merging: zero extra latency at inference
#
# Because the update is linear, it can be folded into the weight once training is over:
#
# $$W \leftarrow W_0 + s\,BA \quad(\text{merge}), \qquad W \leftarrow W - s\,BA \quad(\text{unmerge}).$$
#
# After the merge the layer is a plain `nn.Linear` again: same shape, same speed as the base. (Adapters with a
# non-linearity, lesson 07, and ReFT, lesson 08, cannot do this.) `load_finetuned` rebuilds the $r = 8$,
# $\alpha = 16$ run from the base plus its adapter file; `merge` folds every LoRA layer in, `merge_and_unload`
# additionally removes the wrappers. In floating point $(W_0 + \Delta) - \Delta$ is not bit-for-bit $W_0$, so the
# checks use tolerances.

# %%
run8 = OUT / "lora_r8_a16"
model, tok, _ = load_finetuned(run8)
test = load_task("sentiment", "test")[: 40 if QUICK else 200]
enc = encode_labelled(tok, test, model.labels, model.config.block_size)
ids, mask, gold = collate_classify(enc, tok.pad_id)
w_before = model.body.blocks[0].attn.q.base.weight.detach().clone()
with torch.no_grad():
    unmerged = model(ids, mask)
    merge(model)
    merged = model(ids, mask)
    unmerge(model)
    again = model(ids, mask)
print(f"logits of {len(test)} posts, max |merged − unmerged| = {(merged - unmerged).abs().max().item():.2e}")
w_after = model.body.blocks[0].attn.q.base.weight
print(f"after unmerge: max |W − W₀| = {(w_after - w_before).abs().max().item():.2e}, "
      f"max |logits − unmerged| = {(again - unmerged).abs().max().item():.2e}")
print("same predictions merged and unmerged:", torch.equal(merged.argmax(-1), unmerged.argmax(-1)))
report("max |merged − unmerged| logits", (merged - unmerged).abs().max().item(), fmt=".1e")
claim("merged logits equal unmerged ones, and unmerging restores W₀",
      torch.allclose(merged, unmerged, atol=1e-4) and torch.allclose(again, unmerged, atol=1e-5)
      and torch.allclose(w_after, w_before, atol=1e-6))

# %% [markdown]
# Now time a forward pass on a single post (batch 1, the latency a user waits for) and on a batch of 32 posts, three
# ways: with the LoRA branch, merged (the wrappers are still there but skip the branch), and merged *and unloaded*
# into a plain GPT.
# Each number is the fastest of many repetitions (the least disturbed by anything else running on the machine). On a
# model this small, the branch's extra matrix products and Python calls are a visible share of the time.

# %%
def best_ms(variants: dict, ids, mask, n: int) -> dict:
    """Fastest of n forward passes (ms) of each model; interleaved, so a busy moment hurts every variant alike."""
    best = dict.fromkeys(variants, float("inf"))
    with torch.no_grad():
        for _ in range(n):
            for name, m in variants.items():
                t = time.perf_counter()
                m(ids, mask)
                best[name] = min(best[name], time.perf_counter() - t)
    return {name: 1000 * t for name, t in best.items()}


merged_model = merge(load_finetuned(run8)[0])
plain_model = load_finetuned(run8)[0]
merge_and_unload(plain_model.body)  # merge, then swap every LoRALinear for its (updated) nn.Linear
variants = {"LoRA branch (unmerged)": model, "merged": merged_model, "merged and unloaded": plain_model}
print(f"PEFT modules left after merge_and_unload: {len(list(peft_modules(plain_model)))}; the body has "
      f"{plain_model.body.num_parameters():,} parameters, exactly the base's {base.num_parameters():,}")
n_one = int(mask[0].sum())
batch_32 = (ids[:32], mask[:32])
one = best_ms(variants, ids[:1, :n_one], mask[:1, :n_one], 20 if QUICK else 200)
many = best_ms(variants, *batch_32, 5 if QUICK else 50)
print(f"{'':<24}{'1 post (' + str(n_one) + ' tokens)':>22}{'32 posts (' + str(ids.size(1)) + ' tokens each)':>30}")
for name in variants:
    print(f"{name:<24}{one[name]:>19.2f} ms{many[name]:>27.2f} ms")

# %% [markdown]
# **Look at** the three rows. Merged *and unloaded* is the base architecture with different numbers in eight
# matrices, so it costs exactly what the base costs; merged but still wrapped skips the branch and costs the same up
# to one extra Python call per wrapped layer. Unmerged pays for the branch on every token: two extra matrix products
# per adapted layer, plus casts. Its share is largest for a single short input, where per-operation overhead
# dominates, and shrinks as the batch grows and the big matrix products take over. LoRA's Table 1 measures the same
# kind of cost for adapters that *cannot* be merged (+20–30% latency at batch 1 on GPT-2 medium). The flip side: a
# merged model serves one task, while an unmerged base in memory can serve many adapters, switched per request.
#
# ## 5. The adapter file against the model
#
# The run directory of a LoRA run holds `adapter.pt`: only $A$, $B$ (and the classification head), the method's
# config, and a description of the base it belongs to — loading it into another base is refused. The base itself
# is stored once. A full fine-tuning run must store a whole new model.

# %%
model_bytes = path_bytes(base_dir(PRESET) / "model.pt")
full_bytes = path_bytes(full_dir / "model") + path_bytes(full_dir / "head.pt")
print(f"base model weights (model.pt):           {model_bytes / 1024:9.1f} KB")
print(f"full fine-tuning run (model/ + head.pt): {full_bytes / 1024:9.1f} KB")
d = base.config.d_model
for row in rank_rows:
    if row["scaling"] == "α/r":
        closed = 4 * L * row["r"] * d + 2 * d + 2
        share = 100 * row["adapter KB"] * 1024 / model_bytes
        print(f"LoRA r = {row['r']:>2}: adapter.pt {row['adapter KB']:8.1f} KB = {share:5.2f}% of the model; "
              f"{row['trainable']:,} numbers (4Lrd + 2d + 2 = {closed:,})")
fig, ax = plt.subplots(figsize=(5.5, 3.3))
pts = [(row["r"], row["adapter KB"]) for row in rank_rows if row["scaling"] == "α/r"]
ax.loglog(*zip(*pts), "o-", base=2, label="adapter.pt (LoRA on q, v)")
ax.axhline(model_bytes / 1024, color="black", ls="--", label="the base model (model.pt)")
ax.set_xlabel("rank r")
ax.set_ylabel("KB on disk")
ax.legend()
plt.show()

# %% [markdown]
# The adapter grows linearly with $r$ (4 bytes per number, plus a few KB of names and config), and
# even at $r = 64$ it stays a fraction of the model. The share is not a constant of LoRA: with $4Lrd$ adapter
# numbers against about $12Ld^2$ in the blocks it is about $r/(3d)$, so it *shrinks* as models get wider. Here
# ($d$ = 192) $r = 8$ is 1.4 % of the blocks; a 7-billion-parameter Llama ($d$ = 4096, 32 blocks) gets
# $4 \cdot 32 \cdot 8 \cdot 4096 \approx$ 4.2 M numbers at $r = 8$, 0.07 %: a file of about 8 MB in 16-bit
# floats against a 14 GB copy per task. The optimizer state shrinks in the same way: AdamW keeps two numbers per
# *trainable* parameter.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 46–52 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | E(8) of ΔW, lowest over the matrices | 0.721 ± 0.020 (0.705 – 0.746) |
# | E(8) of a random matrix, highest | 0.147 ± 0.000 (0.147 – 0.148) |
# | full fine-tuning: test accuracy | 0.855 ± 0.020 (0.840 – 0.880) |
# | full fine-tuning: forgetting Δloss | 0.052 ± 0.005 (0.047 – 0.058) |
# | LoRA r 64, α/r: test accuracy | 0.660 ± 0.075 (0.585 – 0.735) |
# | LoRA r 64, α/√r: test accuracy | 0.855 ± 0.047 (0.800 – 0.895) |
# | max \|merged − unmerged\| logits | 1.7e-06 (1.2e-06–2.2e-06) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/06_lora.py` (each asks for one change, says what to expect,
# and solves it). More ideas to try on your own:
#
# 1. Target every linear layer: `method_options=dict(r=8, alpha=16, targets="all-linear")`. The count becomes
#    $18Lrd$; does accuracy move? Which layers do you think matter most (try `layers=[L - 1]` only)?
# 2. Re-run the rank sweep with `lr=1e-3` and with more epochs: does the flat rank curve survive? Repeat a row
#    with `seed=1` and `seed=2` to see how large the noise is.
# 3. Try DoRA (`method="dora"`), which learns a magnitude per output row on top of LoRA's direction. How many more
#    parameters, and does it change the forgetting?
# 4. In section 1, compute $\Delta W$'s singular values for the trained LoRA run (merge it, subtract $W_0$): the
#    rank is at most $r$ by construction. Do its top directions align with those of full fine-tuning
#    (compare $|u_1^\top u_1'|$)?
# 5. LoRA paper §7.3: project $W_0$ onto $\Delta W$'s top-$r$ singular directions, $\|U_r^\top W_0 V_r\|_F$, and
#    compare with random directions. Does fine-tuning amplify directions that the pretrained weight already uses,
#    or new ones?
