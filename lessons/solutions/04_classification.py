# %% [markdown]
# # Lesson 04 — exercises with worked solutions
#
# The sentiment classifier of lesson 04 (the `tiny` base, a head on the last real token). Full mode about 2 minutes
# on 2 CPU cores, workshop mode (`MINIFT_DEMO=1`) about a minute; `MINIFT_QUICK=1` is a smoke test.

# %%
import atexit
import shutil
import tempfile
from pathlib import Path

from minift.base import load_base
from minift.finetune import FinetuneConfig, finetune
from minift.tables import markdown_table
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
PRESET = "quick" if MODE == "quick" else "tiny"
STEPS = pick(quick=dict(max_steps=4, n_eval=40), demo=dict(epochs=3), full=dict(epochs=3))
OUT = Path(tempfile.mkdtemp(prefix="minift_solutions04_"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
print(f"mode: {MODE}; seed {SEED}; base {PRESET}")


def run(name: str, **overrides) -> dict:
    settings = dict(base=PRESET, task="sentiment", method="full", lr=5e-4, batch_size=16, eval_every=10**6,
                    seed=SEED, **STEPS)
    settings.update(overrides)
    return finetune(FinetuneConfig(**settings), OUT / name, force=True, progress=False)


# %% [markdown]
# **Exercise 1 — a linear probe.** Freeze the whole body (`freeze_until=0`: only the final LayerNorm and the head
# train) at lesson 04's lr 5e-4 and at 5e-3. *Expect:* a few hundred numbers need larger steps; even then the
# probe stays well below full fine-tuning — the base's last-token features know the words, not yet which clause
# decides.

# %%
probes = {lr: run(f"probe_{lr:g}", freeze_until=0, lr=lr) for lr in (5e-4, 5e-3)}
full = run("full")
rows = [{"trained": f"LayerNorm + head, lr {lr:g}", "trainable": r["trainable_params"],
         "test accuracy": round(r["metrics"]["test"]["accuracy"], 3)} for lr, r in probes.items()]
rows.append({"trained": "everything, lr 5e-4", "trainable": full["trainable_params"],
             "test accuracy": round(full["metrics"]["test"]["accuracy"], 3)})
print(markdown_table(rows))
for row in rows:
    report(f"{row['trained']}: test accuracy", row["test accuracy"])
d_model = load_base(PRESET, progress=False)[0].config.d_model
claim("the probe trains the final LayerNorm (2d) and the head (2(d + 1)), nothing else",
      all(r["trainable_params"] == 2 * d_model + 2 * (d_model + 1) for r in probes.values()))
if MODE != "quick":
    claim("full fine-tuning beats the best linear probe", full["metrics"]["test"]["accuracy"]
          > max(r["metrics"]["test"]["accuracy"] for r in probes.values()))

# %% [markdown]
# *Solution.* At 5e-4 the probe barely leaves chance (workshop mode, seed 0: 53 %); at 5e-3 it learns a little of
# the task (59 %) and stays far below full fine-tuning (88 %). Most of the accuracy comes from *changing* the
# representation, not from reading it: the pretrained last-token vector was never asked to summarise a post's
# sentiment.
#
# **Exercise 2 — how many posts?** Train on 50, 100 and 200 posts and compare with the bag of words fitted on the
# same posts. *Expect:* with few posts the transformer is no better than counting words; somewhere between one and
# a few hundred posts it pulls ahead.

# %%
SIZES = pick(quick=[50], demo=[50, 200], full=[50, 100, 200])
size_rows = []
for n in SIZES:
    r = run(f"n{n}", n_train=n)
    size_rows.append({"training posts": n, "fine-tuned": round(r["metrics"]["test"]["accuracy"], 3),
                      "bag of words (1-gram)": round(r["baselines"]["bow_logreg_1gram"]["accuracy"], 3)})
    report(f"{n} posts: fine-tuned", size_rows[-1]["fine-tuned"])
    report(f"{n} posts: bag of words", size_rows[-1]["bag of words (1-gram)"])
print(markdown_table(size_rows))

# %% [markdown]
# *Solution.* With 50 posts, 3 epochs are a dozen steps: the model is at chance, no better than the bag of words
# (workshop mode, seed 0: 52 against 51 %); with 200 it pulls a few points ahead (62 against 58 %), and with all
# 500 (lesson 04) twenty points (88 against 68 %). The crossover is the data
# size below which a pretrained transformer is not yet worth its cost on this task — lesson 18's random-init
# control shows what the same budget gives without pretraining.
