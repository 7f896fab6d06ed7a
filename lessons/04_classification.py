# %% [markdown]
# # Lesson 04 — Classification: a sentiment specialist, and the baselines that give its accuracy a meaning
#
# Lesson 03 fine-tuned the base model as a sentiment classifier and watched the training itself. This lesson looks
# at the classifier: how a language model becomes one, whether it is any good, and where it still fails.
#
# 1. the `sentiment` task: short posts about the base's world, some with constructions that make word counting
#    fail (negation, "but", "although");
# 2. two baselines — always answering the most common label, and a bag-of-words logistic regression — because
#    "87 % accuracy" means nothing until you know what a trivial model scores;
# 3. the classifier: a new linear head on the **last real token** of the fine-tuned transformer;
# 4. why *last real* and not simply the last column: what padding does to a naive read-out;
# 5. a confusion matrix;
# 6. accuracy on the hard constructions against the plain ones.
#
# Quick mode (`MINIFT_QUICK=1`) uses the small `quick` base and a few steps: it shows the mechanics, not the
# accuracy. Full mode fine-tunes the `tiny` base (lesson 02) for 3 epochs, well under a minute on a CPU.

# %%
import atexit
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minift.data import load_task_data, per_class_f1
from minift.files import read_jsonl
from minift.finetune import (Classifier, FinetuneConfig, bow_logreg_baseline, encode_labelled, finetune,
                             load_finetuned, majority_baseline, predict)
from minift.finetune.classify import classify_collate, words
from minift.data.tasks import load_task
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
PRESET = "quick" if QUICK else "tiny"
STEPS = pick(quick={"max_steps": 8}, demo={"epochs": 3}, full={"epochs": 3})  # fine-tuning length (demo = full)
OUT = Path(tempfile.mkdtemp(prefix="minift_lesson04_"))  # runs go to a temporary directory, not the repository
atexit.register(shutil.rmtree, OUT, ignore_errors=True)  # ... removed when the script or the kernel ends
seed_everything(SEED)
projector_style()
torch.set_printoptions(precision=3, sci_mode=False)
print(f"mode: {MODE}; seed {SEED}; base: {PRESET}; fine-tuning: {STEPS}")

# %% [markdown]
# ## 1. The task
#
# `sentiment` is generated from the same small world the base was pretrained on (`minift/tasks.py`): 500 training,
# 100 validation and 200 test posts, labelled positive or negative, no post in two splits. Each post also carries
# the *construction* it was built with:
#
# | construction | example | what decides the label |
# |---|---|---|
# | plain | "the hotel was clean and the people were kind." | every opinion word agrees |
# | negated | "the weather was not bad." | "not" flips the opinion word |
# | but | "the food was great, but the staff were rude." | the clause after "but" |
# | although | "although the trains were late, our trip was excellent." | the clause *not* introduced by "although" |
#
# The last two put a positive and a negative opinion word in the same post, so counting words *should* not work —
# section 7 finds out why it half works anyway. And "although" never occurs in the pretraining corpus: the base has
# to learn what it means from the fine-tuning data. One caveat, said once: the labels follow the generator's rule
# (the clause after "but" decides), not a reader's judgement; a reader might call some of these posts mixed.

# %%
td = load_task_data("sentiment")
train, val, test = td.splits["train"], td.splits["val"], td.splits["test"]
print("labels (the head's output order):", td.labels)
for name, split in td.splits.items():
    print(f"{name:>5}: {len(split):3d} posts, labels {dict(Counter(ex['label'] for ex in split))}, "
          f"constructions {dict(Counter(ex['construction'] for ex in split))}")
print()
for c in ("plain", "negated", "but", "although"):
    ex = next(ex for ex in test if ex["construction"] == c)
    print(f"[{c:>8}] {ex['label']:>8}: {ex['text']}")

# %% [markdown]
# ## 2. Baselines
#
# **Majority class**: predict the most frequent training label for every post. Its accuracy is the share of that
# label in the test set — about 50 % here, since the classes are balanced. Anything near it has learned nothing.
#
# **Bag-of-words logistic regression**: represent a post by the counts of its words, $x_j = \log(1 + c_j)$ for each
# word $j$ of the training vocabulary, and fit a linear softmax classifier
#
# $$p(y \mid x) = \mathrm{softmax}(W x + b)_y$$
#
# by gradient descent on the cross-entropy (plus a little $L_2$ on $W$). It learns one weight per word and class:
# "great" pushes towards positive, "rude" towards negative. Word order is invisible to it, so "was *not* bad" looks
# like "bad" plus a "not" (a word that appears in positive and negative posts alike), and "great, but rude" like
# "rude, but great". With `ngram=2` it also counts word pairs ("not bad"), which fixes some negations but not
# which clause of a "but" sentence decides.

# %%
baselines = {
    "majority class": majority_baseline(train, test),
    "bag of words (1-gram)": bow_logreg_baseline(train, test),
    "bag of words (1+2-gram)": bow_logreg_baseline(train, test, ngram=2),
}
for name, b in baselines.items():
    extra = f", training accuracy {b['train_accuracy']:.1%}, {b['vocab_size']} features" if "vocab_size" in b else ""
    print(f"{name:<24} test accuracy {b['accuracy']:.1%}, macro-F1 {b['macro_f1']:.3f}{extra}")
a, b = "The food was great, but the staff were rude.", "The staff were rude, but the food was great."
print(f"\n{a!r} (negative) and {b!r} (positive)\nlook the same to a bag of words: {sorted(words(a))}, "
      f"equal: {sorted(words(a)) == sorted(words(b))}")

# %% [markdown]
# ## 3. The classifier: a head on the last real token
#
# A GPT produces one hidden vector per position. In a causal model the vector at position $t$ has seen only tokens
# $0 \dots t$, so the **last** token's vector is the only one that has read the whole post. `minift.finetune.Classifier`
# puts a new linear layer (the *head*) on it:
#
# $$h = \mathrm{GPT}(\text{ids}) \in \mathbb{R}^{T \times d} \qquad
#   \ell = \text{index of the last real token} \qquad
#   \text{logits} = W h_\ell + c, \quad W \in \mathbb{R}^{C \times d}$$
#
# The head has $C \cdot d + C$ parameters ($2 \cdot 192 + 2 = 386$ on the `tiny` base), initialised near zero; the
# language-model head is not used. Training minimises the cross-entropy of the logits against the label and, in
# full fine-tuning, updates every weight of the body as well as the head. `finetune` does the whole run: it builds
# the classifier, trains it with validation after every few steps, keeps the checkpoint with the lowest validation
# loss, scores it on the test split, and computes the two baselines on the same examples for the record.

# %%
cfg = FinetuneConfig(base=PRESET, task="sentiment", method="full", lr=5e-4, batch_size=16, seed=SEED, **STEPS)
res = finetune(cfg, OUT / "sentiment", force=True, progress=False)
test_m = res["metrics"]["test"]
print(f"{res['steps']} steps; best validation loss {res['val_loss']:.3f} at step "
      f"{res['best_step']}; {res['trainable_params']:,} trainable parameters (all of them)")
rows = [(name, b["accuracy"], b["macro_f1"]) for name, b in baselines.items()]
rows.append(("fine-tuned transformer", test_m["accuracy"], test_m["macro_f1"]))
print(f"\n| {'model':<24} | accuracy | macro-F1 |\n|{'-' * 26}|----------|----------|")
for name, acc, f1 in rows:
    print(f"| {name:<24} | {acc:8.1%} | {f1:8.3f} |")
report("fine-tuned test accuracy", test_m["accuracy"])
report("majority baseline", baselines["majority class"]["accuracy"])
report("bag of words (1+2-gram)", baselines["bag of words (1+2-gram)"]["accuracy"])
if not QUICK:
    claim("the fine-tuned transformer beats every baseline", all(test_m["accuracy"] > b["accuracy"]
                                                                 for b in baselines.values()))

history = read_jsonl(OUT / "sentiment" / "metrics.jsonl")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
axes[0].plot(*zip(*[(r["step"], r["train_loss"]) for r in history if "train_loss" in r]), label="training loss")
axes[0].plot(*zip(*[(r["step"], r["val_loss"]) for r in history if "val_loss" in r]), "o-", label="validation loss")
axes[0].set_xlabel("step")
axes[0].set_ylabel("cross-entropy")
axes[0].set_title("fine-tuning the classifier")
axes[0].legend()
names = [r[0] for r in rows]
bars = axes[1].barh(names, [r[1] for r in rows], color=["grey", "tab:orange", "tab:orange", "tab:blue"])
axes[1].bar_label(bars, labels=[f"{r[1]:.1%}" for r in rows], padding=3)
axes[1].set_xlim(0, 1.1)
axes[1].invert_yaxis()
axes[1].set_xlabel("test accuracy")
axes[1].set_title("the specialist against its baselines")
plt.show()

# %% [markdown]
# **Look at** the bars in order. The majority class sits at the share of the most common label: the floor. The bag
# of words gets about two posts in three from single words, and about three in four once it may also count word
# pairs. The fine-tuned transformer, which reads the words *in order*, should clear both. The loss curves say
# whether three epochs were enough (validation still falling) or too many (validation turning up while training
# keeps falling — lesson 03's overfitting).
#
# ## 4. Why the *last real* token
#
# Posts differ in length, and a batch is a rectangle, so shorter posts are padded on the right with `<|pad|>`
# tokens (attention mask 0). Causal attention already keeps a real token from seeing the pads that come after it,
# so the hidden vectors of the real tokens do not depend on the padding at all. But the *last column* of a padded
# row is a pad. A classifier that reads `h[:, -1]` reads a pad's vector — and that changes with how many pads the
# batch happened to add. The classifier instead reads position $\ell_b = \max\{t : \text{mask}_{b,t} = 1\}$.
#
# The test: the same post, once alone and once with 7 extra pads, through the trained classifier.

# %%
clf, tok, _ = load_finetuned(OUT / "sentiment")
assert isinstance(clf, Classifier)
text = test[1]["text"]
ids = tok.encode(text)
n_pad = 7
batch = torch.tensor([ids + [tok.pad_id] * n_pad])  # (1, T) with T = len(ids) + n_pad
mask = torch.tensor([[1] * len(ids) + [0] * n_pad])
with torch.no_grad():
    alone = clf(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
    padded = clf(batch, mask)[0]
    h = clf.body.hidden(batch, attention_mask=mask)  # (1, T, d)
    naive = clf.head(h[:, -1])[0]  # read the last column: a pad
print(f"post: {text!r} ({len(ids)} tokens, label {test[1]['label']})")
print(f"last real index ℓ with {n_pad} pads: {Classifier.last_token_index(mask).item()} "
      f"(= number of real tokens − 1 = {len(ids) - 1}); the last column is {batch.size(1) - 1}")
print(f"logits alone                         {alone}  → {td.labels[alone.argmax()]}")
print(f"logits padded, read at ℓ             {padded}  → {td.labels[padded.argmax()]}")
print(f"logits padded, read at column −1     {naive}  → {td.labels[naive.argmax()]}")
print(f"max |alone − padded at ℓ| = {(alone - padded).abs().max():.2e}; "
      f"max |alone − column −1| = {(alone - naive).abs().max():.2e}")
claim("the last real index is the number of real tokens − 1", Classifier.last_token_index(mask).item() == len(ids) - 1)
claim("reading the last real token ignores the padding", torch.allclose(alone, padded, atol=1e-5))

# %% [markdown]
# The read-out at $\ell$ reproduces the unpadded logits to float precision; the last column gives different
# numbers, sometimes even a different label. Over a whole test set the damage depends on how much padding each row
# gets, which depends on which other posts share its batch: the same post can get different answers in different
# batches. Below, the whole test split in right-padded batches of 32, read both ways.

# %%
enc = encode_labelled(tok, test, td.labels, clf.config.block_size)
batches = [classify_collate(tok.pad_id)(enc[i:i + 32]) for i in range(0, len(enc), 32)]
gold = torch.tensor([e["label"] for e in enc])
right_way = predict(clf, batches)
with torch.no_grad():
    column_minus_1 = torch.cat([clf.head(clf.body.hidden(b_ids, attention_mask=b_mask)[:, -1]).argmax(-1)
                                for b_ids, b_mask, _ in batches])
n_padded = sum(int((m == 0).any(dim=1).sum()) for _, m, _ in batches)
print(f"{n_padded} of {len(enc)} test posts carry padding in their batch")
print(f"accuracy reading the last real token : {(right_way == gold).float().mean():.1%}")
print(f"accuracy reading column −1           : {(column_minus_1 == gold).float().mean():.1%}")
report("accuracy reading column −1", (column_minus_1 == gold).float().mean())

# %% [markdown]
# ## 5. The confusion matrix
#
# Accuracy is one number; the confusion matrix $M_{ij}$ = number of posts of true class $i$ predicted as class $j$
# shows *which* mistakes the model makes. The diagonal holds the correct answers. An asymmetry (many more
# negatives called positive than the reverse) would point to a bias that a single accuracy hides; per-class
# precision $M_{jj} / \sum_i M_{ij}$ and recall $M_{ii} / \sum_j M_{ij}$ read it off.

# %%
C = len(td.labels)
confusion = torch.zeros(C, C, dtype=torch.long)
for g, p in zip(gold.tolist(), right_way.tolist()):
    confusion[g, p] += 1
print(confusion)
pred_names, gold_names = [td.labels[i] for i in right_way], [td.labels[i] for i in gold]
for label, f1 in per_class_f1(pred_names, gold_names, td.labels).items():
    j = td.labels.index(label)
    print(f"{label:>8}: precision {confusion[j, j] / max(int(confusion[:, j].sum()), 1):.1%}, "
          f"recall {confusion[j, j] / max(int(confusion[j].sum()), 1):.1%}, F1 {f1:.3f}")
fig, ax = plt.subplots(figsize=(4, 3.5))
ax.imshow(confusion, cmap="Blues")
for i in range(C):
    for j in range(C):
        ax.text(j, i, int(confusion[i, j]), ha="center", va="center",
                color="white" if confusion[i, j] > confusion.max() / 2 else "black", fontsize=14)
ax.set_xticks(range(C), td.labels)
ax.set_yticks(range(C), td.labels)
ax.set_xlabel("predicted")
ax.set_ylabel("true")
ax.set_title("fine-tuned classifier, test split")
plt.show()

# %% [markdown]
# ## 6. The hard constructions
#
# `finetune` breaks the test accuracy down by construction (`accuracy_by_construction` in results.json). For the
# two bag-of-words baselines we refit the same deterministic models and score them on each construction's posts
# separately.

# %%
by_c = test_m["accuracy_by_construction"]
constructions = [c for c in ("plain", "negated", "but", "although") if c in by_c]
subsets = {c: [ex for ex in test if ex["construction"] == c] for c in constructions}
per_c = {"bag of words (1-gram)": {c: bow_logreg_baseline(train, subsets[c])["accuracy"] for c in constructions},
         "bag of words (1+2-gram)": {c: bow_logreg_baseline(train, subsets[c], ngram=2)["accuracy"]
                                     for c in constructions},
         "fine-tuned transformer": {c: by_c[c] for c in constructions}}
print(f"{'construction':<12} {'n':>4}" + "".join(f"{name:>25}" for name in per_c))
for c in constructions:
    print(f"{c:<12} {len(subsets[c]):>4}" + "".join(f"{acc[c]:>25.1%}" for acc in per_c.values()))
x = torch.arange(len(constructions))
fig, ax = plt.subplots(figsize=(8, 3.5))
for j, (name, acc) in enumerate(per_c.items()):
    ax.bar(x + 0.27 * (j - 1), [acc[c] for c in constructions], 0.27, label=name,
           color=["tab:orange", "gold", "tab:blue"][j])
ax.axhline(0.5, color="grey", ls=":", label="chance")
ax.set_xticks(x, constructions)
ax.set_ylim(0, 1.05)
ax.set_ylabel("test accuracy")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
plt.show()
wrong = [(ex, td.labels[p]) for ex, p in zip(test, right_way.tolist()) if td.labels[p] != ex["label"]]
print(f"{len(wrong)} posts misclassified by the fine-tuned model; some of them:")
for ex, p in wrong[:6]:
    print(f"  [{ex['construction']:>8}] true {ex['label']:>8}, predicted {p:>8}: {ex['text']}")

# %% [markdown]
# **Look at** each model's profile. The 1-gram bag of words is mediocre *everywhere*, even on the plain posts: in
# its training data "bad" occurs in negative posts, in positive ones ("was not bad") and on the losing side of
# every "but", so no single weight per word can be right. Word pairs fix negation ("not bad" is its own feature)
# and with it most plain posts, but not "but": which clause decides is a matter of order across the sentence.
# The transformer reads the words in order: plain and negated posts should be (nearly) solved and most "but" posts
# too. "Although" is the hard case — a word the base never saw in pretraining, whose deciding clause may come
# first ("B, although A.") or second ("Although A, B.") — and most of the misclassified posts above are of that
# kind: 500 training posts were not enough to learn it as well as the rest.
#
# But look again at the bag of words on "but" and "although": about 70 %, far above the coin flip a model blind to
# word order should manage on posts whose two clauses pull opposite ways. Something in those posts gives the label
# away. That is worth a section of its own.
#
# ## 7. A shortcut in the data
#
# Read a few mixed posts and the answer is at the end: a quarter of all posts close with a verdict of the label's
# polarity — "Highly recommended.", "Never again." (`make_post` adds it, as real reviewers do). On a post that
# ends with "Never again." the "but" clause no longer matters: one phrase decides, and a bag of words learns that
# phrase. A model that does well *because of* such a phrase has learned a **shortcut**: it will fail on posts
# without one. The cure is the data scientist's: find the shortcut, remove it, measure again.
# `build_sentiment(verdicts=False)` gives the same posts with the closing phrase taken off.

# %%
mixed = [ex for ex in test if ex["construction"] in ("but", "although")]
print(f"posts with a closing verdict: {sum(bool(ex['verdict']) for ex in train) / len(train):.0%} of training, "
      f"{sum(bool(ex['verdict']) for ex in mixed)} of the {len(mixed)} mixed test posts")
for label, part in (("with a verdict", [ex for ex in mixed if ex["verdict"]]),
                    ("without one", [ex for ex in mixed if not ex["verdict"]])):
    print(f"bag of words (1+2-gram) on mixed posts {label:<15}: "
          f"{bow_logreg_baseline(train, part, ngram=2)['accuracy']:.1%} of {len(part)}")
clean_train, clean_test = (load_task("sentiment", s, verdicts=False) for s in ("train", "test"))
clean_mixed = [ex for ex in clean_test if ex["construction"] in ("but", "although")]
clean_enc = encode_labelled(tok, clean_mixed, td.labels, clf.config.block_size)
clean_batches = [classify_collate(tok.pad_id)(clean_enc[i:i + 32]) for i in range(0, len(clean_enc), 32)]
clean_gold = torch.tensor([e["label"] for e in clean_enc])
shortcut = {
    "bag of words, data with verdicts": bow_logreg_baseline(train, mixed, ngram=2)["accuracy"],
    "bag of words, verdicts removed": bow_logreg_baseline(clean_train, clean_mixed, ngram=2)["accuracy"],
    "fine-tuned, data with verdicts": sum(by_c[c] * len(subsets[c]) for c in ("but", "although")) / len(mixed),
    "fine-tuned, verdicts removed from the test": (predict(clf, clean_batches) == clean_gold).float().mean().item(),
}
for name, acc in shortcut.items():
    report(f"mixed posts: {name}", acc)
if not QUICK:
    claim("removing the verdicts costs the bag of words more than the transformer on mixed posts",
          shortcut["bag of words, data with verdicts"] - shortcut["bag of words, verdicts removed"]
          > shortcut["fine-tuned, data with verdicts"] - shortcut["fine-tuned, verdicts removed from the test"])

# %% [markdown]
# **Look at** the four numbers. Without the closing phrases the bag of words loses several points on the mixed
# posts (seed 0: 67 → 59 %): part of its score was the phrase, not an understanding of "but". The transformer,
# trained on the same data *with* the shortcut, loses less on average when the phrase is taken away from its test
# posts (over three seeds about a third as much): it reads the clauses too. What the bag of words keeps is still
# above a coin flip — other surface regularities of the generator remain, and a benchmark can hide more than one
# shortcut. This is the everyday form of data quality: a benchmark number is only as good as the absence of
# shortcuts in the data, and the way to check is an ablation like this one — remove the suspect feature, measure
# again.
# (The lessons keep the verdicts: every number in the later lessons and in README was measured on this data.)
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 18 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | fine-tuned test accuracy | 0.883 ± 0.008 (0.875 – 0.890) |
# | majority baseline | 0.485 (every seed) |
# | bag of words (1+2-gram) | 0.770 (every seed) |
# | accuracy reading column −1 | 0.542 ± 0.025 (0.525 – 0.575) |
# | mixed posts: bag of words, data with verdicts | 0.667 (every seed) |
# | mixed posts: bag of words, verdicts removed | 0.590 (every seed) |
# | mixed posts: fine-tuned, data with verdicts | 0.757 ± 0.036 (0.720 – 0.791) |
# | mixed posts: fine-tuned, verdicts removed from the test | 0.730 ± 0.048 (0.686 – 0.781) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/04_classification.py` (each asks for one change, says what to
# expect, and solves it). More ideas to try on your own:
#
# 1. Freeze the body (`FinetuneConfig(freeze_until=0)` trains only the final LayerNorm and the head): how much of
#    the accuracy is the pretrained representation, and how much comes from changing it?
# 2. Add a neutral class: `minift.data.tasks.build_sentiment(0, neutral=True)` makes three-way data; export it with
#    `minift data export` or write it as JSONL, and fine-tune with `FinetuneConfig(data=...)`.
# 3. Give the bag of words bigrams (`ngram=2`) per construction: which construction do word pairs fix?
# 4. Train with fewer examples (`n_train=50`, `n_train=100`): at what size does the transformer stop beating the
#    bag of words?
# 5. Compare with a LoRA classifier (`method="lora"`): accuracy, trainable parameters and forgetting
#    (`res["forgetting"]`) side by side.
