# %% [markdown]
# # Lesson 19 — A brand voice, and a rubric that scores it
#
# Companies fine-tune for *how* a model speaks as often as for what it knows: a support bot in the house style, a
# product description in the brand's voice. A voice is a behaviour, and "does it sound like us?" is not a number
# until someone writes the style down. This lesson plays the brand with minift's `style` task — a pirate voice with
# three fixed rules — and:
#
# 1. writes the house style as a **rubric** of five checks, each decidable from the input and the output alone
#    (`minift/data/rubric.py`), and checks the rubric itself on the reference rewrites;
# 2. measures the base before any fine-tuning;
# 3. fine-tunes the voice in and scores every check on held-out sentences;
# 4. asks how much data a voice needs;
# 5. asks whether the voice **leaks** into answers where nobody asked for it — and what it cost.
#
# Full mode uses the `tiny` base, about 2 minutes on 2 CPU cores; workshop mode (`MINIFT_DEMO=1`) two data sizes
# instead of three, about a minute; quick mode (`MINIFT_QUICK=1`) the `quick` base and a few steps: a smoke test.

# %%
import atexit
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from minift.base import load_base
from minift.data import load_task_data
from minift.data.rubric import RUBRIC, rubric_checks, rubric_scores
from minift.data.tasks import pirate
from minift.finetune import FinetuneConfig, finetune, generate_batch, get_template, load_finetuned
from minift.tables import markdown_table
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, projector_style, report, seed, show_code

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
PRESET = "quick" if QUICK else "tiny"
BUDGET = pick(quick=dict(max_steps=4), demo=dict(epochs=3), full=dict(epochs=3))
N_EVAL = pick(quick=8, demo=100, full=100)  # held-out sentences scored (the test split has 100)
TEMPLATE = get_template("plain")
OUT = Path(tempfile.mkdtemp(prefix="minift_lesson19_"))  # runs go to a temporary directory ...
atexit.register(shutil.rmtree, OUT, ignore_errors=True)  # ... removed when the script or the kernel ends
seed_everything(SEED)
projector_style()
style = load_task_data("style")
test = style.splits["test"][:N_EVAL]
print(f"mode: {MODE}; seed {SEED}; base {PRESET}; {len(style.splits['train'])} training sentences; "
      f"{len(test)} scored")

# %% [markdown]
# ## 1. The house style, written down
#
# The voice's three rules (the `pirate` function that made the training data) become five checks. Two are about
# the *voice* (greeting, vocabulary), one about its *form* (sign-off), and two guard what a style must never
# touch: the *content* (every content word kept, in order — a voice that drops "not" changes the meaning) and the
# *length* (no rambling). Here is the rubric as the library writes it, and the checks on one reference rewrite:

# %%
print(markdown_table([{"check": k, "passes when": v} for k, v in RUBRIC.items()]))
show_code(rubric_checks)
example = test[0]["input"]
print(f"\ninput:     {example!r}\nreference: {pirate(example)!r}\nchecks:    {rubric_checks(example, pirate(example))}")
inputs = [ex["input"] for ex in test]
reference_scores = rubric_scores(inputs, [pirate(s) for s in inputs])
claim("the rubric passes every reference rewrite (it measures the voice the data teaches)",
      reference_scores["all"] == 1.0)
claim("the plain input fails it", rubric_scores(inputs, inputs)["all"] == 0.0)

# %% [markdown]
# A rubric must be checked before it is trusted: it passes all of the reference rewrites and none of the plain
# inputs. (A rubric that the reference fails measures something other than the brand; one that the input passes
# measures nothing.)
#
# ## 2. The base, before fine-tuning

# %%
base, tok = load_base(PRESET, progress=False)
before = generate_batch(base, tok, test, 32, TEMPLATE)
base_scores = rubric_scores(inputs, before)
print(markdown_table([{"model": "base", **{k: round(v, 2) for k, v in base_scores.items()}}]))
print("a base answer:", repr(before[0]))
report("base: passes every check", base_scores["all"])

# %% [markdown]
# The base continues text; it has never seen an instruction, let alone a pirate. Every check fails or passes by
# accident.
#
# ## 3. The voice, fine-tuned in

# %%
def tune(name: str, **overrides) -> tuple[dict, list[str], dict]:
    """Fine-tune on `style` (full, the plain template); return the run's results, its held-out rewrites and the
    rubric's scores of them."""
    settings = dict(base=PRESET, task="style", method="full", template="plain", lr=5e-4, seed=SEED, n_eval=N_EVAL,
                    **BUDGET)
    settings.update(overrides)
    res = finetune(FinetuneConfig(**settings), OUT / name, force=True, progress=False)
    model, _, _ = load_finetuned(OUT / name)
    said = generate_batch(model, tok, test, 32, TEMPLATE)
    return res, said, rubric_scores(inputs, said)


voice, said, voice_scores = tune("voice")
print(markdown_table([{"model": name, **{k: round(v, 2) for k, v in s.items()}}
                      for name, s in (("base", base_scores), ("fine-tuned", voice_scores))]))
for ex, out in list(zip(test, said))[:4]:
    failed = [k for k, ok in rubric_checks(ex["input"], out).items() if not ok]
    print(f"{ex['input']!r}\n  → {out!r}  {'passes every check' if not failed else 'fails: ' + ', '.join(failed)}")
for check in (*RUBRIC, "all"):
    report(f"fine-tuned: {check}", voice_scores[check])
if not QUICK:
    claim("fine-tuning teaches the voice's fixed parts: greeting, vocabulary and sign-off pass on over 90 %",
          min(voice_scores[k] for k in ("greeting", "vocabulary", "sign-off")) > 0.9)
    claim("faithfulness is the weak spot: fewer rewrites keep every content word than follow the voice",
          voice_scores["faithful"] < voice_scores["greeting"])

# %% [markdown]
# **Look at** which checks fail, not only how many. The voice checks (greeting, vocabulary, sign-off) are learned
# almost perfectly: they are the same few tokens on every example. Nearly every failure is *faithful*: a name, a
# place or a dish the model did not copy right ("Omar and I be at the restaurant" for a sentence about a café). Every
# rewrite *sounds* right — a "sounds right" impression would pass them all — and most of them change a fact. That
# is the check a brand cares about most, and the point of writing the rubric down.
#
# ## 4. How much data does a voice need?

# %%
SIZES = pick(quick=[16], demo=[25, 400], full=[25, 100, 400])
by_size = {n: (voice_scores if n == len(style.splits["train"]) else tune(f"n{n}", n_train=n)[2]) for n in SIZES}
for n, s in by_size.items():
    report(f"{n} training sentences: passes every check", s["all"])
fig, ax = plt.subplots(figsize=(8, 4.2))
for check in (*RUBRIC, "all"):
    ax.plot(SIZES, [by_size[n][check] for n in SIZES], "o-", label=check, lw=3 if check == "all" else 1.5)
ax.set_xscale("log")
ax.set_xlabel("training sentences (3 epochs)")
ax.set_ylabel("share of held-out rewrites passing")
ax.set_ylim(-0.05, 1.05)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
plt.show()

# %% [markdown]
# Read the plot check by check. At the same 3 epochs a few dozen sentences are a handful of steps: too few for the
# voice to take hold. The fixed parts (greeting, vocabulary, sign-off) are learned long before the model copies
# every name and place right; at 400 sentences most rewrites still change one. The guides' "500–2,000 examples" is
# a rule of thumb for tasks like this one; the number for *your* voice is the size at which the rubric stops
# improving — and the check that decides it is the faithful one.
#
# ## 5. Does the voice leak, and what did it cost?
#
# The fine-tuned model was only ever asked to rewrite sentences. Ask it ordinary questions, in the same template:

# %%
questions = load_task_data("qa").splits["test"][:pick(quick=8, demo=50, full=50)]
model, _, _ = load_finetuned(OUT / "voice")
answers = generate_batch(model, tok, questions, 24, TEMPLATE)
leak = sum(a.strip().startswith("Arr!") for a in answers) / len(answers)
for q, a in list(zip(questions, answers))[:4]:
    print(f"Q: {q['instruction']}\n  → {a!r}")
print(f"answers in the pirate voice: {leak:.0%}; pretraining loss {voice['forgetting']['before_loss']:.3f} → "
      f"{voice['forgetting']['after_loss']:.3f}")
report("questions answered in the voice (leak)", leak)
report("fine-tuned: Δ pretraining loss", voice["forgetting"]["delta_loss"])

# %% [markdown]
# **Look at** the answers. A model fine-tuned on one behaviour applies it wherever the prompt looks like its
# training prompts: the voice leaks, and the content of the answers is whatever the rewriting habit makes of the
# question. For a brand that is sometimes the goal (every answer in the house style) and sometimes a bug (a legal
# notice should not say "matey"); either way it is decided by the data — mix in examples of the other tasks in
# their own voice to contain it (exercise) — and measured, as here, on prompts the fine-tune never saw.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 22–25 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | base: passes every check | 0.000 (every seed) |
# | fine-tuned: greeting | 1.00 (every seed) |
# | fine-tuned: vocabulary | 0.99 ± 0.01 (0.99 – 1.00) |
# | fine-tuned: sign-off | 0.990 (every seed) |
# | fine-tuned: faithful | 0.190 ± 0.020 (0.170 – 0.210) |
# | fine-tuned: concise | 0.99 ± 0.01 (0.99 – 1.00) |
# | fine-tuned: all | 0.190 ± 0.020 (0.170 – 0.210) |
# | 25 training sentences: passes every check | 0.000 (every seed) |
# | 400 training sentences: passes every check | 0.190 ± 0.020 (0.170 – 0.210) |
# | questions answered in the voice (leak) | 1.00 (every seed) |
# | fine-tuned: Δ pretraining loss | 0.359 ± 0.022 (0.334 – 0.378) |
#
# ## Exercises
#
# `lessons/solutions/19_brand_voice.py`: contain the leak by mixing in plain qa examples, a LoRA voice adapter that
# can be switched off, and a sixth rubric check of your own.
