# %% [markdown]
# # Lesson 18 — The levers: batch size, accumulation, epochs, sequence length, and two controls
#
# Every fine-tuning guide lists the same hyperparameters — batch size, gradient accumulation, the number of epochs,
# the sequence length — and every sensible experiment has controls. The earlier lessons fixed them; this one turns
# each lever and measures what it moves, on the same task (`sentiment`) and the same `tiny` base:
#
# 1. **batch size and gradient accumulation** — memory against throughput against the result; and the identity
#    that makes accumulation work: K micro-batches of b give the step of one batch of K·b;
# 2. **epochs** as a swept setting — more passes learn more, until they memorise (lesson 03) and forget (lesson 14);
# 3. **sequence length** — what one more token of context costs in time and in memory;
# 4. **a randomly initialised model**, fine-tuned the same way — the control that says what pretraining buys;
# 5. **the `quick` against the `tiny` base** — choosing a base: size, speed, quality.
#
# Full mode takes about 4 minutes on 2 CPU cores; workshop mode (`MINIFT_DEMO=1`) runs fewer settings per lever,
# about a minute and a half; quick mode (`MINIFT_QUICK=1`, what the tests run) uses the `quick` base and a few
# steps: a smoke test whose numbers mean nothing. This lesson can be taught right after lesson 05.

# %%
import atexit
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minift.base import load_base, save_model_dir
from minift.data import load_task_data
from minift.finetune import Classifier, FinetuneConfig, encode_labelled, finetune
from minift.finetune.classify import classify_collate, classify_loss_fn
from minift.model import GPT
from minift.peft.qlora_measures import saved_activation_bytes
from minift.tables import markdown_table
from minift.training import TrainConfig, seed_everything, train
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
PRESET = "quick" if QUICK else "tiny"
BUDGET = pick(quick=dict(max_steps=4, n_train=64, n_eval=40), demo=dict(epochs=2), full=dict(epochs=2))
LR = 5e-4
OUT = Path(tempfile.mkdtemp(prefix="minift_lesson18_"))  # runs go to a temporary directory ...
atexit.register(shutil.rmtree, OUT, ignore_errors=True)  # ... removed when the script or the kernel ends
seed_everything(SEED)
projector_style()
base, tok = load_base(PRESET, progress=False)
td = load_task_data("sentiment")
print(f"mode: {MODE}; seed {SEED}; base {PRESET}; reference budget {BUDGET}, lr {LR}")


def run(name: str, **overrides) -> dict:
    """One full fine-tuning run on sentiment (the reference settings, changed by `overrides`)."""
    settings = dict(base=PRESET, task="sentiment", method="full", lr=LR, batch_size=16, seed=SEED, **BUDGET)
    settings.update(overrides)
    return finetune(FinetuneConfig(**settings), OUT / name, force=True, progress=False)


# %% [markdown]
# ## 1. Batch size and gradient accumulation
#
# A step averages the gradient over a batch of b examples. Memory for the activations the backward needs grows
# with b; the time per step grows too, but less than linearly (bigger matrix products use the cores better); and
# the *result* depends on b through the number of steps an epoch makes (500/b) and through the gradient's noise.
# When the batch you want does not fit, **gradient accumulation** runs K micro-batches of b, adds their gradients,
# and steps once: the memory of b, the gradient of K·b. It is the same step, not an approximation — as long as the
# loss is averaged over all K·b examples, which is why minift's losses return (sum, count) rather than a mean:
#
# $$\nabla \frac{1}{N}\sum_{k=1}^{K} S_k = \frac{1}{N}\sum_{k=1}^{K} \nabla S_k, \qquad N = \sum_k n_k .$$
#
# Check it twice on 16 posts: the gradient of the mean loss of one batch of 16 against the accumulated gradients of
# 4 micro-batches of 4 (the formula, with the library's loss), and then one optimizer step of `train` each way,
# from the same weights.

# %%
enc = encode_labelled(tok, td.splits["train"][:16], td.labels, base.config.block_size)
collate = classify_collate(tok.pad_id)


def gradient(micro: int) -> torch.Tensor:
    """The gradient of the mean loss over the 16 posts, accumulated over micro-batches of `micro`."""
    torch.manual_seed(SEED)
    clf = Classifier(load_base(PRESET, progress=False)[0], td.labels)
    parts = [classify_loss_fn(clf, collate(enc[i:i + micro])) for i in range(0, 16, micro)]
    n = sum(int(c) for _, c in parts)  # N: every example of the step, over all micro-batches
    for loss_sum, _ in parts:
        (loss_sum / n).backward()  # each micro-batch adds its share; nothing is averaged twice
    return torch.cat([p.grad.flatten() for p in clf.parameters()])


g16, g4x4 = gradient(16), gradient(4)
rel = ((g16 - g4x4).norm() / g16.norm()).item()
print(f"‖g(16) − g(4 × 4)‖ / ‖g(16)‖ = {rel:.1e}")
claim("4 micro-batches of 4 give the gradient of one batch of 16", rel < 1e-5, f"{rel:.1e}")

after = {}
for name, micro, k in (("one batch of 16", 16, 1), ("4 micro-batches of 4", 4, 4)):
    torch.manual_seed(SEED)
    clf = Classifier(load_base(PRESET, progress=False)[0], td.labels)
    cfg = TrainConfig(max_steps=1, grad_accum=k, lr=1e-3, warmup_steps=0, weight_decay=0.0, eval_every=10**6,
                      log_every=1, device="cpu", progress=False, seed=SEED)
    train(clf, classify_loss_fn, lambda i, m=micro: collate(enc[(i * m) % 16:(i * m) % 16 + m]), cfg)
    after[name] = torch.cat([p.detach().flatten() for p in clf.parameters()])
gap = (after["one batch of 16"] - after["4 micro-batches of 4"]).abs().max().item()
print(f"after one AdamW step of lr 1e-3: largest weight difference {gap:.1e}")
claim("and train() takes the same step both ways (to a small fraction of the step size)", gap < 0.1 * 1e-3)

# %% [markdown]
# The gradients agree to float rounding (the micro-batches are padded to their own lengths, so the sums run in a
# different order). After the AdamW step a few weights differ by a little more: Adam's first step moves each weight
# by about lr·g/|g|, and where a gradient is nearly zero that ratio magnifies rounding — still a small fraction of
# one step.

# %% [markdown]
# Now the costs and the result. For each setting: the activation memory of one micro-batch (the bytes autograd
# keeps for the backward, counted by `saved_activation_bytes`), the time of one optimizer step (best of 3), and the
# test accuracy after the same number of epochs at the same learning rate.

# %%
def step_cost(micro: int, k: int) -> tuple[float, float]:
    """(activation MB of one micro-batch, ms per optimizer step: best of 3 after a warm-up)."""
    clf = Classifier(load_base(PRESET, progress=False)[0], td.labels).train()
    many = encode_labelled(tok, td.splits["train"][:micro * k], td.labels, base.config.block_size)
    batches = [collate(many[i:i + micro]) for i in range(0, micro * k, micro)]
    _, act = saved_activation_bytes(clf, lambda: classify_loss_fn(clf, batches[0])[0])
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-4)
    times = []
    for rep in range(4):
        t0 = time.perf_counter()
        for b in batches:
            loss, n = classify_loss_fn(clf, b)
            (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return act / 2**20, 1000 * min(times[1:])


SETTINGS = pick(quick=[(4, 1), (16, 1)], demo=[(4, 1), (4, 4), (16, 1), (64, 1)],
                full=[(4, 1), (4, 4), (16, 1), (64, 1)])
rows = []
for micro, k in SETTINGS:
    mb, ms = step_cost(micro, k)
    res = run(f"b{micro}_k{k}", batch_size=micro, grad_accum=k)
    rows.append({"micro-batch": micro, "accumulation": k, "effective batch": micro * k, "activations MB": round(mb, 1),
                 "ms per step": round(ms), "posts/s": round(1000 * micro * k / ms), "steps": res["steps"],
                 "test accuracy": round(res["metrics"]["test"]["accuracy"], 3)})
print(markdown_table(rows))
by = {(r["micro-batch"], r["accumulation"]): r for r in rows}
report("activation MB, batch 16", by[(16, 1)]["activations MB"], fmt=".1f")
report("posts per second: batch 16 / batch 4", by[(16, 1)]["posts/s"] / by[(4, 1)]["posts/s"], fmt=".2f")
claim("activation memory grows with the micro-batch", by[(16, 1)]["activations MB"] > 2 * by[(4, 1)]["activations MB"])
for r in rows:
    report(f"batch {r['micro-batch']} × {r['accumulation']}: test accuracy", r["test accuracy"])
if (4, 4) in by:
    claim("accumulation keeps the memory of its micro-batch", by[(4, 4)]["activations MB"] == by[(4, 1)]["activations MB"])

# %% [markdown]
# **Look at** the three kinds of column. *Memory* follows the micro-batch, not the effective batch: 4 × 4 costs
# what 4 costs. *Throughput* (posts per second) rises from batch 4 to 16 — one bigger product uses the two cores
# better than four small ones — and can fall again at 64: a batch is padded to its longest post, and the products
# outgrow the caches. Accumulation is slower than a real batch of the same size: it buys memory, not speed.
# The *result* moves with the number of steps: at the same epochs and learning rate, batch 64 takes a quarter of
# batch 16's steps and learns less; batch 4 takes four times as many, noisier ones. Batch 16 and 4 × 4 see the same
# effective batch and the same number of steps, so they land close (not equal: the batches are drawn in a different
# order, and rounding does the rest). The usual advice — raise the learning rate with the batch — is put to the
# test in the exercises: with only 16 steps, larger steps do not make up for fewer of them.
#
# ## 2. Epochs as a swept setting
#
# One epoch is one pass over the 500 training posts. Each run below has its own cosine schedule over its own
# length, so "4 epochs" is a different run from "the first 4 epochs of 8".

# %%
EPOCHS = pick(quick=[1, 2], demo=[1, 2, 4], full=[1, 2, 4, 8])
sweep = {}
for e in EPOCHS:
    sweep[e] = run(f"epochs_{e}", **(dict(max_steps=2 * e) if QUICK else dict(epochs=e)))
for e, r in sweep.items():
    report(f"{e} epoch(s): test accuracy", r["metrics"]["test"]["accuracy"])
    report(f"{e} epoch(s): Δ pretraining loss", r["forgetting"]["delta_loss"])
fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
ax[0].plot(EPOCHS, [sweep[e]["metrics"]["test"]["accuracy"] for e in EPOCHS], "o-")
ax[0].set_ylabel("test accuracy")
ax[1].plot(EPOCHS, [sweep[e]["forgetting"]["delta_loss"] for e in EPOCHS], "o-", color="tab:red")
ax[1].set_ylabel("Δ loss on pretraining text")
for a in ax:
    a.set_xscale("log", base=2)
    a.set_xlabel("epochs")
plt.show()
if not QUICK:
    claim("more epochs forget more", sweep[EPOCHS[-1]]["forgetting"]["delta_loss"]
          > sweep[EPOCHS[0]]["forgetting"]["delta_loss"])

# %% [markdown]
# **Look at** the two curves together. Accuracy climbs fastest over the first passes and each further pass buys less
# of it, while the loss on pretraining text keeps rising with every pass: once the task is mostly learned, more
# epochs buy little and keep costing general ability. The guides' "1–3 epochs for fine-tuning" is this picture; the
# number is a setting to sweep on *your* validation set, with early stopping (lesson 03) as the safeguard.
#
# ## 3. What a longer sequence costs
#
# A forward and backward pass over B sequences of T tokens, for T from 16 to the context: the MLPs and projections
# cost ∝ T, attention's scores ∝ T². The model's default attention is PyTorch's fused kernel, which does not keep
# the T × T matrix for the backward.

# %%
LENGTHS = [16, 32, 64] if QUICK else [16, 32, 64, 128]
B = 8
lm, _ = load_base(PRESET, progress=False)
lm.train()
cost = []
for T in LENGTHS:
    ids = torch.randint(0, tok.vocab_size, (B, T + 1))
    _, act = saved_activation_bytes(lm, lambda: lm(ids[:, :-1], targets=ids[:, 1:])[1])
    times = []
    for rep in range(pick(quick=2, demo=4, full=6)):
        t0 = time.perf_counter()
        lm(ids[:, :-1], targets=ids[:, 1:])[1].backward()
        times.append(time.perf_counter() - t0)
        lm.zero_grad(set_to_none=True)
    cost.append({"T": T, "ms forward+backward": round(1000 * min(times), 1),
                 "µs per token": round(1e6 * min(times) / (B * T), 1), "activations MB": round(act / 2**20, 1),
                 "KB per token": round(act / 1024 / (B * T), 1)})
print(markdown_table(cost))
report(f"activation KB per token at T = {LENGTHS[-1]}", cost[-1]["KB per token"], fmt=".1f")
claim("activation memory grows at least linearly with T", cost[-1]["activations MB"] >= 0.95 * cost[0]["activations MB"]
      * LENGTHS[-1] / LENGTHS[0])

# %% [markdown]
# **Look at** the per-token columns. Memory per token stays about constant: at these lengths the activations are
# dominated by the ∝ T terms (the MLP's 4d-wide hidden layer, the projections), and the fused attention keeps no
# T × T matrix. Time per token falls at first (small products waste the cores) and would rise again once the T²
# of attention dominates — at lengths well beyond this model's 128 tokens, which is where long-context fine-tuning
# gets expensive. The practical lever: `max_len` (or packing short examples together) decides how many tokens a
# step pays for, padding included.
#
# ## 4. The control: a randomly initialised model
#
# Everything so far started from a pretrained base. Fine-tune a model of the *same shape* from random weights,
# with the same data, steps and learning rate: the difference is what pretraining bought.

# %%
torch.manual_seed(SEED)
random_model = GPT(base.config)
random_dir = save_model_dir(OUT / "random_base", random_model, tok, preset=PRESET)
reference = run("reference")
scratch = run("from_scratch", base=str(random_dir))
bow = reference["baselines"]["bow_logreg_1gram"]["accuracy"]
for name, r in (("pretrained base", reference), ("random weights", scratch)):
    print(f"{name:<16} test accuracy {r['metrics']['test']['accuracy']:.1%}")
print(f"bag of words     test accuracy {bow:.1%}; majority {reference['baselines']['majority']['accuracy']:.1%}")
report("pretrained base: test accuracy", reference["metrics"]["test"]["accuracy"])
report("random weights: test accuracy", scratch["metrics"]["test"]["accuracy"])
if not QUICK:
    claim("pretraining buys accuracy: the pretrained base beats the same model from random weights by 15+ points",
          reference["metrics"]["test"]["accuracy"] > scratch["metrics"]["test"]["accuracy"] + 0.15)

# %% [markdown]
# **Look at** the gap. From random weights, 500 posts and a few dozen steps are not enough to learn English word
# order — the model does no better than counting words, or than a coin. The pretrained base arrives knowing the
# words, their order and their opinions, and fine-tuning only has to point a head at it. That is the whole case
# for fine-tuning over training from scratch, measured. (On an easy enough task the gap closes: spam filters are
# nearly solved from scratch. The control tells you which kind of task you have.)
#
# ## 5. Choosing a base: `quick` against `tiny`
#
# The same fine-tune on minift's two bases: the `quick` base is smaller, with a shorter context and a smaller
# vocabulary, and was pretrained for seconds instead of minutes.

# %%
quick_run = reference if PRESET == "quick" else run("quick_base", base="quick")
choice = []
for name, r in (("quick", quick_run), (PRESET, reference)):
    b, _ = load_base(name, progress=False)
    choice.append({"base": name, "parameters": f"{b.num_parameters():,}", "context": b.config.block_size,
                   "pretraining loss": round(r["forgetting"]["before_loss"], 3),
                   "fine-tune s": round(r["train_seconds"], 1),
                   "test accuracy": round(r["metrics"]["test"]["accuracy"], 3)})
print(markdown_table(choice))
report("quick base: test accuracy", quick_run["metrics"]["test"]["accuracy"])
if not QUICK:
    claim("the better-pretrained tiny base gives the better specialist",
          reference["metrics"]["test"]["accuracy"] > quick_run["metrics"]["test"]["accuracy"])

# %% [markdown]
# **Look at** the last three columns. The `quick` base fine-tunes faster and is worse at the task: its lower
# pretraining quality (a higher loss on held-out text) carries straight into the specialist. Choosing a base is
# this trade-off at every scale — a larger, better-pretrained model costs more per step and per answer and
# usually needs fewer examples to reach a given quality — and the way to choose is to run the same small
# fine-tune on each candidate, as here, and compare on your own validation set.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 70–73 s (another seed's run shared the machine and is left out). Full mode's numbers are
# this notebook's outputs (seed 0). The same seed gives the same numbers on the same machine; another CPU, thread
# count or PyTorch build adds floating-point numbers in another order, so the last digits — and after many training
# steps a point or two — can differ. A number outside its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | activation MB, batch 16 | 13.8 (every seed) |
# | posts per second: batch 16 / batch 4 | 2.14 ± 0.81 (1.55 – 3.18) |
# | batch 4 × 1: test accuracy | 0.807 ± 0.052 (0.765 – 0.870) |
# | batch 4 × 4: test accuracy | 0.758 ± 0.023 (0.740 – 0.785) |
# | batch 16 × 1: test accuracy | 0.788 ± 0.032 (0.750 – 0.815) |
# | batch 64 × 1: test accuracy | 0.652 ± 0.040 (0.625 – 0.705) |
# | 1 epoch(s): test accuracy | 0.567 ± 0.083 (0.470 – 0.635) |
# | 1 epoch(s): Δ pretraining loss | 0.063 ± 0.013 (0.054 – 0.080) |
# | 2 epoch(s): test accuracy | 0.788 ± 0.032 (0.750 – 0.815) |
# | 2 epoch(s): Δ pretraining loss | 0.148 ± 0.091 (0.076 – 0.257) |
# | 4 epoch(s): test accuracy | 0.907 ± 0.030 (0.875 – 0.935) |
# | 4 epoch(s): Δ pretraining loss | 0.263 ± 0.095 (0.200 – 0.389) |
# | activation KB per token at T = 128 | 57.6 (every seed) |
# | pretrained base: test accuracy | 0.788 ± 0.032 (0.750 – 0.815) |
# | random weights: test accuracy | 0.528 ± 0.045 (0.485 – 0.575) |
# | quick base: test accuracy | 0.485 ± 0.005 (0.480 – 0.490) |
#
# ## Exercises
#
# `lessons/solutions/18_training_levers.py` has two exercises with worked solutions: whether a larger learning
# rate recovers what a large batch lost, and the random-init control given four times the epochs.
