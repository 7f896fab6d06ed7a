# %% [markdown]
# # Lesson 02 — exercises with worked solutions
#
# Each exercise changes one setting of lesson 02's small pretraining runs (a 2-block model on the `quick` corpus)
# and says what to expect; the solution runs it with `minift.training.train`. Full mode: 300 steps per run, about a
# minute on 2 CPU cores; `MINIFT_QUICK=1`: 20 steps, a smoke test.

# %%
import torch

from minift.base import pretraining_data
from minift.model import GPT, GPTConfig
from minift.training import TrainConfig, lm_loss_fn, random_windows, seed_everything, train
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
STEPS = pick(quick=20, demo=300, full=300)
data = pretraining_data("quick")
batches = random_windows(data.train_tokens, 64, 16, seed=SEED)
CFG = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=64, n_layer=2, n_head=2, d_model=64)
print(f"mode: {MODE}; seed {SEED}; {STEPS} steps per run")


def pretrain(**settings) -> tuple[float, float]:
    """Train a fresh small model; return (mean training loss of the last 20 steps, weight norm ‖θ‖)."""
    seed_everything(SEED)
    model = GPT(CFG)
    cfg = dict(max_steps=STEPS, lr=3e-3, warmup_steps=STEPS // 10, weight_decay=0.1, betas=(0.9, 0.95),
               eval_every=10**6, log_every=1, device="cpu", progress=False, seed=SEED)
    cfg.update(settings)
    result = train(model, lm_loss_fn, batches, TrainConfig(**cfg))
    losses = [r["train_loss"] for r in result.history if "train_loss" in r]
    return sum(losses[-20:]) / len(losses[-20:]), float(torch.cat([p.detach().flatten() for p in model.parameters()]).norm())


# %% [markdown]
# **Exercise 1 — the schedule.** Train once with lesson 02's cosine schedule and once at a constant learning rate
# (`min_lr` equal to the peak). *Expect* — predict before you run it: the usual answer is that the constant rate
# ends higher, because late large steps bounce around the minimum while the cosine's small ones settle into it.

# %%
cosine, _ = pretrain()
constant, _ = pretrain(min_lr=3e-3)
report("final loss, cosine schedule", cosine)
report("final loss, constant lr", constant)

# %% [markdown]
# *Solution.* The usual answer is wrong here: after 300 steps the constant rate ends *lower* (full mode, seed 0:
# 2.08 against 2.42). The run is far from any minimum — the loss is still falling fast — and the cosine spends its
# last hundred steps at a fraction of the peak, learning slowly. Decay pays off when a run is long enough to reach
# the floor of the loss, where large steps only bounce; for a short budget, a schedule that decays too early costs
# progress. A schedule is a hyperparameter to measure, not a ritual.
#
# **Exercise 2 — weight decay.** AdamW's decoupled weight decay shrinks every weight by lr·λ·θ per step. Train with
# λ = 0, 0.1 (the lesson's) and 1.0. *Expect:* the weight norm falls as λ grows; a little decay costs nothing in
# loss, a lot of it holds the model back.

# %%
runs = {wd: pretrain(weight_decay=wd) for wd in (0.0, 0.1, 1.0)}
for wd, (loss, norm) in runs.items():
    report(f"weight decay {wd}: final loss", loss)
    report(f"weight decay {wd}: ‖θ‖", norm, fmt=".1f")
claim("more weight decay, smaller weights", runs[1.0][1] < runs[0.1][1] < runs[0.0][1])

# %% [markdown]
# *Solution.* The weight norm shrinks as λ grows (workshop mode, seed 0: ‖θ‖ 33.6, 33.2, 30.4); λ = 0.1 costs no
# loss (2.42 against 2.41 without decay) and λ = 1.0 does (2.56): over 300 steps at lr 3e-3 a little decay has
# little time to act, and a lot of it holds the model back. Over a long
# pretraining, decay is what keeps the weights from growing without bound. minift decays every matrix, the
# embeddings included, and no bias or LayerNorm (`param_groups`, nanoGPT's rule): shrinking a shift or a gain
# towards 0 regularises nothing.
