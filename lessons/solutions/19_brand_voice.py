# %% [markdown]
# # Lesson 19 — exercises with worked solutions
#
# The brand voice of lesson 19 on the `tiny` base. Full mode about 2 minutes on 2 CPU cores; workshop mode
# (`MINIFT_DEMO=1`) scores fewer sentences; `MINIFT_QUICK=1` a smoke test.

# %%
import atexit
import shutil
import tempfile
from pathlib import Path

from minift.data import load_task_data
from minift.data.loaders import export_jsonl
from minift.data.rubric import rubric_checks, rubric_scores
from minift.data.tasks import load_task
from minift.finetune import FinetuneConfig, finetune, generate_batch, get_template, load_finetuned
from minift.peft import disabled
from minift.tables import markdown_table
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
PRESET = "quick" if MODE == "quick" else "tiny"
STEPS = pick(quick=dict(max_steps=4), demo=dict(epochs=3), full=dict(epochs=3))
N = pick(quick=8, demo=50, full=100)
TEMPLATE = get_template("plain")
OUT = Path(tempfile.mkdtemp(prefix="minift_solutions19_"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
style_test = load_task_data("style").splits["test"][:N]
questions = load_task_data("qa").splits["test"][:N]
print(f"mode: {MODE}; seed {SEED}; base {PRESET}")


def scores(model, tok) -> dict:
    """The rubric on held-out style sentences, and the share of qa answers in the voice (the leak)."""
    said = generate_batch(model, tok, style_test, 32, TEMPLATE)
    answers = generate_batch(model, tok, questions, 24, TEMPLATE)
    return {"all checks": round(rubric_scores([e["input"] for e in style_test], said)["all"], 3),
            "qa answers in the voice": round(sum(a.strip().startswith("Arr!") for a in answers) / len(answers), 3)}


# %% [markdown]
# **Exercise 1 — contain the leak.** Mix 200 ordinary qa examples, answered plainly, into the style data. *Expect:*
# the model learns *when* to use the voice: qa answers stay plain while the rubric score on rewrites holds.

# %%
style = [{"instruction": e["instruction"], "input": e["input"], "output": e["output"]} for e in load_task("style", "train")]
qa = [{"instruction": e["instruction"], "input": "", "output": e["output"]} for e in load_task("qa", "train")][:200]
export_jsonl(style, OUT / "style.jsonl")
export_jsonl(style + qa, OUT / "style_and_qa.jsonl")
rows = {}
for name, data in (("style only", "style.jsonl"), ("style + 200 qa", "style_and_qa.jsonl")):
    finetune(FinetuneConfig(base=PRESET, data=str(OUT / data), method="full", template="plain", lr=5e-4, seed=SEED,
                            **STEPS), OUT / name.replace(" ", "_"), force=True, progress=False)
    model, tok, _ = load_finetuned(OUT / name.replace(" ", "_"))
    rows[name] = scores(model, tok)
print(markdown_table([{"data": k, **v} for k, v in rows.items()]))
for name, s in rows.items():
    report(f"{name}: qa answers in the voice", s["qa answers in the voice"])
    report(f"{name}: rewrites passing every check", s["all checks"])
if MODE != "quick":
    claim("mixing in plain qa examples contains the leak",
          rows["style + 200 qa"]["qa answers in the voice"] < rows["style only"]["qa answers in the voice"])

# %% [markdown]
# *Solution.* With the qa examples mixed in, no qa answer comes back in the voice (workshop mode, seed 0: 100 % →
# 0 %) and the rewrites pass the rubric at least as often (20 → 28 %): the data now shows both *what* the voice is
# and *when* it applies.
#
# **Exercise 2 — a voice you can switch off.** Train the voice as a LoRA adapter instead. *Expect:* a lower rubric
# score than full fine-tuning at the same epochs (lesson 17 saw LoRA learn less on this base), but a switch: with
# the adapter disabled the model is the base again, bit for bit — no leak at all.

# %%
finetune(FinetuneConfig(base=PRESET, task="style", method="lora", template="plain", seed=SEED, **STEPS),
         OUT / "lora", force=True, progress=False)
lora, tok, _ = load_finetuned(OUT / "lora")
on = scores(lora, tok)
with disabled(lora):
    off = scores(lora, tok)
print(markdown_table([{"adapter": "on", **on}, {"adapter": "off", **off}]))
report("LoRA voice: rewrites passing every check", on["all checks"])
claim("with the adapter off nothing answers in the voice", off["qa answers in the voice"] == 0.0)

# %% [markdown]
# *Solution.* At this budget the LoRA voice passes no rewrite on every check (workshop mode, seed 0: 0 %) — LoRA
# learns slowly on this small base — but the switch works: with the adapter off, nothing answers in the voice. One
# base can serve the plain assistant and the branded one, once the adapter is trained long enough.
#
# **Exercise 3 — a check of your own.** Add a sixth rule to the house style — say, no exclamation mark except in
# "Arr!" and "matey!" — and score the fine-tuned model with it. *Solution:* a rubric is a function of (input,
# output); extend `rubric_checks`' dictionary in a copy and rerun `rubric_scores`. The check must pass on the
# reference rewrites (`pirate(s)`) before it scores a model, as lesson 19 did for the five.

# %%
def no_extra_exclamations(source: str, output: str) -> bool:
    return output.replace("Arr!", "").replace("matey!", "").count("!") <= source.count("!")


from minift.data.tasks import pirate  # noqa: E402  (the reference rewrite, used by this check only)

refs = [(e["input"], pirate(e["input"])) for e in style_test]
claim("the new check passes every reference rewrite", all(no_extra_exclamations(s, o) for s, o in refs))
print("the five checks on one reference:", rubric_checks(*refs[0]))
