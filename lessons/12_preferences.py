# %% [markdown]
# # Lesson 12 — Learning from preferences: a reward model, DPO and its family
#
# Supervised fine-tuning copies answers. But people can often say which of two answers is *better* more easily
# than they can write the best one — and a model that copied every answer it saw, rude ones included, needs to
# learn *preferences*, not more examples. This lesson, on minift's tiny base:
#
# 1. preference pairs: a prompt, a chosen and a rejected answer (the `polite` set: a shop assistant);
# 2. a reward model: the language model's body with a scalar head, trained so that chosen answers score higher;
# 3. DPO derived from the RLHF objective in three lines, and its step-0 loss of exactly ln 2;
# 4. a DPO run after an SFT step that imitated both answers: what the margin, and the chosen answers, do;
# 5. the family side by side — DPO, IPO, ORPO, KTO — judged on the answers the models actually write.
#
# Full mode uses the `tiny` base, about 2.5 minutes on 2 CPU cores; workshop mode (`MINIFT_DEMO=1`) the same base,
# judging 40 held-out prompts instead of 100 and comparing DPO with ORPO only, about a minute. Quick mode
# (`MINIFT_QUICK=1`, what the tests run) uses the small `quick` base and a few steps: a smoke test.

# %%
import json
import math

import matplotlib.pyplot as plt
import torch

from minift.align.config import AlignConfig, RewardConfig
from minift.align.losses import dpo_loss
from minift.align.objective import PreferenceConfig, Reference, disable_dropout, pair_loss_fn
from minift.align.pairs import collate_pairs, encode_pairs
from minift.align.reward_run import load_reward_model, score, train_reward
from minift.align.run import align
from minift.base import load_base
from minift.data.preferences import load_preferences
from minift.files import minift_home
from minift.finetune import get_template
from minift.finetune.templates import resolve_template_name
from minift.peft import apply_method, method_config

from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
BASE = "quick" if QUICK else "tiny"
FAST = pick(quick=dict(max_steps=3, n_train=16, n_eval=4, max_new_tokens=12), demo=dict(n_eval=40), full={})
FAST["seed"] = SEED
OUT = minift_home() / "lessons" / "12_preferences"  # kept: `minift reward score OUT/reward ...` works afterwards
projector_style()
print(f"mode: {MODE}; seed {SEED}; base {BASE}")

# %% [markdown]
# ## 1. Preference pairs
#
# Each record holds a prompt and two answers, one preferred. minift's `polite` set is generated from its small
# world (400 training pairs, 100 held-out ones with prompts never seen in training):

# %%
pairs = load_preferences("polite", "train")
for p in pairs[:3]:
    print(f"prompt:   {p['prompt']}\n  chosen:   {p['chosen']}\n  rejected: {p['rejected']}")

# %% [markdown]
# ## 2. A reward model
#
# RLHF (Ouyang et al., 2022) first learns a *reward*: a number r(x, y) for a prompt and an answer. It is the
# language model's body with a new head that reads one number at the last real token, trained so that
# P(chosen ≻ rejected) = σ(r_c − r_r) is high (the Bradley–Terry model): loss = −log σ(r_c − r_r).

# %%
rm_run = train_reward(RewardConfig(base=BASE, task="polite", threads=None, seed=SEED,
                                   **pick(quick={"max_steps": 3, "n_train": 16}, demo={}, full={})),
                      OUT / "reward", force=True, progress=False)
print(f"reward model: held-out pairs ranked right {rm_run['test']['accuracy']:.0%} "
      f"(mean margin {rm_run['test']['margin']:+.2f})")
rm, rm_tok, rm_template = load_reward_model(OUT / "reward")
answers = ["The kite is 10 dollars. Can I help you with anything else?", "Read the sign yourself.",
           "It is 10 dollars.", "10 dollars. Now stop asking me questions."]
for a, r in zip(answers, score(rm, rm_tok, rm_template, ["How much is the kite at the shop?"] * 4, answers)):
    print(f"  {r:+.2f}  {a}")
report("reward model: held-out pairs ranked right", rm_run["test"]["accuracy"])
if not QUICK:
    claim("the reward model ranks more than 95 % of held-out pairs right", rm_run["test"]["accuracy"] > 0.95)

# %% [markdown]
# Classic RLHF would now sample answers from the policy and push up those the reward model likes, with a penalty
# for drifting from the starting model (PPO). That is a reinforcement-learning loop with four models in memory.
#
# ## 3. DPO: the same objective, without the reward model
#
# RLHF maximises E[r(x, y)] − β·KL(π ‖ π_ref). Three lines (Rafailov et al., 2023):
#
# 1. its optimum is π*(y|x) = π_ref(y|x)·exp(r(x, y)/β) / Z(x);
# 2. so r(x, y) = β·log(π*(y|x)/π_ref(y|x)) + β·log Z(x) — a reward *implied* by a policy;
# 3. in the Bradley–Terry likelihood σ(r_c − r_r), Z(x) cancels: maximise σ(β·h) with
#    h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)).
#
# L_DPO = −log σ(βh): a classification loss on pairs, no sampling, no reward model. At the start the policy *is*
# the reference, so h = 0 and the loss is ln 2 — exactly, on any batch, provided dropout is off:

# %%
model, tok = load_base(BASE, progress=False)
apply_method(model, method_config("lora"))  # a new adapter: B = 0, so the policy equals the reference
disable_dropout(model)
template = get_template(resolve_template_name("auto", model.config.block_size, tok))  # as `minift align` picks it
enc, _ = encode_pairs(tok, pairs[:8], template, model.config.block_size)
batch = collate_pairs(tok.pad_id)(enc)
loss, n = pair_loss_fn(PreferenceConfig("dpo"), Reference(model))(model, batch)
print(f"step-0 DPO loss {loss.item() / n.item():.10f}; ln 2 = {math.log(2):.10f}")
claim("the DPO loss at step 0 is ln 2 (policy = reference, h = 0)", abs(loss.item() / n.item() - math.log(2)) < 1e-6)
h = torch.linspace(-30, 30, 200)
claim("−log σ(βh) is ln 2 at h = 0 and falls as h grows", abs(dpo_loss(torch.zeros(1), 0.1).item() - math.log(2))
      < 1e-6 and bool((dpo_loss(h, 0.1).diff() < 0).all()))
fig, ax = plt.subplots(figsize=(6, 3))
for beta in (0.1, 0.5):
    ax.plot(h, dpo_loss(h, beta), label=f"β = {beta}")
ax.axhline(math.log(2), color="0.7", linestyle=":")
ax.set_xlabel("h: how much more the policy prefers y_c than the reference does")
ax.set_ylabel("−log σ(βh)")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. A DPO run, and the chosen reward that goes down
#
# The pipeline: an SFT step that imitated *both* answers of every pair (a model that copied every shop assistant
# it saw, rude ones included), then DPO with a new LoRA whose reference is that SFT model. Every step logs the
# implicit rewards β·(log π − log π_ref) of the chosen and rejected answers.

# %%
dpo = align(AlignConfig(base=BASE, task="polite", method="dpo", sft_epochs=2, sft_on="both", **FAST),
            OUT / "dpo", force=True, progress=False)
steps = [json.loads(line) for line in (OUT / "dpo" / "preference.jsonl").read_text().splitlines()]
print(f"step 1 loss {steps[0]['loss']:.4f} (ln 2 = 0.6931); last {steps[-1]['loss']:.4f}")
print(f"held-out pairs ranked right: {dpo['pair_accuracy']:.0%}; judged good answers "
      f"{dpo['judge_reference']:.0%} (SFT model) → {dpo['judge_policy']:.0%} (DPO); win rate {dpo['win_rate']:.0%}")
fig, ax = plt.subplots(figsize=(7, 3.2))
for key, label in (("rewards_chosen", "reward of chosen"), ("rewards_rejected", "reward of rejected"),
                   ("margin", "margin")):
    ax.plot([s["step"] for s in steps], [s[key] for s in steps], label=label)
ax.axhline(0, color="0.7", linestyle=":")
ax.set_xlabel("step")
ax.legend()
plt.show()
for s in dpo["samples"][:3]:
    print(f"  {s['prompt']}\n    SFT: {s['reference']!r}\n    DPO: {s['policy']!r}")

# %% [markdown]
# **The chosen reward goes down** — a classic "is my DPO broken?" moment. It is not broken. The gradient of
# −log σ(βh) pushes log π(y_c) up and log π(y_r) down by the *same* amount; nothing holds log π(y_c) itself. After
# SFT the chosen answers are already likely, and the cheapest way to widen the margin is to push the rejected
# ones down hard while the chosen ones sag a little. The margin grows; both rewards can fall. (An SFT term on the
# chosen answers — `--opt sft_weight=1`, RPO — keeps them up.)
#
# ## 5. The family side by side
#
# IPO replaces the log-sigmoid by a squared distance to a target margin; ORPO drops the reference and adds the
# chosen answers' likelihood; KTO needs no pairs at all — each answer marked good or bad. The same SFT step, the
# same budget, judged on the answers each model writes to the 100 held-out prompts:

# %%
rows = {"dpo": dpo}
for method in pick(quick=("orpo",), demo=("orpo",), full=("ipo", "orpo", "kto")):
    rows[method] = align(AlignConfig(base=BASE, task="polite", method=method, sft_epochs=2, sft_on="both", **FAST),
                         OUT / method, force=True, progress=False)
print(f"{'method':<7}{'pairs':>7}{'chosen rw':>11}{'judged good':>13}{'win rate':>10}{'KL':>7}{'length':>13}")
for m, r in rows.items():
    print(f"{m:<7}{r['pair_accuracy']:>7.0%}{r['pair_rewards_chosen']:>+11.2f}"
          f"{r['judge_reference']:>6.0%} → {r['judge_policy']:<4.0%}{r['win_rate']:>10.0%}"
          f"{r['kl_policy_answers']:>7.2f}{r['length_reference']:>7.1f} → {r['length_policy']:.1f}")
report("SFT model: judged good", dpo["judge_reference"])
for m, r in rows.items():
    report(f"{m}: judged good", r["judge_policy"])
report("DPO: chosen reward on held-out pairs", dpo["pair_rewards_chosen"], fmt="+.2f")
if not QUICK:
    claim("ORPO writes better answers than the SFT model it started from",
          rows["orpo"]["judge_policy"] > rows["orpo"]["judge_reference"])

# %% [markdown]
# All of them learn to *rank* the held-out pairs; they differ in what they do to the *answers*. A method that also
# keeps the chosen answers likely (ORPO's NLL term, KTO's per-answer signal) writes better answers at a smaller
# KL from the reference; pure margin methods drift further and shorten the answers. docs/alignment.md has all nine
# methods measured.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 53–62 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | reward model: held-out pairs ranked right | 1.00 (every seed) |
# | SFT model: judged good | 0.533 ± 0.375 (0.150 – 0.900) |
# | dpo: judged good | 0.750 ± 0.188 (0.575 – 0.950) |
# | orpo: judged good | 0.808 ± 0.212 (0.525 – 0.950) |
# | DPO: chosen reward on held-out pairs | -0.557 ± 0.197 (-0.762 – -0.368) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/12_preferences.py` (each asks for one change, says what to
# expect, and solves it). More ideas to try on your own:
#
# 1. `minift align --task polite --method dpo --sft-epochs 2 --sft-on both --opt sft_weight=1 --out runs/rpo`:
#    does the chosen reward still fall?
# 2. `--task refusal`: refuse a customer's home address, answer everything else. Which methods over-refuse?
# 3. `minift align ... --reward-model OUT/reward`: does the reward model agree with the rules?
