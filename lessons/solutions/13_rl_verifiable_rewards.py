# %% [markdown]
# # Lesson 13 — exercises with worked solutions
#
# GRPO on the `tiny` base's `polite` task, as in lesson 13. Full mode 60 steps per run, about 2 minutes on 2 CPU
# cores; workshop mode (`MINIFT_DEMO=1`) 25 steps; `MINIFT_QUICK=1` a smoke test.

# %%
import atexit
import shutil
import tempfile
import warnings
from pathlib import Path

from minift.align.config import AlignConfig
from minift.align.judges import RUDE
from minift.align.rl import sanity_check
from minift.align.run import align
from minift.data.preferences import load_preferences
from minift.tables import markdown_table
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
BASE = "quick" if MODE == "quick" else "tiny"
STEPS = pick(quick=2, demo=25, full=60)
COMMON = dict(base=BASE, task="polite", sft_epochs=2, sft_on="both", max_steps=STEPS, seed=SEED, batch_size=4,
              **pick(quick=dict(n_train=16, n_eval=4, max_new_tokens=12), demo=dict(n_eval=40), full={}))
OUT = Path(tempfile.mkdtemp(prefix="minift_solutions13_"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
warnings.filterwarnings("ignore", message=".*nothing to learn from")
print(f"mode: {MODE}; seed {SEED}; base {BASE}; {STEPS} steps per run")

# %% [markdown]
# **Exercise 1 — a reward that passes the check and is still wrong.** Pay for politeness alone: 1 for an answer
# without a rude phrase, whatever price it names. *Expect:* minift's sanity check lets it through — on the training
# pairs the polite answer (which also has the right price) still beats the rude one — but GRPO trained on it stops
# caring about the price: the check is necessary, not sufficient.

# %%
def polite_only(record, answer):
    return float(not any(phrase in answer.lower() for phrase in RUDE))


check = sanity_check(polite_only, load_preferences("polite", "train"))
print("the check:", check)
runs = {name: align(AlignConfig(method="grpo", options={"group": 4}, **COMMON), OUT / name, force=True,
                    progress=False, **({"reward": polite_only} if name == "polite only" else {}))
        for name in ("the rule", "polite only")}
print(markdown_table([{"reward": n, "judged good (right price, polite)": round(r["judge_policy"], 2),
                       "before": round(r["judge_reference"], 2)} for n, r in runs.items()]))
for name, r in runs.items():
    report(f"reward '{name}': judged good", r["judge_policy"])
claim("the sanity check accepts the politeness-only reward", check["good_mean"] > check["bad_mean"])

# %% [markdown]
# *Solution.* The check passes (polite answers beat rude ones on every training pair: the chosen answers happen to
# have the right price too). In this run the two rewards end about level on the full rule — polite *and* the right
# price (workshop mode, seed 0: 62 % with politeness only, 60 % with the rule): within 60 steps nothing pushed the
# politeness-only run away from the right prices. The point stands: the check cannot tell the two rewards apart,
# and only measuring what you care about, separately from what you train on, shows when a run drifts. A reward is
# a specification; the sanity check is necessary, not sufficient.
#
# **Exercise 2 — the KL penalty.** GRPO keeps the policy near the SFT model with β·KL (β = 0.04). Train with β = 0
# and β = 0.2. *Expect:* without the penalty the answers drift further (larger KL, maybe shorter or odder answers);
# a strong penalty learns less.

# %%
kl = {b: align(AlignConfig(method="grpo", options={"group": 4, "beta": b}, **COMMON), OUT / f"beta_{b}", force=True,
               progress=False) for b in (0.0, 0.2)}
print(markdown_table([{"β": b, "judged good": round(r["judge_policy"], 2), "KL": round(r["kl_policy_answers"], 2),
                       "answer length": round(r["length_policy"], 1)} for b, r in kl.items()]))
for b, r in kl.items():
    report(f"β {b}: KL from the reference", r["kl_policy_answers"])

# %% [markdown]
# *Solution.* β = 0 drifts only a little further (workshop mode, seed 0: KL 0.46 against 0.43 at β = 0.2; both
# judged 60 %): over 60 steps this policy stays close to the SFT model either way. The penalty matters over longer
# runs and with a learned reward model, where drift is how reward hacking starts (lesson 13's length bonus). One
# seed per setting: lesson 13's ranges show how much RL runs vary.
