# %% [markdown]
# # Lesson 13 — RL with verifiable rewards: GRPO, and how it goes wrong
#
# Lesson 12 learned from *fixed* pairs of answers. Reinforcement learning lets the model write its own answers and
# learns from how good they were. When a program can check an answer — the right price, the refusal string, valid
# JSON — no reward model is needed: the reward is a rule. GRPO (Shao et al., 2024) samples a *group* of answers to
# each prompt and uses the group itself as the baseline. This lesson, on minift's tiny base and the `polite` set:
#
# 1. rewards as pure functions, and the sanity check that stops a buggy one before it trains anything;
# 2. a GRPO run: the reward rises while the loss stays ≈ 0 — why;
# 3. G = 2 against G = 8 at the same number of sampled answers per step;
# 4. reward hacking: pay a little for length, and watch what the model optimises.
#
# Full mode uses the `tiny` base, 60 steps per run, about 3 minutes on 2 CPU cores; workshop mode (`MINIFT_DEMO=1`)
# judges 40 held-out prompts instead of 100 and skips section 3's G = 2 against G = 8 (fewer than 60 steps show
# nothing: GRPO needs them). Quick mode (`MINIFT_QUICK=1`, what the tests run) uses the small `quick` base and 2
# steps per run: a smoke test.

# %%
import json
import warnings

import matplotlib.pyplot as plt

from minift.align.config import AlignConfig
from minift.align.judges import judge_polite
from minift.align.rl import sanity_check
from minift.align.run import align
from minift.data.preferences import load_preferences
from minift.errors import ConfigError
from minift.files import minift_home

from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
BASE = "quick" if QUICK else "tiny"
STEPS = pick(quick=2, demo=60, full=60)
OUT = minift_home() / "lessons" / "13_rl"  # kept after the lesson: each run's steps.jsonl can be read again
COMMON = dict(base=BASE, task="polite", sft_epochs=2, sft_on="both", max_steps=STEPS, seed=SEED,
              **pick(quick=dict(n_train=16, n_eval=4, max_new_tokens=12), demo=dict(n_eval=40), full={}))
projector_style()
print(f"mode: {MODE}; seed {SEED}; base {BASE}; {STEPS} steps per run")
# a step whose groups all scored equally has nothing to learn and is skipped; the runs below count those groups
warnings.filterwarnings("ignore", message=".*nothing to learn from")


def steps_of(name):
    return [json.loads(line) for line in (OUT / name / "preference.jsonl").read_text().splitlines()]


# %% [markdown]
# ## 1. A reward is a function — test it like one
#
# The `polite` rule pays 1 for an answer with no rude phrase that states the right price, 0 otherwise. Before any
# training, minift scores every training pair's known-good (chosen) and known-bad (rejected) answer and refuses to
# start unless the good ones win at least 90 % of the time. A reward that pays for a *format* — here, mentioning
# a price at all — looks reasonable and is wrong: rude answers that state the price score as well.

# %%
pair = {"prompt": "How much is the kite?", "chosen": "The kite is 10 dollars. Can I help you with anything else?"}
for answer in ("It is 10 dollars. Have a nice day!", "10 dollars. Now stop asking me questions.", "It is 12 dollars."):
    print(f"  {judge_polite(pair, answer):.0f}  {answer}")
pairs = load_preferences("polite", "train")
print("the rule:", sanity_check(judge_polite, pairs))
claim("the rule pays a polite right price and nothing for a rude one",
      judge_polite(pair, "It is 10 dollars. Have a nice day!") == 1
      and judge_polite(pair, "10 dollars. Now stop asking me questions.") == 0)


def mentions_price(record, answer):
    return float("dollars" in answer)


try:
    sanity_check(mentions_price, pairs)
    refused = False
except ConfigError as e:
    print("the format reward:", e)
    refused = True
claim("the sanity check refuses a reward that pays for the format", refused)

# %% [markdown]
# ## 2. GRPO: sample, score, compare within the group
#
# For each prompt, sample G answers (temperature 1) and reward each. An answer's advantage is its reward minus
# the group's mean, divided by the group's standard deviation: better than its siblings → pushed up, worse →
# pushed down. A group whose answers all scored the same teaches nothing and is skipped. The reference for the KL
# penalty is the SFT model (the new LoRA switched off).

# %%
grpo = align(AlignConfig(method="grpo", options={"group": 4}, batch_size=4, **COMMON), OUT / "grpo", force=True,
             progress=False)
log = steps_of("grpo")
print(f"reward check: good {grpo['sanity']['good_mean']:.2f}, bad {grpo['sanity']['bad_mean']:.2f}")
print(f"judged good answers (greedy, held-out prompts): {grpo['judge_reference']:.0%} (SFT) → "
      f"{grpo['judge_policy']:.0%} (GRPO); win rate {grpo['win_rate']:.0%}")
report("GRPO (G 4): judged good before", grpo["judge_reference"])
report("GRPO (G 4): judged good after", grpo["judge_policy"])
if not QUICK:
    claim("GRPO raises the share of judged-good answers", grpo["judge_policy"] > grpo["judge_reference"])
fig, ax = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
ax[0].plot([s["step"] for s in log], [s["reward"] for s in log], label="mean reward of the samples")
ax[0].plot([s["step"] for s in log], [s["zero_spread"] for s in log], label="share of groups with equal rewards")
ax[0].legend()
ax[1].plot([s["step"] for s in log], [s["loss"] for s in log], color="C3")
ax[1].set_title("the loss", fontsize=9)
for a in ax:
    a.set_xlabel("step")
plt.show()

# %% [markdown]
# **Why is the loss ≈ 0 while the model learns?** With one update per sampled batch, the probability ratio
# ρ = π_θ/π_old is exactly 1 in value (π_old is the same model, detached) — but its gradient is ∇log π. The loss
# value is then −mean(Â) + β·KL, and advantages are centred in every group, so the value hovers at zero while
# the gradient pushes good answers up and bad ones down. Watch the reward, not the loss.
#
# ## 3. G = 2 against G = 8
#
# Both runs sample 16 answers per step: 8 prompts × 2 answers, or 2 prompts × 8 answers. Two answers are the
# cheapest contrast — GRPO with G = 2 is a pairwise comparison, DPO's shape — but a pair of equal rewards teaches
# nothing — and with a decent SFT model that happens most of the time.

# %%
runs = {}
for g, prompts in pick(quick=((2, 8), (8, 2)), demo=(), full=((2, 8), (8, 2))):
    runs[g] = align(AlignConfig(method="grpo", options={"group": g}, batch_size=prompts, **COMMON), OUT / f"g{g}",
                    force=True, progress=False)
    s = steps_of(f"g{g}")
    print(f"G = {g}: judged good {runs[g]['judge_reference']:.0%} → {runs[g]['judge_policy']:.0%}; mean sample reward "
          f"{sum(x['reward'] for x in s) / len(s):.2f}; groups with equal rewards "
          f"{sum(x['zero_spread'] for x in s) / len(s):.0%}; {runs[g]['train_seconds']:.0f} s")
    report(f"G = {g}: judged good after", runs[g]["judge_policy"])
    report(f"G = {g}: share of groups with equal rewards", sum(x["zero_spread"] for x in s) / len(s))
if MODE == "demo":
    print("workshop mode skips this comparison (the notebook, run in full mode, shows it)")

# %% [markdown]
# ## 4. Reward hacking
#
# Now add a bonus for length — 0.1 per word, the kind of "longer answers are more helpful" shortcut a learned
# reward model can pick up on its own. The model optimises what it is paid for:

# %%
def polite_and_long(record, answer):
    return judge_polite(record, answer) + 0.1 * min(len(answer.split()), 40)


hacked = align(AlignConfig(method="grpo", options={"group": 4}, batch_size=4, **COMMON), OUT / "hacked",
               force=True, progress=False, reward=polite_and_long)
for name, r in (("honest reward", grpo), ("+ length bonus", hacked)):
    print(f"{name:<15} answer length {r['length_reference']:.1f} → {r['length_policy']:.1f} tokens; "
          f"judged good {r['judge_reference']:.0%} → {r['judge_policy']:.0%}")
for s in hacked["samples"][:3]:
    print(f"  {s['prompt']}\n    → {s['policy']!r}")
report("length bonus: answer length (tokens)", hacked["length_policy"], fmt=".1f")
report("length bonus: judged good", hacked["judge_policy"])
if MODE == "full":  # the notebook's run; on other seeds and budgets see the text below
    claim("paid for length, the model writes longer and worse answers",
          hacked["length_policy"] > grpo["length_policy"] and hacked["judge_policy"] < grpo["judge_policy"])

# %% [markdown]
# With the honest reward the answers got shorter and better; with the bonus they stay long — and the honest rule
# judges them *worse* than the SFT model it started from (full mode: 15.3 tokens and 54 % judged good, against 12.0
# tokens and 98 % without the bonus). A reward is a specification, and RL finds the cheapest way to satisfy it. The
# defences are the ones this lesson used: test the reward on known-good and known-bad answers, keep a KL to the
# reference, and measure what you care about separately from what you train on.
#
# How robust is this run? With other seeds the SFT step leaves the model anywhere between 15 % and 90 % judged good
# (workshop mode, "What you should see"), and within 60 steps the bonus visibly wins only on some of them: one run
# of RL is an anecdote. Run several seeds before you believe an RL result — yours or a paper's.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 62–74 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | GRPO (G 4): judged good before | 0.533 ± 0.375 (0.150 – 0.900) |
# | GRPO (G 4): judged good after | 0.767 ± 0.262 (0.425 – 0.950) |
# | length bonus: answer length (tokens) | 17.0 ± 1.4 (15.3 – 18.1) |
# | length bonus: judged good | 0.650 ± 0.225 (0.450 – 0.900) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/13_rl_verifiable_rewards.py` (each asks for one change, says
# what to expect, and solves it). More ideas to try on your own:
#
# 1. `minift align --task refusal --method grpo --sft-epochs 2 --sft-on both --out runs/refuse`: does RL learn to
#    refuse the address requests without refusing the shop questions?
# 2. `--opt aggregation=dr_grpo --opt scale_by_std=false` (Dr. GRPO): no length or difficulty bias.
# 3. `--method rloo`: a leave-one-out baseline instead of the group mean and std.
