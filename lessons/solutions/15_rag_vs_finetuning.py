# %% [markdown]
# # Lesson 15 — exercises with worked solutions
#
# Retrieval by hand and the strategy rule (no training: seconds in every mode).

# %%
from minift.data.updates import questions_after, update_stream
from minift.retrieval.strategy import choose_ai_strategy
from minift.workshop import claim, mode, report, seed

MODE, SEED = mode(), seed()
print(f"mode: {MODE}; seed {SEED}")

# %% [markdown]
# **Exercise 1 — BM25's two knobs.** k₁ caps how much repeating a word helps (saturation); b sets how much a long
# document is penalised. Index one update's documents and ask each fact's question with (k₁, b) = (1.2, 0.75)
# (Robertson's usual values), (0, 0.75) (term frequency ignored) and (1.2, 0) (no length normalisation).
# *Expect:* on short documents of similar length both knobs matter little: the words that identify the fact do the
# work.

# %%
from minift.retrieval.bm25 import BM25Index  # noqa: E402  (here, next to its only use)

stream = update_stream(1, 6, 3, seed=SEED)
docs, keys = stream[0].documents, stream[0].doc_keys
questions = questions_after(stream, 0)
hits = {}
for k1, b in ((1.2, 0.75), (0.0, 0.75), (1.2, 0.0)):
    index = BM25Index(k1=k1, b=b)
    index.add(docs)
    right = 0
    for q in questions:
        scores = index.scores(q["instruction"])
        right += keys[max(range(len(docs)), key=scores.__getitem__)] == q["key"]
    hits[(k1, b)] = right / len(questions)
    report(f"k1 {k1}, b {b}: top document states the asked fact", hits[(k1, b)])
claim("the default finds the answer for most facts", hits[(1.2, 0.75)] >= 0.5)

# %% [markdown]
# *Solution.* On seed 0 the default and the setting without length normalisation put the right document first for
# all six facts; ignoring term frequency (k₁ = 0) loses one: a word repeated in a document is evidence. Length
# normalisation has little to correct in sentences of similar length. The knobs matter on corpora of uneven
# documents — a reason to measure retrieval on your own documents before tuning anything else.
#
# **Exercise 2 — the rule, for your own cases.** `choose_ai_strategy` encodes lesson 15's verdict. Ask it about a
# support bot whose prices change weekly, a model that must always answer in strict JSON, and both at once.
# *Expect:* knowledge that changes → retrieval; a behaviour → fine-tuning; both → both.

# %%
cases = {"prices that change weekly": dict(needs_knowledge=True, changes_often=True),
         "always strict JSON": dict(needs_knowledge=False, needs_behaviour=True),
         "both": dict(needs_knowledge=True, changes_often=True, needs_behaviour=True)}
answers = {name: choose_ai_strategy(**kw) for name, kw in cases.items()}
for name, a in answers.items():
    print(f"{name:<28} → {a}")
claim("changing knowledge goes to retrieval, a behaviour to fine-tuning, both to both",
      [a.method for a in answers.values()] == ["rag", "fine-tune", "both"])

# %% [markdown]
# *Solution.* The rule's answers follow the table of lesson 15: retrieval for facts that change, fine-tuning for a
# behaviour, both when both are needed. The rule is only as good as the measurements behind it — lesson 15's table
# is what it stands on.
