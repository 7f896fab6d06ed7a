# %% [markdown]
# # Lesson 05 — exercises with worked solutions
#
# Instruction tuning of the `tiny` base, as in lesson 05. Full mode about 2 minutes on 2 CPU cores; workshop mode
# (`MINIFT_DEMO=1`) scores fewer examples; `MINIFT_QUICK=1` is a smoke test.

# %%
import atexit
import shutil
import tempfile
from pathlib import Path

from minift.base import load_base
from minift.data import load_task_data
from minift.finetune import FinetuneConfig, finetune, generate_batch, get_template, load_finetuned
from minift.tables import markdown_table
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
PRESET = "quick" if MODE == "quick" else "tiny"
N_EVAL = pick(quick=8, demo=50, full=100)
OUT = Path(tempfile.mkdtemp(prefix="minift_solutions05_"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
print(f"mode: {MODE}; seed {SEED}; base {PRESET}")

# %% [markdown]
# **Exercise 1 — is the format learned before the values?** Fine-tune the JSON task for 1 epoch and for 3
# (lesson 05's run). *Expect:* after one epoch the output already looks like JSON (braces, quotes) but the keys and
# values are not yet right; the schema — the exact keys, the allowed values — takes longer.

# %%
rows = []
for epochs in pick(quick=[0.1], demo=[1, 3], full=[1, 2, 3]):
    r = finetune(FinetuneConfig(base=PRESET, task="json", method="full", template="plain", lr=5e-4, epochs=epochs,
                                n_eval=N_EVAL, seed=SEED), OUT / f"json_{epochs}", force=True, progress=False)
    m = r["metrics"]["test"]
    rows.append({"epochs": epochs, "valid JSON": m["json_validity"], "schema-compliant": m["json_compliance"],
                 "both fields right": m["exact_match"], "a sample": r["samples"][0]["prediction"][:48]})
    report(f"{epochs} epoch(s): valid JSON", m["json_validity"])
    report(f"{epochs} epoch(s): schema-compliant", m["json_compliance"])
print(markdown_table(rows))
if MODE != "quick":
    claim("validity comes before compliance", rows[0]["valid JSON"] > rows[0]["schema-compliant"])

# %% [markdown]
# *Solution.* After one epoch about half the answers are valid JSON and none is schema-compliant (workshop mode,
# seed 0: 54 %, 0 %): the model writes braces and quotes but gets a key wrong (at two epochs it still writes
# `"sentent"`). By 3 epochs both are right (100 %, 100 %). Format is the cheapest thing to teach — the same few
# tokens on every example — and exact content the dearest.
#
# **Exercise 2 — does a style leak?** Fine-tune on the `style` task (rewrite a sentence in a pirate's voice) and
# ask the result ordinary questions in the same template. *Expect:* many answers come back in the pirate voice:
# fine-tuning teaches a behaviour for prompts that *look like* the training prompts, whatever they ask.

# %%
finetune(FinetuneConfig(base=PRESET, task="style", template="plain", lr=5e-4, epochs=pick(quick=0.1, demo=3, full=3),
                        n_eval=N_EVAL, seed=SEED), OUT / "style", force=True, progress=False)
model, tok, _ = load_finetuned(OUT / "style")
questions = load_task_data("qa").splits["test"][:N_EVAL]
answers = generate_batch(model, tok, questions, 24, get_template("plain"))
for q, a in list(zip(questions, answers))[:3]:
    print(f"Q: {q['instruction']}\n  → {a!r}")
leak = sum(a.strip().startswith("Arr!") for a in answers) / len(answers)
report("qa questions answered in the pirate voice", leak)
base, _ = load_base(PRESET, progress=False)
before = generate_batch(base, tok, questions, 24, get_template("plain"))
claim("the base never answers in the voice", not any(a.strip().startswith("Arr!") for a in before))

# %% [markdown]
# *Solution.* Every answer opens with "Arr!" (workshop mode, seed 0: 100 %) — some stop right there, others answer
# in the voice ("Arr! People in India speak Hindi, matey!"): the model learned "after `### Response:` comes a pirate
# sentence", not "rewrite only when asked". Lesson 19 turns this
# into a brand voice scored by a rubric, and its exercise contains the leak by mixing other tasks into the data.
