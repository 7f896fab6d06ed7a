# %% [markdown]
# # Lesson 09 — Choosing a method: every fine-tuning method on one task, side by side
#
# Lessons 06–08 built the parameter-efficient methods one at a time. This lesson asks the question a practitioner
# actually has: **which one should I use?** There is no single answer, only trade-offs, so we measure them:
#
# 1. run `minift.compare.compare` — the same base, task, data, budget and evaluation for several methods;
# 2. read the table: trainable parameters, optimizer state, memory, step time, accuracy, forgetting, file size,
#    mergeability;
# 3. plot accuracy against trainable parameters, and forgetting against accuracy;
# 4. see why LoRA saves memory but hardly any time;
# 5. see what "mergeable" buys at inference time;
# 6. put it together into a rule of thumb.
#
# `compare` is also a command: `minift compare --base tiny --task sentiment --out runs/compare` runs all ten
# methods (at most a quarter of an hour on a 2-core CPU) and writes `results.json`, `table.md` and two plots.
#
# Full mode compares five methods on the `tiny` base (pretrained by lesson 02 or `minift warmup` and cached) with
# finetune's default budget, about 5 minutes on 2 CPU cores. Workshop mode (`MINIFT_DEMO=1`) compares three
# (full, LoRA, (IA)³) for 2 epochs, about a minute and a half. Quick mode (`MINIFT_QUICK=1`, what the tests run)
# compares full fine-tuning and LoRA on the small `quick` base for a few steps: a smoke test of the output's
# *shape*, whose numbers mean nothing.

# %%
import time

import matplotlib.pyplot as plt
import torch

from minift.base import load_base
from minift.compare import compare, draw_forgetting_vs_metric, draw_metric_vs_params, markdown
from minift.errors import ConfigError
from minift.files import load_json, minift_home
from minift.finetune import DEFAULT_EPOCHS, FULL_FINETUNING_LR, load_finetuned
from minift.peft import METHODS as PEFT_METHODS
from minift.peft import apply_method, merge, method_config
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
BASE = "quick" if QUICK else "tiny"
METHODS = pick(quick=["full", "lora"], demo=["full", "lora", "ia3"], full=["full", "lora", "prompt", "ia3", "loreft"])
# quick: a few steps on a subset; demo: 2 epochs; full: finetune's default budget (DEFAULT_EPOCHS passes, 500 posts)
BUDGET = pick(quick=dict(max_steps=20, n_train=96, n_eval=100), demo=dict(epochs=2), full={})
OUT = minift_home() / "lessons" / f"09_compare_{BASE}"  # kept after the lesson: `minift eval OUT/lora/seed0` works
seed_everything(SEED)
projector_style()
print(f"mode: {MODE}; seed {SEED}; base {BASE!r}; methods {', '.join(METHODS)}; "
      f"budget {BUDGET or f'{DEFAULT_EPOCHS} epochs (the default)'}")

# %% [markdown]
# ## 1. One comparison, many runs
#
# `compare` calls `minift.finetune.finetune` once per method (and per seed), each into its own run directory
# `OUT/<method>/seed<k>/`, then gathers one row per method. Everything except the method is held fixed: the same
# 500 training posts of the `sentiment` task (a subset in quick mode), the same number of passes over them, the
# same validation-based choice of the best checkpoint, the same 200 test posts. Each method keeps its own learning
# rate — methods with fewer trainable numbers need bigger steps. Each method's config carries its default and the
# reason for it (`default_lr`, `lr_reason`; `minift methods` prints the same table):

# %%
for m in METHODS:
    lr = FULL_FINETUNING_LR if m == "full" else PEFT_METHODS[m].default_lr
    print(f"{m:<16} lr {lr:<7g} {'' if m == 'full' else PEFT_METHODS[m].lr_reason}")

# %% [markdown]
# Each run starts in a fresh Python process, so its peak memory is its own (a process's peak never goes down).
# `force=True` runs everything again; without it, a re-run skips every run that has finished — so an interrupted
# comparison picks up where it stopped, and adding a method costs only that method.

# %%
t0 = time.perf_counter()
rows = compare(BASE, "sentiment", METHODS, seeds=[SEED], out_dir=OUT, force=True, progress=not QUICK, **BUDGET)
print(f"{len(rows)} runs in {time.perf_counter() - t0:.0f} s")
t0 = time.perf_counter()
again = compare(BASE, "sentiment", METHODS, seeds=[SEED], out_dir=OUT, progress=False, **BUDGET)
print(f"the same call again: {time.perf_counter() - t0:.1f} s (every run was finished, so all were skipped)")
claim("a second call skips every finished run and returns the same rows", again == rows)

# %% [markdown]
# ## 2. The table
#
# This is `OUT/table.md`, the same table `minift compare` prints:

# %%
meta = load_json(OUT / "results.json")
print(markdown(rows, meta))

# %% [markdown]
# How to read each column:
#
# * **trainable / % of model** — the numbers the optimizer changes. Every method also trains the new 2-class head
#   ($2d + 2$ numbers), which is why even the smallest methods are not at zero.
# * **optimizer state** — AdamW keeps two running averages per trainable number, $m$ and $v$, 4 bytes each: 8 bytes
#   per trainable number. For full fine-tuning that is *twice the model's own size*; for a PEFT method it is tiny.
# * **peak memory** — on a CPU the peak resident memory of the run's process. Most of it is PyTorch itself and the
#   activations of a batch, which every method needs, so the differences are smaller than the optimizer-state
#   column suggests. On a GPU (`--device cuda`) the column counts only tensors, and on a big model the weights'
#   gradients and optimizer state are what decide whether training fits at all.
# * **step time, tokens/s** — one optimizer step (forward, backward, update), evaluation excluded.
# * **test accuracy** — on 200 held-out posts; the baselines below the table are the majority class and a
#   bag-of-words logistic regression trained on the same posts (the task is built so that word counting is not
#   enough: "the pizza was great, but the service was slow" is negative).
# * **pretraining loss before → after** — the model's next-token loss on held-out *pretraining* text. A rise
#   (Δ > 0) is **forgetting**: the specialisation cost some general language modelling.
# * **saved weights** — what you have to store and ship per task: the whole model for full fine-tuning, kilobytes
#   for a PEFT method (and the base once).
# * **mergeable** — can the learned change be folded into the base weights (section 5)?

# %%
by = {r["method"]: r for r in rows}
full, lora = by["full"], by["lora"]
print(f"LoRA trains {full['trainable_params'] / lora['trainable_params']:.0f}× fewer numbers than full fine-tuning "
      f"({lora['trainable_pct']:.2f}% of the model)")
print(f"optimizer state: {full['optimizer_state_bytes'] / 2**20:.1f} MB → "
      f"{lora['optimizer_state_bytes'] / 2**10:.0f} KB; saved weights: {full['weights_bytes'] / 2**20:.1f} MB → "
      f"{lora['weights_bytes'] / 2**10:.0f} KB")
print(f"step time: full {full['step_ms']:.0f} ms, LoRA {lora['step_ms']:.0f} ms "
      f"(ratio {lora['step_ms'] / full['step_ms']:.2f})")
for r in rows:
    print(f"{r['method']:<16} accuracy {r['metric_mean']:.3f}   forgetting Δ {r['forgetting_delta']:+.3f}")
    report(f"{r['method']}: test accuracy", r["metric_mean"])
    report(f"{r['method']}: forgetting Δ", r["forgetting_delta"])
report("LoRA / full: trainable parameters", lora["trainable_params"] / full["trainable_params"], fmt=".4f")
report("LoRA / full: step time", lora["step_ms"] / full["step_ms"], fmt=".2f")
claim("LoRA trains under 5 % of the numbers full fine-tuning trains",
      lora["trainable_params"] < 0.05 * full["trainable_params"])
print("baselines:", ", ".join(f"{k} {v:.3f}" for k, v in meta["baselines"].items()))

# %% [markdown]
# ## 3. Two pictures
#
# Left: accuracy against the number of trainable parameters, on a log scale — each step to the right is ten times
# more numbers to train and store. The interesting methods sit high and to the left. Right: forgetting against
# accuracy — the best corner is bottom right (learned the task, kept the rest).

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
draw_metric_vs_params(axes[0], rows, meta)
draw_forgetting_vs_metric(axes[1], rows, meta)
plt.show()

# %% [markdown]
# **Look at** how far apart the methods are on the x-axis (orders of magnitude) compared with the y-axis: LoRA
# changes about 1% of what full fine-tuning changes. Then look at which methods clear the bag-of-words line. The
# task is built so that counting words is not enough, and a method only beats that line if it learned how the
# clauses combine. The fewer numbers a method has, the more each must carry: (IA)³'s scaling vectors and ReFT's
# few edited positions need a larger learning rate and more steps than LoRA to get there (the ReFT paper trains
# for many epochs), and with too small a budget they stay near the line. Prompt tuning is the usual casualty on a
# model this small: Lester et al. (2021) found it catches up with full fine-tuning only at billions of parameters.
#
# **Look at** the forgetting axis too. Biderman et al. (2024), "LoRA learns less and forgets less", found that on
# large models LoRA forgets less than full fine-tuning. Compare the two rows here. On a small model trained for
# many epochs at a high learning rate, a low-rank update of q and v can move the pretraining loss as much as full
# fine-tuning does: forgetting depends on how far the model's function moves, not only on how many numbers move.
# (IA)³ and ReFT, which rescale or edit activations in a few places, tend to move it least. Prefix and prompt
# tuning can show by far the largest rise: their learned keys, values or vectors sit in front of *every* text,
# and they were trained only to make the classifier's last token say "positive" or "negative". Here forgetting is
# measured with the method switched on. Their base weights are untouched, so switching the method off gives the
# base back exactly. That is a different kind of forgetting from full fine-tuning's, where the old weights are
# gone.
#
# With one seed and 200 test posts, a difference of one or two points is within noise; run `--seeds 3` before
# trusting it.

# %%
bow = meta["baselines"].get("bow_logreg_1gram")
above = [r["method"] for r in rows if bow is not None and r["metric_mean"] > bow]
print(f"above the bag-of-words baseline ({bow:.3f}): {', '.join(above) or 'none'}")
ranked = sorted(rows, key=lambda r: r["forgetting_delta"])
print("forgetting, smallest first:", ", ".join(f"{r['method']} {r['forgetting_delta']:+.3f}" for r in ranked))

# %% [markdown]
# ## 4. Why LoRA is hardly faster
#
# LoRA removes the weight gradients of the frozen layers, but not the work of getting the loss gradient *through*
# them: to reach the adapters in block 0, the backward pass still runs through every block above it. Counting
# matmul FLOPs per token with $N$ weights: full fine-tuning costs $2N$ (forward) $+ 2N$ (activation gradients)
# $+ 2N$ (weight gradients) $= 6N$; LoRA about $4N$. Attention's own matmuls have no weights and cost the same for
# both. So the best possible step is about 0.7× as long, and the small extra matmuls $x A^\top B^\top$ give some
# of it back. On a model this small, full fine-tuning also pays for an AdamW update of every weight in every step,
# which LoRA skips. `scripts/bench_peft.py` measures all this on the `tiny` shape. The real savings are memory (no
# gradient and no optimizer state for frozen weights) and storage (a tiny file per task).
#
# Take the step times below with a grain of salt. The runs happened one after another, and on a shared machine
# the load changes between them. The posts are also short (a few dozen tokens), so fixed per-step costs weigh
# more than matmuls. The methods that edit activations (prompt, ReFT) do extra work on every step: P more
# positions for prompt tuning, and position bookkeeping and the orthogonal parametrisation for ReFT.
# `bench_peft.py` alternates LoRA and full steps in one process on the same batches, which removes the drift
# (it measures LoRA at about 0.77× full on the `tiny` shape). Each run uses this process's thread count (printed
# under the table): on a single thread the fixed costs weigh even more, and this lesson once measured LoRA at
# 1.06× full that way — the direction of a small difference is only as good as the measurement behind it.

# %%
step = {r["method"]: r["step_ms"] for r in rows}
for m, ms in step.items():
    print(f"{m:<16} {ms:6.0f} ms per step   ({ms / step['full']:.2f} × full)")

# %% [markdown]
# ## 5. Mergeable or not: the cost at inference time
#
# LoRA, DoRA and (IA)³ learn a change of existing weight matrices: $W' = W + \frac{\alpha}{r} B A$ (or a row/column
# scaling for (IA)³). `merge` folds it in, and the model is again a plain model of the original shape — **zero extra
# inference cost**. Adapters add a small non-linear network to every block; prefix and prompt tuning add keys,
# values or input positions; ReFT edits hidden states at chosen positions. None of these is a change of a weight
# matrix, so they stay as extra computation at inference time, and `merge` refuses them with a reason.
#
# Below: the trained LoRA classifier, merged — the predictions stay the same and the extra branch is gone. Then the
# same forward pass timed for the base alone, LoRA unmerged, LoRA merged, and a bottleneck adapter (untrained:
# its cost does not depend on its values).

# %%
clf, tok, _ = load_finetuned(OUT / "lora" / f"seed{SEED}")
ids = torch.tensor([tok.encode("the soup was cold, but the waiter was kind")] * 32)
with torch.no_grad():
    before = clf(ids)
    merge(clf)
    after = clf(ids)
print(f"largest |logit change| after merging: {(before - after).abs().max():.2e}")
claim("merging LoRA does not change the function", torch.allclose(before, after, atol=1e-4))

base, _ = load_base(BASE, progress=False)
try:
    merge(apply_method(load_base(BASE, progress=False)[0], method_config("adapter-houlsby")))
except ConfigError as e:
    print("merge(adapter-houlsby) →", e)


def forward_ms(models: dict, rounds: int = pick(quick=5, demo=30, full=50)) -> dict:
    """Best-of-N forward time of each model, in interleaved rounds: a slow moment of the machine hits every
    model alike, and the minimum is the time the work itself takes (the median still carries the noise)."""
    times = {name: [] for name in models}
    with torch.no_grad():
        for m in models.values():
            m(ids)  # warm-up
        for _ in range(rounds):
            for name, m in models.items():
                t0 = time.perf_counter()
                m(ids)
                times[name].append(time.perf_counter() - t0)
    return {name: 1000 * min(t) for name, t in times.items()}


unmerged, _, _ = load_finetuned(OUT / "lora" / f"seed{SEED}")
adapter = apply_method(load_base(BASE, progress=False)[0], method_config("adapter-houlsby")).eval()
# the GPT bodies only (every one ends in the same LM head), so the timings differ by the method alone
ms = forward_ms({"base": base.eval(), "LoRA, unmerged": unmerged.body, "LoRA, merged": clf.body,
                 "Houlsby adapter": adapter})
for name, t in ms.items():
    print(f"{name:<16} forward of 32 posts: {t:6.1f} ms  ({t / ms['base']:.2f} × the base)")
report("LoRA merged / base: forward time", ms["LoRA, merged"] / ms["base"], fmt=".2f")
report("LoRA unmerged / base: forward time", ms["LoRA, unmerged"] / ms["base"], fmt=".2f")

# %% [markdown]
# **Look at** the merged LoRA: the base's time (a ratio within a few percent of 1.00 either way is measurement
# noise: a merged model *is* a base-shaped model), while unmerged LoRA and the adapter pay for their extra
# matmuls on every call. On a model this small the differences are a few milliseconds; on a served large
# model at batch size 1 they are the 20–30% latency the LoRA paper reports for adapters. The flip side: an
# unmerged adapter can be swapped per request on one shared base.
#
# ## 6. A rule of thumb
#
# | you care most about … | try first | why |
# |---|---|---|
# | the best score, memory no issue | full fine-tuning | every weight moves; forgets most; a whole model per task |
# | a good score on a small GPU | LoRA (DoRA at small ranks) | ~1% of the parameters, tiny state and files |
# | the fewest parameters | (IA)³, ReFT, prompt tuning | thousands of numbers; give them more steps |
# | zero inference cost | LoRA, DoRA, (IA)³ | merged into the base weights |
# | keeping general ability | a small update + early stopping | less change, less forgetting: check the column |
# | one base, many tasks at once | any PEFT method, unmerged | swap kilobyte adapters per request |
#
# Whatever you pick, measure on *your* task: the ordering on a small synthetic task is a hint, not a law — the ReFT
# paper itself finds ReFT ahead on commonsense reasoning and behind LoRA on arithmetic.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 30–38 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | full: test accuracy | 0.728 ± 0.028 (0.705 – 0.760) |
# | full: forgetting Δ | 0.032 ± 0.008 (0.024 – 0.040) |
# | lora: test accuracy | 0.582 ± 0.030 (0.555 – 0.615) |
# | lora: forgetting Δ | 0.008 ± 0.008 (0.001 – 0.017) |
# | ia3: test accuracy | 0.618 ± 0.003 (0.615 – 0.620) |
# | ia3: forgetting Δ | 0.007 ± 0.002 (0.005 – 0.009) |
# | LoRA / full: trainable parameters | 0.011 (every seed) |
# | LoRA / full: step time | 0.681 ± 0.029 (0.649 – 0.706) |
# | LoRA merged / base: forward time | 1.02 ± 0.02 (1.00 – 1.03) |
# | LoRA unmerged / base: forward time | 1.08 ± 0.02 (1.06 – 1.10) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/09_choosing_a_method.py` (each asks for one change, says what
# to expect, and solves it). More ideas to try on your own:
#
# 1. Run all ten methods: `minift compare --base tiny --task sentiment --out runs/compare`, then
#    add `--seeds 3` and see which differences survive the error bars.
# 2. Compare on an instruction task: `--task qa` scores exact-match answers instead of labels. Does the ordering
#    change when the model must generate text rather than pick a label?
# 3. Give the smallest methods a bigger budget than the default (printed in the first cell), e.g. `minift compare
#    --base tiny --task sentiment --methods ia3,loreft --epochs 20 --out runs/compare_long`. Do they catch up with
#    LoRA? Then halve the default budget: which methods suffer most?
# 4. Give LoRA a bigger rank (`minift finetune --method lora --rank 32 ...`): does accuracy rise with the
#    parameter count, or is rank 8 already enough for this task?
