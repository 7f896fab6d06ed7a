# %% [markdown]
# # Lesson 03 — Full fine-tuning: the learning rate, forgetting, overfitting, and freezing
#
# Lesson 02 pretrained a base model on general text. **Fine-tuning** continues training the same weights on a
# small task data set, turning the generalist into a specialist. *Full* fine-tuning updates every weight, with the
# same kind of gradient steps as pretraining, only on different data, usually with a smaller learning rate and
# for far fewer steps.
#
# The task here is `sentiment` (is a short post positive or negative?). A sentiment *classifier* is the base GPT
# plus a small new linear layer that reads its last token (lesson 04 takes that head apart); here we care about
# what training does to the weights underneath. We will
#
# 1. fine-tune with a sensible learning rate and with one ten times larger, and plot both runs' curves;
# 2. measure **catastrophic forgetting**: how much worse each fine-tuned model has become at its original job,
#    predicting the next token of pretraining text;
# 3. **overfit** a small training set (250 posts, 8 epochs) and let **early stopping** pick the best step;
# 4. freeze all but the last $k$ blocks: a cheaper fine-tuning that forgets less — does it still learn the task?
#
# Every run is one call, `minift.finetune.finetune(FinetuneConfig(...), out_dir)`, which writes `metrics.jsonl`
# (the curves) and `results.json` (test metrics, forgetting, costs) into its output directory. The lesson puts them
# in a temporary directory. Full mode uses the `tiny` base from lesson 02 and runs in about 2.5 minutes on 2 CPU
# cores; workshop mode (`MINIFT_DEMO=1`) the same base with fewer runs (about a minute and a half); quick mode
# (`MINIFT_QUICK=1`, a smoke test for the tests) the small `quick` base and a handful of steps, whose numbers mean
# nothing.

# %%
import atexit
import math
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minift.base import load_base
from minift.data import load_task_data
from minift.files import read_jsonl
from minift.finetune import FinetuneConfig, encode_labelled, finetune, load_finetuned
from minift.finetune.classify import classify_collate
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
PRESET = "quick" if QUICK else "tiny"
EPOCHS = pick(quick=0.25, demo=3.0, full=3.0)  # of the 500 training posts (batch 16: 32 steps per epoch)
EVAL_EVERY = pick(quick=2, demo=6, full=8)  # steps between validation measurements
LR_RIGHT, LR_HIGH = 5e-4, 5e-3
OUT = Path(tempfile.mkdtemp(prefix="minift_lesson03_"))  # runs go to a temporary directory, not the repository
atexit.register(shutil.rmtree, OUT, ignore_errors=True)  # ... removed when the script or the kernel ends
seed_everything(SEED)
projector_style()
print(f"mode: {MODE}; seed {SEED}; base: {PRESET}; {EPOCHS} epochs per run")


def run(name: str, **overrides) -> dict:
    """One full fine-tuning run on the sentiment task; returns results.json (plus the run's curves)."""
    settings = dict(base=PRESET, task="sentiment", method="full", lr=LR_RIGHT, epochs=EPOCHS, batch_size=16,
                    eval_every=EVAL_EVERY, seed=SEED)
    settings.update(overrides)
    res = finetune(FinetuneConfig(**settings), OUT / name, force=True, progress=False)
    history = read_jsonl(OUT / name / "metrics.jsonl")
    res["train_curve"] = [(r["step"], r["train_loss"]) for r in history if "train_loss" in r]
    res["val_curve"] = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    f = res["forgetting"]
    print(f"{name:<14} lr {res['lr']:.0e}: {res['steps']:3d} steps, "
          f"test accuracy {res['metrics']['test']['accuracy']:.1%}, pretraining loss {f['before_loss']:.3f} → "
          f"{f['after_loss']:.3f}, best val loss {res['val_loss']:.3f} at step {res['best_step']}")
    return res


# %% [markdown]
# ## 1. The learning rate: too high vs about right
#
# Fine-tuning starts from weights that already encode a lot. The step size decides whether training adjusts them
# or wrecks them. AdamW moves each weight by roughly $\eta$ per step whatever the gradient's scale (lesson 02), so
# with $\eta = 5\cdot10^{-3}$ every one of the model's millions of weights can move by about 0.005 per step —
# comparable to the size of the weights themselves (initialised with standard deviation 0.02). The base was
# pretrained with a peak of $3\cdot10^{-3}$, on random weights; a fine-tuning learning rate is typically several
# times *smaller* than the pretraining one. Both runs below use the same schedule (5 % warmup, cosine decay to
# $\eta/10$), the same batches and the same number of steps.

# %%
runs = {"lr right": run("lr_right", lr=LR_RIGHT), "lr too high": run("lr_high", lr=LR_HIGH)}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained", sharey=True)
for ax, (name, res) in zip(axes, runs.items()):
    ax.plot(*zip(*res["train_curve"]), label="training loss", alpha=0.8)
    ax.plot(*zip(*res["val_curve"]), "o-", label="validation loss")
    ax.axhline(math.log(2), color="grey", ls=":", label="ln 2 (a coin flip)")
    ax.set_title(f"{name} (lr {res['lr']:.0e}): test accuracy {res['metrics']['test']['accuracy']:.1%}")
    ax.set_xlabel("step")
    ax.legend()
axes[0].set_ylabel("cross-entropy")
plt.show()

# %% [markdown]
# **Look at** the two validation curves. With the right learning rate the validation loss falls well below
# $\ln 2 \approx 0.69$ — the loss of a classifier that says 50/50 to every post — and is still falling at the end.
# (The training loss is the loss of single batches, hence noisy; it runs below the validation loss because these
# are the posts being learned.) With the high learning rate, the large steps that follow warmup throw the model out
# of the good region its pretraining put it in: the validation loss never gets below $\ln 2$ and drifts upwards,
# and the model is no better than a coin. Training longer does not repair it; the damage is done in the
# weights. (`finetune` keeps the checkpoint with the lowest validation loss, so every number reported for this run
# — accuracy, forgetting — is that of its least bad checkpoint.)
#
# ## 2. Catastrophic forgetting
#
# A fine-tuned model is still a language model underneath: the classifier's body keeps its (tied) language-model
# head. Measure it on its old job, with the same held-out pretraining windows before and after fine-tuning:
#
# $$\Delta = \mathcal{L}_\text{pretrain}(\theta_\text{fine-tuned}) - \mathcal{L}_\text{pretrain}(\theta_\text{base})
#   \qquad \text{(and the perplexity ratio } e^{\Delta}\text{)}$$
#
# $\Delta > 0$ means the specialisation cost general ability. Nothing in fine-tuning asks the model to keep
# predicting text; whatever it keeps is what the small steps happened not to disturb.

# %%
names = list(runs)
before = [runs[n]["forgetting"]["before_loss"] for n in names]
after = [runs[n]["forgetting"]["after_loss"] for n in names]
for n, b, a in zip(names, before, after):
    print(f"{n:<12} pretraining loss {b:.3f} → {a:.3f}  (Δ = {a - b:+.3f}, perplexity × {math.exp(a - b):.2f})")
for n in names:
    report(f"{n}: test accuracy", runs[n]["metrics"]["test"]["accuracy"])
    report(f"{n}: Δ pretraining loss", runs[n]["forgetting"]["delta_loss"])
if not QUICK:
    claim("the high learning rate forgets far more than the right one",
          runs["lr too high"]["forgetting"]["delta_loss"] > 5 * runs["lr right"]["forgetting"]["delta_loss"])
    claim("the right learning rate learns the task (test accuracy above 75 %)",
          runs["lr right"]["metrics"]["test"]["accuracy"] > 0.75)
x = torch.arange(len(names))
fig, ax = plt.subplots(figsize=(6, 3.5))
bars_b = ax.bar(x - 0.2, before, 0.4, label="base, before", color="grey")
bars_a = ax.bar(x + 0.2, after, 0.4, label="after fine-tuning", color="tab:red")
ax.bar_label(bars_b, fmt="%.2f")
ax.bar_label(bars_a, fmt="%.2f")
ax.set_xticks(x, [f"{n}\n(lr {runs[n]['lr']:.0e})" for n in names])
ax.set_ylabel("loss on held-out pretraining text")
ax.set_yscale("log")
ax.legend()
plt.show()

# %% [markdown]
# The loss is a number; here is what it means. The same prompts, completed greedily by the base and by the body of
# each fine-tuned classifier (the classification head is not used; the GPT inside predicts tokens as before).

# %%
base, tok = load_base(PRESET, progress=False)
models = {"base": base}
for n, d in (("lr right", "lr_right"), ("lr too high", "lr_high")):
    clf, _, _ = load_finetuned(OUT / d)
    models[n] = clf.body
for prompt in ["Q: What is the capital of France?\nA:", "Customer: How much does a candle cost?\nShop assistant:"]:
    print(f"--- {prompt!r}")
    ids = torch.tensor([tok.encode(prompt)])
    for n, m in models.items():
        out = m.generate(ids, 16 if QUICK else 24, temperature=0.0, eos_id=tok.eos_id)
        print(f"  {n:<12}: {tok.decode(out[0, ids.size(1):].tolist())!r}")

# %% [markdown]
# **Look at** the numbers and the text together. A moderate learning rate costs a little (the loss rises by a
# fraction; the completions may stay fluent). The high one destroys the language model: the loss on ordinary text
# rises many-fold and the completions degrade into repetition or noise. Forgetting grows with how far the weights
# travel, and the learning rate is the main knob for that. Later lessons (LoRA, adapters) keep the base weights
# frozen altogether. That does **not** bound how much the fine-tuned model forgets while the adapter is on —
# lessons 06 and 09 measure LoRA forgetting as much as full fine-tuning, or more, at the same accuracy — but it
# makes forgetting *reversible*: switch the adapter off and the base is back, bit for bit.
#
# ## 3. Overfitting a small training set, and early stopping
#
# Train on half the posts (250) for 8 epochs: each post is seen 8 times, and after a few passes the model can lower
# the training loss by memorising those posts rather than by learning anything more that holds for new ones. The
# signal is the gap between the two curves: the training loss keeps falling while the validation loss (the 100
# validation posts, never trained on) turns and rises.
#
# **Early stopping** measures the validation loss every few steps, remembers the best checkpoint, and stops once
# it has not improved for `patience` evaluations in a row. The model you keep is the best checkpoint, not the last
# one. (`finetune` always reloads the best checkpoint at the end, with or without patience; patience only saves the
# wasted steps.) Both runs below see the same batches; the second stops early. The validation loss of 100 posts is
# noisy from one evaluation to the next, so patience is counted generously — ten evaluations, 40 steps: with five,
# this run stops at an early dip and keeps a checkpoint barely better than a coin.

# %%
SMALL = pick(quick=32, demo=250, full=250)  # training posts
small_epochs = pick(quick=2.0, demo=6.0, full=8.0)
small = dict(n_train=SMALL, lr=LR_RIGHT, epochs=small_epochs, eval_every=pick(quick=2, demo=4, full=4))
overfit = run("small_set", **small)
stopped = run("small_set_es", **small, patience=10)
print(f"without patience: {overfit['steps']} steps, stop reason: {overfit['stop_reason']}")
print(f"with patience 10: {stopped['steps']} steps, stop reason: {stopped['stop_reason']}; kept the checkpoint of "
      f"step {stopped['best_step']} (validation loss {stopped['val_loss']:.3f}; at the end of the long run it was "
      f"{overfit['final_val_loss']:.3f})")
claim("the kept checkpoint is the best evaluation, never a later one",
      stopped["val_loss"] == min(v for _, v in stopped["val_curve"]) and stopped["best_step"] <= stopped["steps"])
fig, ax = plt.subplots(figsize=(10, 4.5))
ax.plot(*zip(*overfit["train_curve"]), label=f"training loss ({SMALL} training posts)", color="tab:blue", alpha=0.6)
ax.plot(*zip(*overfit["val_curve"]), "o-", label="validation loss (100 validation posts)", color="tab:orange")
ax.axvline(overfit["best_step"], color="black", ls=":", label=f"best checkpoint (step {overfit['best_step']})")
ax.axvline(stopped["steps"], color="grey", ls="-.", label=f"patience 10 stops (step {stopped['steps']})")
ax.axhline(math.log(2), color="grey", ls="--", lw=1, label="ln 2 (a coin flip)")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy")
ax.set_ylim(bottom=0)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
plt.show()

# %% [markdown]
# The run kept its best checkpoint; its *last* one is in `last.pt` (the file a run resumes from). Score both on
# the 200 test posts: accuracy, the test loss, and the **confident mistakes** — posts the model gets wrong while
# giving the wrong label a probability above 0.9.

# %%
td = load_task_data("sentiment")


def score(clf) -> dict:
    """Test accuracy, test cross-entropy and confident mistakes (wrong with p > 0.9) of a classifier."""
    enc = encode_labelled(tok, td.splits["test"], td.labels, clf.config.block_size)
    probs, gold = [], []
    with torch.no_grad():
        for i in range(0, len(enc), 50):
            ids, mask, labels = classify_collate(tok.pad_id)(enc[i:i + 50])
            probs.append(torch.softmax(clf(ids, mask), dim=-1))
            gold.append(labels)
    probs, gold = torch.cat(probs), torch.cat(gold)
    wrong = probs.argmax(-1) != gold
    return {"accuracy": 1 - wrong.float().mean().item(),
            "test loss": -probs[torch.arange(len(gold)), gold].log().mean().item(),
            "confident mistakes": int((wrong & (probs.max(-1).values > 0.9)).sum())}


kept, _, _ = load_finetuned(OUT / "small_set")  # the best checkpoint
last, _, _ = load_finetuned(OUT / "small_set")
# last.pt is our own checkpoint (weights_only: no pickle); "model" holds every trained tensor
last.load_state_dict(torch.load(OUT / "small_set" / "last.pt", weights_only=True)["model"], strict=False)
checkpoints = {f"best (step {overfit['best_step']})": score(kept.eval()),
               f"last (step {overfit['steps']})": score(last.eval())}
for name, sc in checkpoints.items():
    print(f"{name:<16} test accuracy {sc['accuracy']:.1%}, test loss {sc['test loss']:.3f}, "
          f"confident mistakes {sc['confident mistakes']}")
(best_sc, last_sc) = checkpoints.values()
report("small set: best checkpoint's validation loss", overfit["val_loss"])
report("small set: last checkpoint's validation loss", overfit["final_val_loss"])
report("small set: best checkpoint's test accuracy", best_sc["accuracy"])
report("small set: last checkpoint's test accuracy", last_sc["accuracy"])
report("small set: confident mistakes, best → last", last_sc["confident mistakes"] - best_sc["confident mistakes"],
       fmt="+.0f")
if not QUICK:
    claim("the best checkpoint is genuinely good: validation loss below ln 2, accuracy far above the 50 % majority",
          overfit["val_loss"] < math.log(2) - 0.1 and best_sc["accuracy"] > 0.7)
    claim("the last checkpoint is genuinely worse: a higher test loss and more confident mistakes",
          last_sc["test loss"] > best_sc["test loss"] and last_sc["confident mistakes"] > best_sc["confident mistakes"])
print(f"(all 500 posts, {EPOCHS} epochs, section 1: {runs['lr right']['metrics']['test']['accuracy']:.1%})")

# %% [markdown]
# **Look at** where the curves part and at the two checkpoints. The training loss keeps falling towards zero: the
# model tells its 250 posts apart and has memorised their labels. The validation loss reaches its minimum well
# below ln 2 and then climbs. The last checkpoint is about as *accurate* as the best — often a point or two more:
# memorising a few hundred posts does not erase what they taught — but it is worse where it matters for trust: it
# has grown **confident** on every post, the ones it gets wrong included, so its test loss is higher and more of
# its mistakes come with a probability above 0.9. Overfitting shows first in the loss, before (and sometimes
# without) the accuracy. Early stopping keeps the checkpoint at the minimum and, with patience, saves the wasted
# steps. (Were accuracy all you ship, you could select the checkpoint on validation accuracy instead; minift
# selects on the loss, which also punishes overconfidence.) It cannot create knowledge the data does not contain,
# though: compare with section 1's run on all 500 posts. More (and more varied) data is the real cure; early
# stopping is the safeguard.
#
# ## 4. Freezing all but the last k blocks
#
# Updating every weight is the most expressive fine-tuning and the most expensive: AdamW keeps two extra numbers
# per trained weight, and every weight can drift. A cheap middle ground freezes the embeddings and the lower
# blocks and trains only the top $k$ blocks (plus the final LayerNorm and the new head): `freeze_until=k`.
# The lower layers of a transformer tend to hold general features (which token is which, local syntax) and the top
# ones the more task-specific combinations, so the top may be enough. And since the token embeddings (tied with the
# language-model head) and the lower blocks cannot move, the model should also forget less.

# %%
n_layer = base.config.n_layer
frozen = {k: run(f"top_{k}", freeze_until=k) for k in pick(quick=(0, 1), demo=(0,), full=(0, 1, 2))}
frozen[n_layer] = runs["lr right"]  # every weight trains: full fine-tuning
print(f"\n{'trained':<24} {'trainable':>11} {'test acc.':>10} {'Δ pretraining loss':>19}")
for k, res in frozen.items():
    what = "everything" if k == n_layer else f"last {k} block(s) + LN"
    print(f"{what:<24} {res['trainable_params']:>11,} {res['metrics']['test']['accuracy']:>10.1%} "
          f"{res['forgetting']['delta_loss']:>+19.3f}")
per_block = sum(p.numel() for p in base.blocks[0].parameters())
# the last k blocks + the final LayerNorm + the new head (2 labels × (d + 1))
claim("freeze_until=k trains k blocks, the final LayerNorm and the head, nothing else",
      all(frozen[k]["trainable_params"] == k * per_block + 2 * base.config.d_model + 2 * (base.config.d_model + 1)
          for k in frozen if k < n_layer))
report("top 0 blocks (a linear probe): test accuracy", frozen[0]["metrics"]["test"]["accuracy"])
report("top 0 blocks: Δ pretraining loss", frozen[0]["forgetting"]["delta_loss"])
report("every block: Δ pretraining loss", frozen[n_layer]["forgetting"]["delta_loss"])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
ks = list(frozen)
labels = [("all" if k == n_layer else f"top {k}") for k in ks]
axes[0].bar(labels, [frozen[k]["metrics"]["test"]["accuracy"] for k in ks], color="tab:blue")
axes[0].set_ylabel("test accuracy")
axes[0].set_ylim(0, 1)
axes[0].set_title("what is learned")
axes[1].bar(labels, [frozen[k]["forgetting"]["delta_loss"] for k in ks], color="tab:red")
axes[1].set_ylabel("Δ loss on pretraining text")
axes[1].set_title("what is forgotten")
for ax in axes:
    ax.set_xlabel("blocks trained")
plt.show()

# %% [markdown]
# **Look at** both panels together. With $k = 0$ only the final LayerNorm and the head learn (a few hundred
# numbers): the classifier must make do with the features the base already computes, a *linear probe* on the
# last token. At this learning rate that is not enough to leave chance, but it forgets nothing. Each block
# added buys accuracy; even two blocks forget very little, because the token embeddings — which double as the
# language model's output layer — stay frozen, whereas full fine-tuning moves them too and pays for the best
# accuracy with the largest forgetting. Between the extremes lies the trade-off you want. Every parameter-efficient
# method of the later lessons answers the same question in its own way: how few, and which, weights must change to
# learn the task?
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 48–50 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | lr right: test accuracy | 0.883 ± 0.008 (0.875 – 0.890) |
# | lr right: Δ pretraining loss | 0.256 ± 0.163 (0.144 – 0.469) |
# | lr too high: test accuracy | 0.473 ± 0.017 (0.450 – 0.485) |
# | lr too high: Δ pretraining loss | 8.10 ± 0.43 (7.72 – 8.59) |
# | small set: best checkpoint's validation loss | 0.433 ± 0.076 (0.380 – 0.532) |
# | small set: last checkpoint's validation loss | 0.518 ± 0.124 (0.384 – 0.632) |
# | small set: best checkpoint's test accuracy | 0.815 ± 0.045 (0.780 – 0.870) |
# | small set: last checkpoint's test accuracy | 0.835 ± 0.040 (0.805 – 0.885) |
# | small set: confident mistakes, best → last | 9.3 ± 4.5 (4.0 – 13.0) |
# | top 0 blocks (a linear probe): test accuracy | 0.517 ± 0.040 (0.475 – 0.555) |
# | top 0 blocks: Δ pretraining loss | 8.0e-06 (-1.1e-05–2.8e-05) |
# | every block: Δ pretraining loss | 0.256 ± 0.163 (0.144 – 0.469) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/03_full_finetuning.py` (each asks for one change, says what to
# expect, and solves it). More ideas to try on your own:
#
# 1. Sweep the learning rate over `1e-4, 3e-4, 1e-3, 2e-3` and plot test accuracy and Δ pretraining loss against
#    it. Where does forgetting start to grow fast? Is that also where accuracy drops?
# 2. Keep the high learning rate but give it a longer warmup (`warmup=30`): does a gentle start save the run?
# 3. Repeat section 3 with `n_train=64, 128, 256`: how many posts does the model need before the validation loss
#    follows the training loss down?
# 4. Add weight decay (`weight_decay=0.1`) to a full run: it pulls weights towards zero, not towards the pretrained
#    values. Does it change forgetting?
# 5. A linear probe needs larger steps: rerun `freeze_until=0` with `lr=5e-3`. How close does it get to the
#    top-1 run, and what does that say about the base's features?
# 6. From the command line: `minift finetune --base tiny --task sentiment --method full --freeze-until 1 --out
#    runs/top1`, then `minift eval runs/top1 --task sentiment`.
