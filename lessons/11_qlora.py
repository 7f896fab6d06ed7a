# %% [markdown]
# # Lesson 11 — QLoRA: a frozen base in 4 bits, a LoRA on top
#
# LoRA (lesson 06) made the *trainable* part small. The frozen base still sits in memory at 32 or 16 bits per
# weight, and for a large model that is what no longer fits: 65 billion weights are 130 GB in bf16. QLoRA
# (Dettmers et al., 2023) stores the frozen base in about 4 bits per weight and trains a LoRA over it. This lesson
# builds it up from the numbers:
#
# 1. why 4 bits can work: pretrained weights look normally distributed, and NF4 puts its 16 levels where a normal
#    distribution has its mass;
# 2. one block of 64 weights quantised by hand, packed two codes per byte, and read back;
# 3. double quantisation: the block constants quantised too, 4.5 → 4.127 bits per weight;
# 4. the error of five 4-bit formats on SmolLM2's real weights, and what each does to its perplexity;
# 5. a QLoRA fine-tune of SmolLM2 on the `json` task, against lesson 10's LoRA;
# 6. where the memory of a step goes — and why QLoRA saves little of it on a small model;
# 7. the merge trap: an adapter trained on the 4-bit weights does not fold back for free.
#
# Full mode trains SmolLM2 for 60 steps of 8 and scores 100 posts, about 6 minutes on 2 CPU cores. Workshop mode
# (`MINIFT_DEMO=1`) compares three formats' perplexity instead of five and runs section 5's QLoRA fine-tune on the
# `tiny` base (the same code path, a 2-million-parameter model quantised to NF4), scoring 10 posts.
# Quick mode (`MINIFT_QUICK=1`, what the tests run) fine-tunes minift's small `quick` base for 1 step instead of
# SmolLM2 and scores 2 posts: the mechanics, not the numbers. SmolLM2 is fetched once as in lesson 10.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

from minift.base import load_base
from minift.data import load_task_data
from minift.finetune import (FinetuneConfig, encode_dataset, finetune, get_template, lm_val_loss, load_finetuned,
                             pretraining_batches, sft_collate, sft_loss_fn)
from minift.files import minift_home
from minift.peft import apply_method, method_config
from minift.peft.qlora_measures import memory_breakdown, merge_trap
from minift.quant import (FORMATS, codebook, double_quantize, error, fake_quantize_linears_, normal_float_levels,
                          quantize_nf4, weight_memory_bytes)
from minift.quant.blockwise import pack_nibbles
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
N_EVAL = pick(quick=2, demo=10, full=100)
STEPS, BATCH = pick(quick=(1, 2), demo=(60, 8), full=(60, 8))
RUN_BASE = pick(quick="quick", demo="tiny", full="smollm2")  # the base of section 5's fine-tune
OUT = minift_home() / "lessons" / "11_smollm2_json_qlora"  # kept: `minift merge` can read it after the lesson
seed_everything(SEED)
projector_style()
model, tok = load_base("smollm2", progress=False)
print(f"mode: {MODE}; seed {SEED}; SmolLM2 with {sum(p.numel() for p in model.parameters()):,} weights")

# %% [markdown]
# ## 1. Weights are (roughly) normal, and NF4 is built for that
#
# Take one weight matrix of SmolLM2, cut it into blocks of 64 consecutive weights and divide each block by its
# largest magnitude (its *absmax*): every value lands in [−1, 1]. Their histogram is bell-shaped. A 4-bit code has
# 16 values to spend; evenly spaced levels (Int4) waste many on the sparse tails. **NF4** puts them at quantiles of
# a normal distribution, so each level is used about equally often. Its 16 values are a fixed table; they come
# from the normal quantile function Φ⁻¹ (minift re-derives them to 2·10⁻⁷).

# %%
w = model.blocks[10].mlp.up.weight.detach()
blocks = w.reshape(-1, 64)
scaled = (blocks / blocks.abs().amax(dim=1, keepdim=True)).reshape(-1)
nf4, int4 = codebook("nf4"), codebook("int4")
print("NF4 levels:", " ".join(f"{v:+.3f}" for v in nf4.tolist()))
print(f"derived from Φ⁻¹, largest difference from the table: {(normal_float_levels() - nf4.double()).abs().max():.1e}")
fig, ax = plt.subplots(figsize=(8, 3.2))
ax.hist(scaled.numpy(), bins=200, density=True, color="0.7", label="SmolLM2 weights / block absmax")
ax.vlines(nf4.numpy(), 0, 2.5, colors="C0", linewidth=1, label="NF4 levels")
ax.vlines(int4.unique().numpy(), 0, 1.2, colors="C3", linewidth=1, linestyles="dashed", label="Int4 levels")
ax.set_xlabel("scaled weight")
ax.legend(loc="upper right", fontsize=11)
plt.show()
codes = quantize_nf4(w, double_quant=False).codes()
use = torch.bincount(codes.long(), minlength=16).double() / codes.numel()
print(f"NF4 code usage on this matrix: entropy {-(use * use.log2()).sum():.2f} bits of 4 "
      f"(evenly used codes would give 4.00)")

# %% [markdown]
# ## 2. One block by hand
#
# Quantising a block: divide by the absmax a, find the nearest of the 16 levels (a value exactly between two goes to
# the lower one), store its index q (4 bits). Reading back: ŵ = NF4[q] · a. Two codes share a byte, the first in the
# high nibble. The largest possible error is half the widest gap between levels (between −1 and −0.696) times a:
# 0.152·a.

# %%
block = w.reshape(-1)[:64]
a = block.abs().max()
bounds = (nf4[1:] + nf4[:-1]) / 2                      # decision boundaries: midpoints of neighbouring levels
q = torch.bucketize(block / a, bounds)                # nearest level, ties to the lower code
by_hand = nf4[q] * a
lib = quantize_nf4(block, double_quant=False)
claim("one NF4 block by hand = the library's codes and values",
      torch.equal(q.to(torch.uint8), lib.codes()) and torch.equal(by_hand, lib.dequantize()))
print(f"absmax a = {a:.4f}; first 6 weights {block[:6].tolist()}")
print(f"codes {q[:6].tolist()} → packed bytes {[hex(b) for b in pack_nibbles(q[:6].to(torch.uint8)).tolist()]}")
print(f"read back {[round(v, 4) for v in by_hand[:6].tolist()]}")
print(f"largest error {float((block - by_hand).abs().max()):.4f} ≤ 0.152·a = {0.1519 * float(a):.4f}")

# %% [markdown]
# ## 3. Double quantisation: 4.5 → 4.127 bits
#
# Each block of 64 also stores its absmax as a 32-bit float: 32/64 = 0.5 extra bits per weight, 4.5 in all. QLoRA
# quantises those constants as well: subtract their mean, then store them in 8 bits in blocks of 256 (with one
# 32-bit scale per 256 blocks). Per weight: 4 + 8/64 + 32/(64·256) = 4.127 bits. On 65 billion weights the 0.373
# bits saved are 3 GB.

# %%
print(f"4 + 8/64 + 32/(64·256) = {4 + 8 / 64 + 32 / (64 * 256):.6f} bits per weight")
for dq in (False, True):
    qw = quantize_nf4(w, double_quant=dq)
    print(f"{'with' if dq else 'without'} double quantisation: {qw.nbytes:,} bytes for {w.numel():,} weights = "
          f"{qw.bits_per_parameter:.3f} bits each (float32: {4 * w.numel():,} bytes)")
constants = quantize_nf4(w, double_quant=False).absmax
dqc = double_quantize(constants)
rel = ((dqc.dequantize() - constants).abs() / constants).max()
print(f"the {constants.numel():,} constants stored in 8 bits come back within {rel:.2%} of their value")

# %% [markdown]
# ## 4. Five 4-bit formats, on real weights
#
# NF4, FP4 (a tiny floating point: 1 sign, 2 exponent, 1 mantissa bit) and Int4 at block 64 with double
# quantisation, against llama.cpp's Q4_0 (evenly spaced, blocks of 32, 4.5 bits) and Q4_1 (with a minimum, 5
# bits). The error is relative: mean squared error / mean squared weight over all of SmolLM2's linear layers.
# One caveat to read the table with: SmolLM2 *arrives* as Q4_1 (lesson 10), so its weights already sit on a Q4_1
# grid and Q4_1 reproduces them exactly — that row is not a fair contest.

# %%
linears = [m.weight.detach() for n, m in model.named_modules()
           if isinstance(m, torch.nn.Linear) and n.split(".")[-1] != "lm_head"]
sample = linears if not QUICK else linears[:7]
rows = {}
for fmt in FORMATS:
    num = sum(error(x, fmt)["mse"] * x.numel() for x in sample)
    den = sum(float(x.square().sum()) for x in sample)
    rows[fmt] = (error(sample[0], fmt)["bits"], num / den)
    print(f"{fmt:>5}: {rows[fmt][0]:.3f} bits per weight, relative error {rows[fmt][1]:.4f}")
claim("NF4 has a smaller error than FP4 and Int4 on real weights",
      rows["nf4"][1] < rows["fp4"][1] and rows["nf4"][1] < rows["int4"][1])

# %% [markdown]
# What matters is what the error does to the model. Replace every linear weight by its round trip in each format
# and measure the loss on fixed paragraphs of general English (the forgetting probe of lesson 10):

# %%
probe = pretraining_batches(tok, None)
if QUICK:
    probe = probe[:1]
ppl = {}
for fmt in ("as loaded", *pick(quick=("nf4",), demo=("nf4", "int4"), full=FORMATS)):
    m, _ = load_base("smollm2", progress=False)
    if fmt != "as loaded":
        fake_quantize_linears_(m, fmt)
    ppl[fmt] = math.exp(lm_val_loss(m.eval(), probe))
    print(f"{fmt:>9}: perplexity {ppl[fmt]:.2f}")
del m
for fmt, value in ppl.items():
    report(f"perplexity, {fmt}", value, fmt=".2f")
if not QUICK:
    # Q4_1 is left out: SmolLM2 arrives on a Q4_1 grid, which that format reproduces exactly (section 4's caveat)
    claim("NF4 costs the least perplexity of the 4-bit formats compared", ppl["nf4"] == min(
        v for k, v in ppl.items() if k not in ("as loaded", "q4_1")))
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(list(ppl), list(ppl.values()), color=["0.5"] + ["C0"] * (len(ppl) - 1))
ax.set_ylabel("perplexity on general English")
plt.show()

# %% [markdown]
# NF4 costs least: its perplexity is a few points above the weights as loaded, while FP4 and Int4 cost several
# times more — the QLoRA paper's finding that NF4 beats FP4 and Int4. (The paper also ranks FP4 ahead of Int4; on
# this model the two are about even.)
#
# ## 5. QLoRA on SmolLM2
#
# `method="qlora"` quantises every linear layer of the base to NF4 (lm_head, tied to the embedding, stays) and
# puts LoRA on the query and value projections, exactly as lesson 10's LoRA. At step 0, B = 0 and the model is
# exactly the dequantised base: the quantisation error is there from the start, and the adapter learns to work
# with it. (Workshop mode runs this section on the `tiny` base instead, to stay within 90 seconds: there 60 steps
# of LoRA on 4-bit weights learn almost none of the format — LoRA on this small base needs many more steps, as
# lessons 06 and 17 found — while SmolLM2, in full mode, learns it in 60.)

# %%
t0 = time.perf_counter()
run = finetune(FinetuneConfig(base=RUN_BASE, task="json", method="qlora", max_steps=STEPS, batch_size=BATCH,
                              n_eval=N_EVAL, seed=SEED), OUT, force=True, progress=False)
m = run["metrics"]["test"]
print(f"{run['steps']} steps, {run['train_seconds'] / run['steps']:.1f} s per step, "
      f"{time.perf_counter() - t0:.0f} s with loading and scoring")
print(f"json: valid {m['json_validity']:.0%}, compliant {m['json_compliance']:.0%}, exact {m['exact_match']:.0%} "
      f"(lesson 10's LoRA: 100 %, 100 %, 96 %)")
fp32_bytes = weight_memory_bytes(load_base(RUN_BASE, progress=False)[0])
print(f"weights in memory {run['base_weight_bytes'] / 2**20:.1f} MiB (the {RUN_BASE} base in fp32: "
      f"{fp32_bytes / 2**20:.1f} MiB); adapter file {run['adapter_bytes'] / 2**20:.2f} MiB")
report("QLoRA JSON compliance", m["json_compliance"])
if MODE == "full":  # SmolLM2; workshop mode's tiny base learns the format more slowly
    claim("QLoRA learns strict JSON (90 % or more schema-compliant)", m["json_compliance"] >= 0.9)

# %% [markdown]
# ## 6. Where a step's memory goes
#
# The bytes of one training step by kind, for LoRA and QLoRA on the same batch of 8 json posts. Activations are the
# tensors the forward keeps for the backward; "dequantised" is the largest weight a 4-bit layer rebuilds in float
# for one matmul (one at a time).

# %%
seed_everything(SEED)
td = load_task_data("json")
enc, _ = encode_dataset(tok, td.splits["train"][:BATCH], get_template("chatml"), model.config.block_size)
batch = sft_collate(tok.pad_id)(enc)
parts = {}
for method in ("lora", "qlora"):
    mm, _ = load_base("smollm2", progress=False)
    apply_method(mm, method_config(method)).train()
    parts[method] = memory_breakdown(mm, lambda: sft_loss_fn(mm, batch)[0])
print(f"{'MiB':<12}" + "".join(f"{k:>12}" for k in parts["lora"]))
for method, p in parts.items():
    print(f"{method:<12}" + "".join(f"{v / 2**20:>12.1f}" for v in p.values()))
report("QLoRA / LoRA: weight memory", parts["qlora"]["weights"] / parts["lora"]["weights"], fmt=".2f")
claim("4-bit storage cuts the weights' memory to under 40 %", parts["qlora"]["weights"] < 0.4 * parts["lora"]["weights"])

# %% [markdown]
# The weights shrink about threefold — not eightfold, because the embedding (28 million of the 135 million weights)
# stays in float32, as it does in bitsandbytes. On a model this small the activations of a batch are of the same
# order as the weights, and they are untouched by 4-bit storage; QLoRA's saving becomes decisive only when the
# weights dominate, as they do at billions of parameters. And 4 bits save memory, not time: each forward and each
# backward rebuilds every float weight (README measures the step time).
#
# ## 7. The merge trap
#
# The adapter learned ΔW to correct the *dequantised* weights Ŵ. Folding it into a plain model has three options,
# none free: into Ŵ (the model that was trained, but in float: the 4-bit saving is gone), into the original
# weights W (the adapter never saw them: outputs drift by x(W − Ŵ)ᵀ), or re-quantised to 4 bits (an update
# smaller than half a code step rounds away). `minift merge RUN --into dequantized|original|requantized` asks the
# user to choose. Measured on the run above: the share of the update each target keeps, the error it brings in
# (relative to the update's size) and the largest change of a logit.

# %%
trained, run_tok, run_cfg = load_finetuned(OUT)
original = load_base(RUN_BASE, progress=False)[0].state_dict()
x = sft_collate(run_tok.pad_id)(encode_dataset(run_tok, td.splits["test"][:2], get_template(run_cfg.template),
                                               trained.config.block_size)[0])[0]
trap = merge_trap(trained, original, x)
for into, r in trap.items():
    print(f"{into:>12}: update kept {r['kept']:6.1%}, error brought in {r['error']:7.2f} × ‖ΔW‖, "
          f"max logit drift {r['drift']:.3f}")
claim("merging into the dequantised weights reproduces the trained model", trap["dequantized"]["drift"] < 1e-3)
report("re-quantised merge: share of the update kept", trap["requantized"]["kept"])
if MODE == "full":  # SmolLM2: a small update on a large model (workshop mode's tiny base: see below)
    claim("a re-quantised merge keeps less than half of the update; the original weights drift",
          trap["requantized"]["kept"] < 0.5 and trap["original"]["drift"] > 1e-2)

# %% [markdown]
# Re-quantising keeps only part of the update and adds rounding noise larger than the update itself; merging into
# the original weights keeps the update but brings back the whole quantisation error the adapter had learned to
# live with. Only the dequantised merge reproduces the trained model — at float size. (In workshop mode the run is
# on the `tiny` base, whose update after 60 steps is large compared with one NF4 step: re-quantising then keeps
# nearly all of it. The trap is a property of small updates on large models — exactly QLoRA's use case.) The
# honest options are to serve the 4-bit base with the adapter unmerged, or to merge into the dequantised weights and
# accept the size.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 43–47 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | perplexity, as loaded | 42.8 (every seed) |
# | perplexity, nf4 | 46.3 (every seed) |
# | perplexity, int4 | 57.6 (every seed) |
# | QLoRA JSON compliance | 0.000 (every seed) |
# | QLoRA / LoRA: weight memory | 0.315 (every seed) |
# | re-quantised merge: share of the update kept | 0.991 ± 0.001 (0.991 – 0.992) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/11_qlora.py` (each asks for one change, says what to expect,
# and solves it). More ideas to try on your own:
#
# 1. `minift finetune --base smollm2 --task json --method qlora --quant-type fp4 --max-steps 60 --batch-size 8
#    --out runs/fp4`: does the adapter make up for FP4's larger error?
# 2. `--block-size 256` and `--no-double-quant`: how do bits per weight and the result move?
# 3. `minift compare --task sentiment --methods lora,qlora --out runs/q`: QLoRA against LoRA on the tiny base.
