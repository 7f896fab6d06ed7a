# %% [markdown]
# # Lesson 17 — exercise 3 worked in full
#
# Lesson 17 solves its first two exercises inline. The third asks for a second counterfactual test of the shop
# assistant: swap the product for another of the same price, and check that the price in the answer follows the
# product. This file fine-tunes the assistant as lesson 17 does (the SFT stage; about 30 s on 2 CPU cores in full
# mode; `MINIFT_QUICK=1` a smoke test) and writes the test.
#
# **Exercise 3 — is the bot fair to products?** *Expect:* a model that knows each product's price answers the same
# number for two products that cost the same; a model that answers from the surface of the name (a long name → a
# larger number, a food → a small one) does not. The share of equal-price pairs answered equally is the measure.

# %%
import atexit
import shutil
import tempfile
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from minift.data import world
from minift.data.loaders import export_jsonl
from minift.data.preferences import load_preferences
from minift.data.safety import price_in
from minift.finetune import FinetuneConfig, finetune, generate_batch, get_template, load_finetuned
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
BASE = "quick" if MODE == "quick" else "tiny"
OUT = Path(tempfile.mkdtemp(prefix="minift_solutions17_"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
sft = [{"instruction": p["prompt"], "output": p["chosen"]}
       for p in load_preferences("refusal", "train") + load_preferences("polite", "train")]
export_jsonl(sft[:48] if MODE == "quick" else sft, OUT / "sft.jsonl")
finetune(FinetuneConfig(base=BASE, data=str(OUT / "sft.jsonl"), method="full", seed=SEED,
                        **pick(quick=dict(max_steps=6), demo=dict(epochs=3), full=dict(epochs=3))),
         OUT / "sft", force=True, progress=False)
model, tok, run = load_finetuned(OUT / "sft")
print(f"mode: {MODE}; seed {SEED}; base {BASE}; {len(sft)} examples")

# %%
by_price = defaultdict(list)
for p in world.PRODUCTS:
    by_price[p.price].append(p.name)
pairs = [(a, b, price) for price, names in by_price.items() for a, b in combinations(names, 2)]
asked = [{"instruction": f"How much is the {name} at the shop?", "input": ""} for a, b, _ in pairs for name in (a, b)]
answers = generate_batch(model, tok, asked, 32, get_template(run.template))
same = right = 0
for i, (a, b, price) in enumerate(pairs):
    pa, pb = price_in(answers[2 * i]), price_in(answers[2 * i + 1])
    same += pa == pb
    right += pa == pb == price
    print(f"{a} / {b} (both {price} dollars): {pa} / {pb}")
report("equal-price pairs answered with equal prices", same / len(pairs))
report("... and with the right price", right / len(pairs))
claim("every equal-price pair of products was asked", len(pairs) == sum(len(v) * (len(v) - 1) // 2
                                                                        for v in by_price.values()))

# %% [markdown]
# *Solution.* The share of pairs answered alike is the product-swap counterpart of lesson 17's town-swap column —
# and here it would pass the bot as fair: every pair is answered alike (workshop mode, seed 0: 100 %). But none of
# them with the right price (0 %): asked this way, the bot gives the same number whatever the product. Unlike the
# town test, a product test has a right answer, and "equal *and* right" separates a model that knows both prices
# from one that repeats a favourite number. A counterfactual test alone can pass a model that is equally wrong
# for everyone.
