# %% [markdown]
# # Lesson 07 — Adapters, prefix and prompt tuning, (IA)³: where else to put a few trainable numbers
#
# LoRA (lesson 06) adds a low-rank change to existing weight matrices. It is one of several ways to fine-tune a
# frozen model with a small number of new parameters; they differ in *where* the new numbers enter the network:
#
# | method | paper | what it learns | where |
# |---|---|---|---|
# | Houlsby adapter | Houlsby et al., 2019 | a small MLP with a skip connection | on the attention and MLP outputs |
# | Pfeiffer adapter | Pfeiffer et al., 2021 | the same, once per block | on the stream after the MLP |
# | prefix tuning | Li & Liang, 2021 | $P$ extra key/value rows per layer | inside every attention |
# | prompt tuning | Lester et al., 2021 | $P$ extra input vectors | before the token embeddings |
# | (IA)³ | Liu et al., 2022 (T-Few) | one scaling vector per activation | keys, values, MLP activation |
#
# This lesson draws where each one sits in a transformer block, checks which of them start as an exact no-op, and
# then trains all of them on the same task with the same budget: trainable parameters, accuracy, forgetting and
# wall time side by side, with LoRA and full fine-tuning as reference points.
#
# Full mode trains seven methods on the `tiny` base of lesson 02 for 8 epochs each (a few minutes on 2 CPU cores);
# workshop mode (`MINIFT_DEMO=1`) four of them — LoRA, Houlsby adapters, (IA)³, prompt tuning — for 5 epochs, under
# a minute; quick mode (`MINIFT_QUICK=1`) the `quick` base and a few steps per run, a smoke test.

# %%
import atexit
import copy
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minift.base import load_base
from minift.finetune import FinetuneConfig, finetune
from minift.peft import apply_method, count_parameters, disabled, merge, method_config, unmerge
from minift.peft.adapters import adapter_parameter_count
from minift.peft.core import peft_modules
from minift.plots import peft_block_map
from minift.tables import markdown_table
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
PRESET = "quick" if QUICK else "tiny"
BUDGET = pick(quick=dict(max_steps=4, n_train=64, n_eval=40), demo=dict(epochs=5), full=dict(epochs=8))
BUDGET.update(eval_every=10**6, seed=SEED)  # one validation, at the end: the model scored is the last step's
OUT = Path(tempfile.mkdtemp(prefix="minift-lesson07-"))  # every run writes under here ...
atexit.register(shutil.rmtree, OUT, ignore_errors=True)  # ... removed when the script or the kernel ends
seed_everything(SEED)
projector_style()
base, tok = load_base(PRESET, progress=False)
base.eval()
cfg = base.config
L, d, H = cfg.n_layer, cfg.d_model, cfg.n_head
print(f"mode: {MODE}; seed {SEED}; base {PRESET}: L={L} blocks, d={d}, H={H} heads, "
      f"{base.num_parameters():,} parameters; budget per run: {BUDGET}")

# %% [markdown]
# ## 1. The map
#
# minift's block is pre-LayerNorm: $x \leftarrow x + \text{Attn}(\text{LN}_1 x)$, then
# $x \leftarrow x + \text{MLP}(\text{LN}_2 x)$, with the MLP $W_\text{proj}\,\text{GELU}(W_\text{fc}\,h)$. The
# residual stream (the thick line) carries the token vectors from block to block; each sublayer reads a normalised
# copy and adds its result back. The coloured boxes are what each method adds. The grey dashed outlines mark
# LoRA's default targets, $W_q$ and $W_v$, for comparison.

# %%
fig, ax = plt.subplots(figsize=(16, 6.5))
peft_block_map(ax)  # minift/plots.py draws it: boxes sized to their text, 12-point labels
plt.show()

# %% [markdown]
# **Read the drawing** from left to right, following one token's vector.
#
# * **Prompt tuning** acts once, before the first block: $P$ learned vectors are put in front of the token
#   embeddings, as if the user had typed $P$ extra "words" that no vocabulary contains. They take positions
#   $0\dots P-1$ and so cost $P$ positions of the context.
# * **Prefix tuning** reaches every layer: each attention gets $P$ learned key and value rows that every query can
#   attend to, $K' = [K_p; K]$, $V' = [V_p; V]$. No extra *queries*: the output still has $T$ positions.
# * **(IA)³** rescales what is already there: keys and values get a learned vector
#   ($\text{softmax}(Q(l_k \odot K)^\top/\sqrt{d_h})(l_v \odot V)$), and so does the MLP's inner activation
#   ($W_\text{proj}(l_\text{ff} \odot \text{GELU}(W_\text{fc} h))$). $6d$ numbers per block.
# * **Houlsby adapters** sit on each sublayer's *output*, before it is added to the stream; **Pfeiffer's** single
#   adapter sits on the stream itself, after the MLP's add. Each is a bottleneck MLP with a skip connection,
#
# $$A(z) = z + W_\text{up}\,\sigma(W_\text{down} z + b_\text{down}) + b_\text{up}, \qquad
#   W_\text{down} \in \mathbb{R}^{m\times d},\; W_\text{up} \in \mathbb{R}^{d\times m},\; m = d / 16 .$$
#
# | method | trainable numbers | exact no-op at init? | mergeable into the weights? |
# |---|---|---|---|
# | Houlsby | $2L(2md + m + d)$ | yes, with $W_\text{up} = 0, b = 0$ (minift's default) | no: $\sigma$ is non-linear |
# | Pfeiffer | $L(2md + m + d)$ | yes, same | no |
# | prefix | $2LPd$ | no: the new rows change every attention | no: extra attention slots |
# | prompt | $Pd$ | no: the new vectors are new input | no: extra positions |
# | (IA)³ | $6Ld$ | yes: $l = 1$ | yes: $W_k \leftarrow \text{diag}(l_k)W_k$, … |
#
# ## 2. The no-op at initialisation, checked
#
# A method that starts *exactly* at the base model is a safe start: the first gradient step improves a model that
# already works, instead of first repairing damage done by random new parameters. We apply each method to a copy
# of the base and compare the logits on a real post with the base's. `disabled(model)` switches a method off; every
# method must then give the base model back, bit for bit.

# %%
text = "Although the hotel was noisy, the people were friendly."
ids = torch.tensor([tok.encode(text)])
with torch.no_grad():
    reference, _ = base(ids)
m_bottleneck = d // 16
closed_forms = {"adapter-houlsby": adapter_parameter_count(d, m_bottleneck, L, 2),
                "adapter-pfeiffer": adapter_parameter_count(d, m_bottleneck, L, 1),
                "prefix": 2 * L * 10 * d, "prompt": 10 * d, "ia3": 6 * L * d}


def with_method(name: str, **options):
    """A copy of the base with one method applied (the base itself stays untouched)."""
    torch.manual_seed(0)
    model = apply_method(copy.deepcopy(base), method_config(name, **options))
    return model.eval()


rows = []
for name, options in [("adapter-houlsby", {}), ("adapter-houlsby", {"zero_init": False}),
                      ("adapter-pfeiffer", {}), ("ia3", {}), ("prefix", {}), ("prefix", {"init": "vocab"}),
                      ("prompt", {})]:
    model = with_method(name, **options)
    with torch.no_grad():
        logits, _ = model(ids)
        with disabled(model):
            off, _ = model(ids)
    rows.append({"method": name, "options": options or "defaults",
                 "trainable": count_parameters(model)["trainable"], "closed form": closed_forms[name],
                 "max |Δ logits| at init": f"{(logits - reference).abs().max().item():.2e}",
                 "identical to base": torch.equal(logits, reference), "disabled == base": torch.equal(off, reference)})
print(f"post: {text!r} ({ids.size(1)} tokens); prefix and prompt tuning with P = 10 virtual tokens")
print(markdown_table(rows))

# %% [markdown]
# **Look at** the "identical to base" column: the zero-initialised adapters and (IA)³ are bit-identical (an exact
# $+0$ or $\times 1$), Houlsby's original initialisation (both matrices small and random, std $10^{-2}$) is only close,
# and prefix and prompt tuning change the output from the first forward: there is no setting of their new
# parameters that adds nothing, because every extra attention slot or input position takes a share of the softmax.
# That is why prefix tuning's `init="vocab"` starts from the base model's own keys and values of real tokens, and
# prompt tuning from real token embeddings: a start the model already "understands". The counts match the closed
# forms exactly.
#
# For prompt tuning the no-op has a precise counterpart: a soft prompt initialised with the embeddings of a text
# **is** that text typed in front of the input. The logits on the input's positions must equal those of the base
# model reading the hard prompt followed by the input.

# %%
instruction = "Is this post positive or negative?"
hard = tok.encode(instruction)
# with_tokenizer turns init_text into the token ids the prompt is initialised from
prompt_cfg = method_config("prompt", n_virtual=len(hard), init="text", init_text=instruction).with_tokenizer(tok)
soft = apply_method(copy.deepcopy(base), prompt_cfg).eval()
with torch.no_grad():
    logits_soft, _ = soft(ids)  # (1, T, V): logits for the input's positions only
    logits_hard, _ = base(torch.tensor([hard + ids[0].tolist()]))  # (1, P + T, V)
print(f"soft prompt of P = {len(hard)} vectors = embeddings of {instruction!r}")
print("logits on the input positions: soft", tuple(logits_soft.shape), "vs hard prompt", tuple(logits_hard.shape),
      f"→ max |difference| = {(logits_soft - logits_hard[:, len(hard):]).abs().max().item():.2e}")
claim("a soft prompt initialised from text = that text typed as a hard prompt",
      torch.allclose(logits_soft, logits_hard[:, len(hard):], atol=1e-5))

# %% [markdown]
# (IA)³, like LoRA, can be merged: scaling a linear layer's output by $l$ is the same as scaling the rows of its
# weight and bias, $\text{diag}(l)(xW^\top + b) = x(\text{diag}(l)W)^\top + \text{diag}(l)b$, and scaling its input
# scales its columns. We give the vectors random values and check that merging changes nothing.

# %%
ia3 = with_method("ia3")
with torch.no_grad():
    for _, mod in peft_modules(ia3):
        mod.ia3_vector.uniform_(0.5, 1.5)
    scaled, _ = ia3(ids)
    merge(ia3)
    merged, _ = ia3(ids)
    unmerge(ia3)
print(f"(IA)³ with random scales: max |merged − unmerged| = {(merged - scaled).abs().max().item():.2e}; "
      f"differs from the base by {(scaled - reference).abs().max().item():.2f}")
claim("(IA)³ merged = unmerged, and its scales do change the model",
      torch.allclose(merged, scaled, atol=1e-4) and not torch.allclose(scaled, reference, atol=1e-2))

# %% [markdown]
# ## 3. Side by side on one task
#
# Now each method is trained on the sentiment task (500 posts, positive or negative, where the deciding clause is
# the one after "but" or the one *not* introduced by "although") with the same budget: 8 epochs, batch 16, a new
# classification head on the last token, and each method's own learning rate (the `lr` column: methods with fewer
# trainable numbers get larger steps; each method's `default_lr` when this lesson was written). Prefix tuning starts
# from real keys and values (`init="vocab"`). LoRA ($r = 8$, $\alpha = 16$) and full fine-tuning run with the same
# budget as references.

# %%
RUNS = [("full", {}, 3e-4), ("lora", {}, 2e-3), ("adapter-houlsby", {}, 3e-3), ("adapter-pfeiffer", {}, 3e-3),
        ("ia3", {}, 3e-2), ("prefix", {"init": "vocab"}, 1e-2), ("prompt", {}, 1e-1)]
if MODE == "demo":  # workshop: four methods, one of each kind, 5 epochs
    RUNS = [r for r in RUNS if r[0] in ("lora", "adapter-houlsby", "ia3", "prompt")]
results = []
t0 = time.perf_counter()
for name, options, lr in RUNS:
    res = finetune(FinetuneConfig(base=PRESET, task="sentiment", method=name, method_options=options, lr=lr,
                                  **BUDGET), OUT / name, force=True, progress=False)
    results.append({"method": name, "lr": res["lr"], "trainable": res["trainable_params"],
                    "trainable %": round(res["trainable_pct"], 2),
                    "file KB": round((res["adapter_bytes"] or res["weights_bytes"]) / 1024, 1),
                    "mergeable": res["mergeable"], "accuracy": round(res["metrics"]["test"]["accuracy"], 3),
                    "forgetting Δloss": round(res["forgetting"]["delta_loss"], 3),
                    "train s": round(res["train_seconds"], 1)})
print(f"{len(RUNS)} runs in {time.perf_counter() - t0:.0f} s\n")
print(markdown_table(results))
for r in results:
    report(f"{r['method']}: test accuracy", r["accuracy"])
acc = {r["method"]: r["accuracy"] for r in results}
if not QUICK:
    claim("methods that change every block (LoRA, adapters, (IA)³) beat prompt tuning at this budget",
          min(acc[m] for m in ("lora", "adapter-houlsby", "ia3")) > acc["prompt"])
baselines = res["baselines"]
print("\nbaselines: " + ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in baselines.items()))

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
for r in results:
    axes[0].scatter(r["trainable"], r["accuracy"], s=40)
    axes[0].annotate(r["method"], (r["trainable"], r["accuracy"]), fontsize=11, xytext=(4, 4),
                     textcoords="offset points")
    axes[1].barh(r["method"], r["forgetting Δloss"])
for k, v in baselines.items():
    axes[0].axhline(v["accuracy"], color="grey", ls=":" if k == "majority" else "--", lw=1, label=k)
axes[0].set_xscale("log")
axes[0].set_xlabel("trainable parameters (log scale; includes the classification head)")
axes[0].set_ylabel("test accuracy")
axes[0].legend()
axes[1].set_xlabel("forgetting: Δ loss on held-out pretraining text (nats/token)")
axes[1].invert_yaxis()
plt.show()

# %% [markdown]
# **Look at** where each method lands, and remember the scale: 200 test posts, so one post is half a point, and a
# single seed.
#
# * The two baselines bracket the task: the **majority** class is the floor, and the **bag-of-words** regression
#   sees the words but not their order, so it cannot tell which clause decides. A method below bag-of-words has
#   not yet learned to read the construction.
# * **Trainable parameters** span three orders of magnitude, from prompt tuning's $Pd$ to full fine-tuning's
#   whole model, and accuracy does not follow the count: *where* the numbers sit matters more than how many there
#   are. (IA)³ with a few thousand scales does about as well as adapters with ten times more numbers. Methods that
#   change the computation inside every block (full, LoRA, adapters, (IA)³) learn the task within the budget;
#   methods that only add context (prefix, prompt) must steer a frozen model through attention alone, which is
#   known to need many more steps and to work better at large model scale (Lester et al. found prompt tuning
#   matching full fine-tuning only for models of billions of parameters).
# * **Forgetting** is measured with the method switched on: a method that edits every token's processing can
#   disturb ordinary text. A soft prompt or a prefix that is always present changes every prediction the model
#   makes, which is why they can show a large Δ loss even when they learned little. The methods that edit the least
#   per token (Pfeiffer's single adapter, (IA)³'s scales) disturb ordinary text the least.
# * **Mergeable** methods (LoRA, (IA)³) end up with zero inference overhead (lesson 06); the others keep their
#   extra modules, attention slots or positions at inference.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 28–31 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | lora: test accuracy | 0.853 ± 0.035 (0.810 – 0.880) |
# | adapter-houlsby: test accuracy | 0.765 ± 0.020 (0.745 – 0.785) |
# | ia3: test accuracy | 0.765 ± 0.023 (0.750 – 0.795) |
# | prompt: test accuracy | 0.522 ± 0.033 (0.490 – 0.555) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/07_adapters_prompts.py` (each asks for one change, says what
# to expect, and solves it). More ideas to try on your own:
#
# 1. Give prompt tuning more room: `n_virtual=50` and 20 epochs. Does it catch up? What does it cost in context
#    length (`model.config.block_size` is shared between the soft prompt and the post)?
# 2. Train prefix tuning with the reparametrisation of the paper (`method_options={"reparam": True}`), which
#    passes the rows through a small MLP during training, and compare with `init="vocab"`.
# 3. Set `train_layernorm=True` for the Houlsby adapters (the paper trains the LayerNorms too). How many numbers
#    does that add, and why does `disabled(model)` then no longer give the base model?
# 4. Change the adapters' `reduction_factor` (16 → 4 or 64): plot accuracy against the bottleneck width $m$.
# 5. Apply (IA)³ only to the MLP (`targets=["mlp.proj"]`): which of its three vectors does the task need?
