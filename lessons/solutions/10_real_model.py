# %% [markdown]
# # Lesson 10 — exercises with worked solutions
#
# SmolLM2-135M-Instruct, prompted (no training here, so both exercises are cheap). Full mode scores 50 posts per
# setting, about 2 minutes on 2 CPU cores; workshop mode (`MINIFT_DEMO=1`) 20; `MINIFT_QUICK=1` 2 (a smoke test).
# The model is fetched once (`minift warmup --smollm2`).

# %%
from minift.base import load_base
from minift.data import load_task_data
from minift.finetune import evaluate_prompted, generate_batch, get_template
from minift.finetune.prompting import with_shots
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
N_EVAL = pick(quick=2, demo=20, full=50)
model, tok = load_base("smollm2", progress=False)
CHAT = get_template("chatml")
print(f"mode: {MODE}; seed {SEED}; {N_EVAL} posts per setting")

# %% [markdown]
# **Exercise 1 — how many examples in the prompt?** Prompt for strict JSON with 0, 1, 3 and 5 examples.
# *Expect:* the jump is from zero to one example (the model sees the exact format once); more examples add less,
# and cost context and time on every request — the trade-off against a fine-tune, which costs once.

# %%
td = load_task_data("json")
shots = {}
for k in pick(quick=[0, 1], demo=[0, 1, 3], full=[0, 1, 3, 5]):
    metrics, _ = evaluate_prompted(model, tok, td, CHAT, shots=k, n_eval=N_EVAL)
    shots[k] = metrics["test"]["json_compliance"]
    report(f"{k}-shot: schema-compliant", shots[k])
demo_prompt = with_shots(td.splits["test"][0], td.splits["train"][:3], CHAT)
claim("a 3-shot prompt carries its three worked examples",
      all(ex["output"] in str(demo_prompt) for ex in td.splits["train"][:3]))
if MODE != "quick":
    claim("one example in the prompt beats none", shots[1] > shots[0])

# %% [markdown]
# *Solution.* Zero-shot the model explains instead of answering; one example already gets most answers into the
# schema, and more examples add little (workshop mode, 20 posts: 0 %, 70 %, 75 % schema-compliant with 0, 1 and
# 3 examples). Lesson 10's LoRA fine-tune beat
# every prompt — and answers with a prompt a few hundred tokens shorter.
#
# **Exercise 2 — ask about minift's world.** SmolLM2 knows real capitals. Ask it the shop's prices, which exist
# only in minift's world. *Expect:* it answers anyway — with a made-up price, fluently: knowledge it cannot have
# comes out as confident invention (lesson 16's hallucination study measures this).

# %%
asks = [{"instruction": f"How much is the {item} at the shop?", "input": ""} for item in ("kite", "lamp", "puzzle")]
answers = generate_batch(model, tok, asks[:pick(quick=1, demo=3, full=3)], 32, CHAT)
for q, a in zip(asks, answers):
    print(f"Q: {q['instruction']}\n  → {a!r}")
says_price = sum(any(ch.isdigit() for ch in a) for a in answers) / len(answers)
report("answers that name a number", says_price)

# %% [markdown]
# *Solution.* It answers every question anyway: one answer invents a price ("The price of the kite is 1000."), the
# others invent a story about the object — never "I do not know which shop you mean". Facts a model cannot have
# belong in its context (retrieval, lesson 15), not in the hope that it knows them.
