# %% [markdown]
# # Lesson 02 — Pretraining: the loop, the optimizer, the schedule, the base model
#
# Lesson 01 looked inside a transformer. This lesson teaches it: **pretraining** is next-token prediction on a
# large amount of general text. We will
#
# 1. turn the built-in corpus into a token stream and cut it into training windows;
# 2. write the training loop in ten lines, then see that `minift.training.train` is that loop with bookkeeping;
# 3. race AdamW against plain SGD on the same model for the same number of steps;
# 4. plot the learning-rate schedule (warmup, then cosine decay);
# 5. pretrain (or load) the base model that every later lesson fine-tunes, and read its loss curve;
# 6. sample from it at a few temperatures.
#
# Quick mode (`MINIFT_QUICK=1`, used by the tests) shrinks everything to seconds. Full mode uses the `tiny` base,
# which `load_base` pretrains once (a few minutes on a 2-core CPU) and then caches under `$MINIFT_HOME`.

# %%
import math

import matplotlib.pyplot as plt
import torch

from minift.base import PRESETS, base_dir, load_base, pretraining_data, pretraining_val_loss
from minift.files import read_jsonl
from minift.model import GPT, GPTConfig
from minift.training import (AdamW, TrainConfig, clip_grad_norm, cosine_lr, lm_loss_fn, param_groups, random_windows,
                             seed_everything, train)
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
PRESET = "quick" if QUICK else "tiny"  # the base model we pretrain / load in section 5
STEPS = pick(quick=30, demo=300, full=300)  # steps of each small experiment in sections 2-3 (demo: already short)
seed_everything(SEED)
projector_style()
print(f"mode: {MODE}; seed {SEED}; base preset: {PRESET}; {STEPS} steps per small experiment")

# %% [markdown]
# ## 1. Data: one long stream of tokens
#
# Pretraining data needs no labels: the text is its own supervision. The documents are tokenised and concatenated
# into one stream, each followed by `<|endoftext|>` so the model learns where a text ends. A training example is
# any window of $T+1$ consecutive tokens: the input is the first $T$, the target the last $T$ (the same window
# shifted by one), so one window holds $T$ next-token questions:
#
# $$x = (s_i, \dots, s_{i+T-1}) \qquad y = (s_{i+1}, \dots, s_{i+T})$$
#
# `random_windows` draws a batch of such windows at random start positions; batch number $i$ is a pure function of
# $(\text{seed}, i)$, which is what makes a training run resumable. `pretraining_data` builds the stream and a fixed
# set of held-out validation windows for a preset (here the small `quick` one, for the experiments).

# %%
data = pretraining_data("quick")
tok = data.tokenizer
print(f"tokenizer: {tok.vocab_size} tokens; training stream: {len(data.train_tokens):,} tokens; "
      f"validation: {sum(x.numel() for x, _ in data.val_batches):,} tokens")
BLOCK, BATCH = 64, 16
batches = random_windows(data.train_tokens, BLOCK, BATCH, seed=SEED)
x, y = batches(0)
print("x:", tuple(x.shape), " y:", tuple(y.shape))
print("input :", repr(tok.decode(x[0, :16].tolist())))
print("target:", repr(tok.decode(y[0, :16].tolist())))
claim("the target is the input shifted by one token", torch.equal(x[0, 1:], y[0, :-1]))

# %% [markdown]
# ## 2. The training loop
#
# One step of gradient descent on the mean next-token cross-entropy
# $\mathcal{L}(\theta) = -\frac{1}{N}\sum_i \log p_\theta(y_i \mid x_{\le i})$:
#
# 1. set the learning rate for this step (the schedule, section 4);
# 2. forward: compute the loss on a batch;
# 3. backward: `loss.backward()` fills `p.grad` with $\nabla_\theta \mathcal{L}$;
# 4. clip: if the global gradient norm $\|g\|$ exceeds 1, scale all gradients down together (a safety belt
#    against a rare huge step);
# 5. update: `opt.step()` moves the weights; then clear the gradients.
#
# Here it is, written out with minift's pieces. `lm_loss_fn` returns the *summed* loss and the number of target
# tokens (that convention makes gradient accumulation exact; see `minift/training/loop.py`).

# %%
CFG = GPTConfig(vocab_size=tok.vocab_size, block_size=BLOCK, n_layer=2, n_head=2, d_model=64)
LR, WARMUP = 3e-3, STEPS // 10
val_batches = data.val_batches


def train_by_hand(make_optimizer, steps: int = STEPS, schedule: bool = True, seed: int = SEED) -> list[float]:
    """Train a fresh model with the given optimizer; return the training loss of every step."""
    seed_everything(seed)
    model = GPT(CFG)
    opt = make_optimizer(model)
    peak = opt.param_groups[0]["lr"]
    losses = []
    model.train()
    for step in range(steps):
        lr = cosine_lr(step, peak, WARMUP, steps, peak / 10) if schedule else peak
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum, n = lm_loss_fn(model, batches(step))
        (loss_sum / n).backward()
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss_sum.item() / n)
    return losses


def adamw(model):
    return AdamW(param_groups(model, 0.1), lr=LR, betas=(0.9, 0.95), weight_decay=0.1)


hand = train_by_hand(adamw)
print(f"initial loss {hand[0]:.3f} (ln V = {math.log(tok.vocab_size):.3f}); after {STEPS} steps {hand[-1]:.3f}")

# %% [markdown]
# `minift.training.train` runs the same loop and adds what a real run needs: gradient accumulation, periodic
# evaluation on held-out data, logging to `metrics.jsonl`, checkpoints (`last.pt` to resume, `best.pt` at the lowest
# validation loss), a progress bar, bf16 autocast on a GPU. With the same settings it takes the same steps, so the
# two loss curves should lie on top of each other (up to float rounding: `train` divides the summed loss after the
# backward pass instead of before).

# %%
seed_everything(SEED)
model = GPT(CFG)
tcfg = TrainConfig(max_steps=STEPS, lr=LR, min_lr=LR / 10, warmup_steps=WARMUP, weight_decay=0.1,
                   betas=(0.9, 0.95), grad_clip=1.0, eval_every=max(STEPS // 4, 1), log_every=1, device="cpu",
                   progress=False, seed=SEED)
result = train(model, lm_loss_fn, batches, tcfg, val_batches=val_batches)
lib = [r["train_loss"] for r in result.history if "train_loss" in r]
vals = [(r["step"], r["val_loss"]) for r in result.history if "val_loss" in r]
print(f"train(): {result.steps} steps, {result.tokens_seen:,} input tokens; best validation loss "
      f"{result.best_val_loss:.3f} at step {result.best_step}")
gap = max(abs(a - b) for a, b in zip(hand, lib))
print(f"largest |hand − train()| over all {len(lib)} steps: {gap:.2e}")
claim("the loop by hand and minift.training.train take the same steps", len(lib) == STEPS and gap < 1e-3,
      f"largest gap {gap:.1e}")

fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.plot(range(1, STEPS + 1), hand, label="loop by hand", lw=3, alpha=0.5)
ax.plot(range(1, STEPS + 1), lib, "--", label="minift.training.train")
ax.plot(*zip(*vals), "o", label="validation loss (train())")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats/token)")
ax.legend()
plt.show()

# %% [markdown]
# **Look at** the first loss: close to $\ln V$, the loss of a uniform guess over the vocabulary — a freshly
# initialised model knows nothing. Then it drops fast (the model learns which tokens are common, then which
# follow which) and keeps falling slowly. Validation loss close to training loss means the model is not yet
# memorising its training windows.
#
# ## 3. AdamW against plain SGD
#
# Stochastic gradient descent moves every weight by the same multiple of its gradient:
#
# $$\theta \leftarrow \theta - \eta\, g$$
#
# AdamW (Loshchilov & Hutter, 2019) keeps running averages of the gradient and of its square and moves each weight
# by their ratio, plus a *decoupled* weight decay $\lambda$:
#
# $$m \leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2$$
#
# $$\theta \leftarrow \theta(1 - \eta\lambda) - \eta\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}$$
#
# The ratio $m/\sqrt{v}$ is about ±1 for a weight whose gradient points the same way step after step, however small
# that gradient is, so every weight moves at a similar pace. Transformers have weights with very different gradient
# scales (embeddings of rare tokens, LayerNorm gains, deep layers), which is where a single SGD step size struggles:
# small enough to be stable for the largest gradients is far too small for the rest.
#
# Same model, same initial weights, same batches, same schedule shape and clipping, same number of steps; only the
# optimizer changes. SGD gets learning rates far larger than AdamW's (its steps are the raw gradient times η, and
# the gradients are small), and one run with momentum, $v \leftarrow \mu v + g,\ \theta \leftarrow \theta - \eta v$.

# %%
runs = {
    "AdamW lr 3e-3": hand,
    "SGD lr 0.1": train_by_hand(lambda m: torch.optim.SGD(m.parameters(), lr=0.1)),
    "SGD lr 1.0": train_by_hand(lambda m: torch.optim.SGD(m.parameters(), lr=1.0)),
    "SGD + momentum 0.9, lr 0.1": train_by_hand(lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)),
}
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for name, losses in runs.items():
    ax.plot(range(1, STEPS + 1), losses, label=name)
    report(f"{name}: loss after {STEPS} steps (mean of the last 5)", sum(losses[-5:]) / 5)
ax.set_xlabel("step")
ax.set_ylabel("training loss")
ax.legend()
plt.show()
if not QUICK:  # 30 steps of quick mode are too few to tell the optimizers apart
    final = {name: sum(losses[-5:]) / 5 for name, losses in runs.items()}
    claim("AdamW ends lower than every SGD variant", all(final["AdamW lr 3e-3"] < v for k, v in final.items()
                                                         if k.startswith("SGD")))

# %% [markdown]
# **Look at** how far apart the curves end: for the same compute, AdamW reaches a loss SGD needs many more steps
# (or a carefully tuned learning rate and momentum) to reach. That is why essentially every language model is
# trained with Adam-style optimizers, and why fine-tuning (later lessons) uses AdamW too.
#
# ## 4. The learning-rate schedule
#
# The learning rate is not constant. `cosine_lr` (nanoGPT's schedule) has three phases, for warmup $W$, horizon $D$:
#
# $$\eta(s) = \begin{cases} \eta_\max \frac{s+1}{W+1} & s < W \quad\text{(linear warmup)}\\
#   \eta_\min + \tfrac12\big(1 + \cos(\pi \tfrac{s-W}{D-W})\big)(\eta_\max - \eta_\min) & W \le s < D \\
#   \eta_\min & s \ge D \end{cases}$$
#
# *Warmup*: at the start Adam's second-moment estimate $v$ rests on a few gradients and is noisy, and the random
# weights produce large gradients; small first steps avoid a destructive jump. *Cosine decay*: large steps explore
# early; small steps late let the weights settle into a minimum instead of bouncing around it.
# Below: the schedule of the `tiny` base model's pretraining, and the lr that `train()` actually used in section 2.

# %%
tiny = PRESETS["tiny"].train
sched = [cosine_lr(s, tiny.lr, tiny.warmup_steps, tiny.max_steps, tiny.floor_lr) for s in range(tiny.max_steps)]
print(f"tiny preset: peak {tiny.lr}, warmup {tiny.warmup_steps} steps, {tiny.max_steps} steps, floor {tiny.floor_lr}")
print(f"lr at steps 0, {tiny.warmup_steps}, {tiny.max_steps // 2}, {tiny.max_steps - 1}: "
      + ", ".join(f"{sched[s]:.2e}" for s in (0, tiny.warmup_steps, tiny.max_steps // 2, tiny.max_steps - 1)))
used = [(r["step"], r["lr"]) for r in result.history if "lr" in r]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.3), layout="constrained")
axes[0].plot(sched)
axes[0].axvline(tiny.warmup_steps, color="grey", ls=":", label="end of warmup")
axes[0].set_title("cosine_lr, tiny preset")
axes[0].legend()
axes[1].plot([s for s, _ in used], [lr for _, lr in used], ".", label="lr logged by train()")
axes[1].plot(range(1, STEPS + 1), [cosine_lr(s, LR, WARMUP, STEPS, LR / 10) for s in range(STEPS)], lw=1,
             label="cosine_lr(step − 1)")
axes[1].set_title("section 2's run")
axes[1].legend()
for ax in axes:
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
plt.show()

# %% [markdown]
# ## 5. Pretraining the base model
#
# Now the real run: the same loop (`minift.base.pretrain` calls `train`), a bigger model on much more text, for
# more steps — the `tiny` preset, whose settings the next cell prints. `load_base` pretrains it once and caches the
# result (weights, tokenizer, training log) under `$MINIFT_HOME`; afterwards it just loads it. In quick mode we use
# the `quick` preset (seconds; it learns little more than the shapes of words).
#
# ### Why pretrain at all? The "liberal-arts education"
#
# Pretraining is the model's general education. Predicting the next token of *every* kind of text in the corpus —
# stories, encyclopedia paragraphs, questions and answers, shop dialogues, reviews — forces it to learn the grammar
# of the language, the facts of its world (Paris is the capital of France, cows eat grass, a teapot costs 19
# dollars), the shapes of many formats, and even which words signal a happy or an angry review. None of that was
# labelled; it is all a by-product of guessing the next word well.
#
# Fine-tuning is the specialisation that comes after: a few hundred examples teach the model to *use* what it
# already knows in a particular way — to answer questions in one format, to classify sentiment, to follow
# instructions. That is why fine-tuning needs so little data and can change so few parameters (LoRA and friends,
# later lessons): the knowledge is already there, and it only needs directing. A model that skipped this education
# would have to learn the language and the facts from the handful of fine-tuning examples, and cannot.

# %%
preset = PRESETS[PRESET]
print(f"preset '{PRESET}': {preset.n_docs:,} documents, vocabulary {preset.vocab_size}, model {preset.model}, "
      f"batch {preset.batch_size}, {preset.train.max_steps} steps at peak lr {preset.train.lr}")
base, base_tok = load_base(PRESET, progress=not QUICK)  # pretrains on the first call only
metrics = read_jsonl(base_dir(PRESET) / "metrics.jsonl")
tr = [(r["step"], r["train_loss"]) for r in metrics if "train_loss" in r]
va = [(r["step"], r["val_loss"]) for r in metrics if "val_loss" in r]
print(f"base '{PRESET}': {base.num_parameters():,} parameters, config {base.config}")
best_val = min(v for _, v in va)
report(f"{PRESET} base: best validation loss", best_val)
print(f"pretrained for {tr[-1][0]} steps; final training loss {tr[-1][1]:.3f}; best validation loss "
      f"{best_val:.3f} (perplexity {math.exp(best_val):.1f}; a uniform guess has perplexity V = {base_tok.vocab_size})")
fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.plot(*zip(*tr), label="training loss")
ax.plot(*zip(*va), "o-", label="validation loss")
ax.axhline(math.log(base_tok.vocab_size), color="grey", ls=":", label="ln V (uniform guess)")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats/token)")
ax.set_title(f"pretraining the {PRESET} base")
ax.legend()
plt.show()

# %% [markdown]
# **Perplexity** $e^{\mathcal{L}}$ is the loss in more intuitive units: the model is as uncertain as if it chose
# uniformly among that many tokens at every step. Compare it with $V$, the perplexity of a uniform guess: the
# further below $V$, the more of the next token the model predicts from the context. **Look at** the gap between
# the two curves too: validation loss well above training loss would mean memorising rather than learning.
#
# ## 6. Sampling from the base model
#
# `model.generate` repeats: run the model on the text so far, take the last position's logits $z$, pick the next
# token from $\text{softmax}(z / \tau)$, append it. The **temperature** $\tau$ reshapes the distribution:
# $\tau \to 0$ always picks the most likely token (greedy: fluent but repetitive), $\tau = 1$ samples from the
# model's own distribution, $\tau > 1$ flattens it (more surprising, more mistakes). Each temperature restarts
# the random generator from the same seed, so the differences between the blocks come from $\tau$ alone.

# %%
prompts = ["The capital of France is", "Paris is the capital of", "Sam and Rosa went on a trip to",
           "Customer: How much does a candle cost?\nShop assistant:"]
n_new = 24 if QUICK else 40
for temperature in (0.0, 0.7, 1.0, 1.5):
    print(f"===== temperature {temperature} =====")
    g = torch.Generator().manual_seed(0)
    for prompt in prompts:
        ids = torch.tensor([base_tok.encode(prompt)])
        out = base.generate(ids, n_new, temperature=temperature, eos_id=base_tok.eos_id, generator=g)
        print(repr(base_tok.decode(out[0].tolist())))

for prompt, answer in (("The capital of France is", " Paris"), ("Paris is the capital of", " France")):
    with torch.no_grad():
        probs = torch.softmax(base(torch.tensor([base_tok.encode(prompt)]))[0][0, -1], dim=-1)
    first = base_tok.encode(answer)[0]  # the answer's first token
    rank = int((probs > probs[first]).sum()) + 1
    print(f"{prompt!r} → {answer!r}: probability {probs[first]:.3f}, rank {rank} of {base_tok.vocab_size}")

# %% [markdown]
# **Look at** the greedy lines (temperature 0): does the base complete "The capital of France is" with the right
# city, and "Paris is the capital of" with the right country? Often it does not. Where does the right answer rank
# among the base's guesses for the next token? The cell below counts it: a rank of 1 would be the greedy choice.
# (Lesson 01 printed the `tiny` base's top 5 after "The capital of France is": ` an`, ` story`, ` 10`, ` short`,
# `Me` — no city at all. The corpus states facts as "Paris is the capital of France.", never in that order, so the
# base has no reason to expect a city there.) A
# small model pretrained for minutes has learned the grammar and the formats of its world better than the facts,
# and nothing has taught it that a sentence like this is a question to be answered. Does the shop dialogue
# continue as a dialogue, with a consistent price? (The `quick` base of quick mode has had a few seconds of
# education and mostly produces word-shaped noise; the `tiny` base of full mode writes sentences.)
# As the temperature rises, where does the grammar start to break? Note what a base model does *not* do: it
# continues text, it does not follow instructions — asked a question, it may well continue with another question,
# because nothing has taught it to answer. That is the job of fine-tuning (the next lessons).
#
# Finally, the number every later lesson will watch: the base's loss on held-out pretraining text
# (`pretraining_val_loss`). When we fine-tune, a rise of this number measures how much general knowledge the
# specialisation costs ("forgetting").

# %%
probe = pretraining_val_loss(base, base_tok, PRESET)
claim("the probe every later lesson uses is the base's validation loss", abs(probe - best_val) < 0.02,
      f"{probe:.3f} vs {best_val:.3f}")
print(f"validation loss of the {PRESET} base on held-out pretraining text: {probe:.3f} "
      f"(perplexity {math.exp(probe):.1f})")

# %% [markdown]
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 49–59 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | AdamW lr 3e-3: loss after 300 steps (mean of the last 5) | 2.41 ± 0.05 (2.37 – 2.47) |
# | SGD lr 0.1: loss after 300 steps (mean of the last 5) | 4.47 ± 0.03 (4.43 – 4.49) |
# | SGD lr 1.0: loss after 300 steps (mean of the last 5) | 3.25 ± 0.06 (3.18 – 3.30) |
# | SGD + momentum 0.9, lr 0.1: loss after 300 steps (mean of the last 5) | 2.89 ± 0.05 (2.85 – 2.95) |
# | tiny base: best validation loss | 0.507 (every seed) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/02_pretraining.py` (each asks for one change, says what to
# expect, and solves it). More ideas to try on your own:
#
# 1. In section 3, give SGD momentum and a higher learning rate: can you match AdamW? How sensitive is it?
# 2. Set `schedule=False` in `train_by_hand` (constant learning rate) and compare the final loss with and without
#    the cosine schedule; then try `WARMUP = 0` with a larger `LR` such as 1e-2.
# 3. Set the AdamW weight decay to 0 and to 1.0 in `adamw`: what happens to the training loss, and to the norm of
#    the weights (`sum(p.norm()**2 for p in model.parameters())`)?
# 4. Pretrain your own base from the command line: `minift pretrain --out runs/my_base --preset tiny --max-steps
#    300`, then `minift generate runs/my_base --prompt "The capital of Spain is"`. How does the text change
#    with fewer steps?
# 5. Sample with `top_k=5` at temperature 1.5: does cutting off the unlikely tokens fix the broken grammar?
