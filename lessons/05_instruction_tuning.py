# %% [markdown]
# # Lesson 05 — Instruction tuning: templates, loss masking, format, and where the answers come from
#
# A base model continues text; it does not answer. **Supervised fine-tuning (SFT)**, or instruction tuning, shows
# it a few hundred (instruction, response) pairs laid out in a fixed *prompt template* and trains it to produce the
# response. This lesson builds that up and measures what it does and does not teach:
#
# 1. the prompt template, and one training example token by token: the labels, the −100 mask, the EOS target;
# 2. a first run on the `qa` task, and a tokenisation trap that makes the model look far less knowledgeable
#    than it is;
# 3. loss masking on vs off: train on the answer only, or on the prompt too?
# 4. format adherence: does the output parse as JSON — the base model against the fine-tuned one;
# 5. where the answers come from: questions about facts the fine-tuning data taught, against facts it never
#    mentioned (held out on purpose), next to what the base model knew before any fine-tuning.
#
# Full mode fine-tunes the `tiny` base from lesson 02 four times, about 2 minutes on 2 CPU cores; workshop mode
# (`MINIFT_DEMO=1`) trains the same runs and scores 100 questions of each split instead of all, about a minute.
# (Two epochs instead of three are not enough: the model then writes `{"sentent": ...}`.) Quick mode
# (`MINIFT_QUICK=1`) uses the small `quick` base and a few steps: a smoke test whose numbers mean nothing.

# %%
import atexit
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minift.base import load_base
from minift.data import exact_match, load_task_data, normalize_answer
from minift.finetune import (ALPACA, FinetuneConfig, PLAIN, collate_right, encode_dataset, encode_example,
                             evaluate_task, finetune, generate_batch, lm_val_loss, load_finetuned,
                             max_new_tokens_for, pretraining_batches, sft_collate, sft_loss_fn)
from minift.model import IGNORE_INDEX
from minift.training import TrainConfig, epoch_batches, evaluate, seed_everything, train
from minift.workshop import claim, mode, pick, projector_style, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
PRESET = "quick" if QUICK else "tiny"
EPOCHS = pick(quick=0.25, demo=3.0, full=3.0)
N_EVAL = pick(quick=24, demo=100, full=None)  # score only the first examples of each split (None: all)
LR_JSON = 5e-4  # 3 epochs instead of finetune's 10, so a little above its default 3e-4 for full fine-tuning
LR_QA = 1e-3  # qa answers are a few tokens each: 3 epochs are only 66 steps, so larger steps
OUT = Path(tempfile.mkdtemp(prefix="minift_lesson05_"))  # runs go to a temporary directory, not the repository
atexit.register(shutil.rmtree, OUT, ignore_errors=True)  # ... removed when the script or the kernel ends
seed_everything(SEED)
projector_style()
base, tok = load_base(PRESET, progress=False)
print(f"mode: {MODE}; seed {SEED}; base: {PRESET} (context {base.config.block_size} tokens); "
      f"{EPOCHS} epochs per run")

# %% [markdown]
# ## 1. The prompt template and one encoded example
#
# Every example is laid out the same way, so that at inference time the model recognises "this is where the
# answer goes". minift's default is the Alpaca layout: a preamble, `### Instruction:`, an optional
# `### Input:`, and `### Response:`, after which the answer follows. The `plain` template is the same without the
# preamble sentence. Our base has a context of only 128 tokens, and the preamble takes a good part of it, so this
# lesson uses `plain` (`finetune`'s default, `template="auto"`, makes the same choice for contexts under 256
# tokens).

# %%
qa = load_task_data("qa")
js = load_task_data("json")
print(ALPACA.format_prompt(js.splits["train"][0]["instruction"], js.splits["train"][0]["input"]) + "⟨answer⟩")
print("=" * 60)
print(PLAIN.format_prompt(js.splits["train"][0]["instruction"], js.splits["train"][0]["input"]) + "⟨answer⟩")
print("=" * 60)
for name, t in (("alpaca", ALPACA), ("plain", PLAIN)):
    n = [len(tok.encode(t.format_prompt(ex["instruction"], ex["input"]))) for ex in js.splits["train"]]
    print(f"{name:>6}: json prompts are {min(n)}–{max(n)} tokens long (mean {sum(n) / len(n):.0f})")
TEMPLATE = PLAIN

# %% [markdown]
# The prompt and the answer are tokenised separately and joined, with the end-of-text token `<|endoftext|>` (EOS)
# appended to the answer (and one space written in front of it: section 2 shows why that space matters):
# $s = \text{prompt} \,\|\, \text{answer} \,\|\, \text{EOS}$, $n$ tokens. As in pretraining, the input is
# $s_{0..n-2}$ and the label at position $t$ is the next token $s_{t+1}$. Then the labels of the prompt are replaced
# by −100, the value PyTorch's cross-entropy ignores, so the loss is the mean over the answer tokens only:
#
# $$\mathcal{L} = -\frac{1}{N} \sum_{t\,:\,y_t \neq -100} \log p_\theta(y_t \mid s_{\le t}),
#   \qquad N = \#\{t : y_t \neq -100\}$$
#
# With a prompt of $P$ tokens, exactly $P-1$ labels are masked (the first prompt token is nobody's label); the
# first supervised label sits at position $P-1$, the last prompt token, which predicts the first answer token;
# and the last label is EOS, so the model also learns to *stop*.

# %%
ex = qa.splits["train"][0]
enc = encode_example(tok, ex, TEMPLATE)
P = len(tok.encode(TEMPLATE.format_prompt(ex["instruction"], ex["input"])))
print(f"instruction: {ex['instruction']!r} → answer {ex['output']!r}; prompt P = {P} tokens, "
      f"{len(enc['input_ids'])} input positions")
print(f"{'t':>3}  {'input token':<18} label")
for t, (i, y) in enumerate(zip(enc["input_ids"], enc["labels"])):
    shown = "−100 (masked)" if y == IGNORE_INDEX else f"{tok.decode([y], skip_special=False)!r}"
    print(f"{t:>3}  {tok.decode([i], skip_special=False)!r:<18} {shown}")
n_masked = sum(y == IGNORE_INDEX for y in enc["labels"])
print(f"masked labels: {n_masked} (= P − 1 = {P - 1}); supervised: {len(enc['labels']) - n_masked}, the last one "
      f"is EOS: {enc['labels'][-1] == tok.eos_id}")
claim("the prompt's P − 1 labels are masked (−100) and the last target is EOS",
      n_masked == P - 1 and enc["labels"][-1] == tok.eos_id)

# %% [markdown]
# A batch is a rectangle, so shorter rows are padded on the right with `<|pad|>`; their labels are −100 too, so
# padding never adds to the loss. (For batched *generation* the rows are padded on the left instead, so that every
# row's last column is a real token to continue from; the model takes positions from the attention mask, so a
# padded row computes exactly what it would alone.)

# %%
rows = [encode_example(tok, e, TEMPLATE) for e in qa.splits["train"][:3]]
ids, targets, mask = collate_right(rows, tok.pad_id)
print("input ids (B, T):", tuple(ids.shape))
print("targets, last 8 columns:\n", targets[:, -8:])
print("attention mask, last 8 columns:\n", mask[:, -8:])

# %% [markdown]
# ## 2. A first run on `qa`, and a tokenisation trap
#
# `qa` asks about the world of the pretraining corpus: "What is the capital of France?" → "Paris.". A quarter of
# the countries, animals and shop products are **held out**: none of their facts appear in the fine-tuning data
# (the `heldout` split). The other facts are split into train / validation / test by *question*, so a test
# question was never trained on, though the same fact was often asked in another phrasing.
#
# To compare several variants on equal terms we write out the steps `finetune` takes for an instruction task —
# encode, batch, `train`, generate greedily, score exact match — in one small function. The validation loss is
# always measured on answer tokens only, whatever the training loss supervises, so all runs' curves compare.
# Each run is 3 epochs of the 341 training questions at a peak learning rate of $10^{-3}$ (twice `finetune`'s
# default for full fine-tuning: an answer is only a few tokens, so 66 steps carry little signal each).

# %%
probe = pretraining_batches(tok, PRESET)  # held-out pretraining windows, for forgetting
loss_before = lm_val_loss(base, probe)


def sft_run(splits: dict, template=TEMPLATE, train_on_prompt: bool = False, epochs: float = EPOCHS) -> dict:
    """Full fine-tuning of a fresh copy of the base on instruction examples; returns curves and scores."""
    seed_everything(SEED)
    model, _ = load_base(PRESET, progress=False)
    train_enc, stats = encode_dataset(tok, splits["train"], template, train_on_prompt=train_on_prompt)
    val_enc, _ = encode_dataset(tok, splits["val"], template)  # masked: the answer-only loss
    collate = sft_collate(tok.pad_id)
    batches = epoch_batches(train_enc, 16, collate, seed=SEED)
    steps = max(1, round(epochs * len(batches)))
    cfg = TrainConfig(max_steps=steps, lr=LR_QA, warmup_steps=steps // 20, weight_decay=0.0,
                      eval_every=max(1, steps // 10), log_every=max(1, steps // 30), progress=False)
    val = [collate(val_enc[i:i + 16]) for i in range(0, len(val_enc), 16)]
    result = train(model, sft_loss_fn, batches, cfg, val_batches=val)
    model.eval()
    # scoring as evaluate_task does it for qa: greedy answers (cut at EOS), exact match after normalisation
    max_new = max_new_tokens_for(tok, splits["train"], model.config.block_size)
    answers = {s: generate_batch(model, tok, splits[s][:N_EVAL], max_new, template) for s in ("test", "heldout")}
    metrics = {s: {"exact_match": exact_match(a, [e["output"] for e in splits[s][:N_EVAL]])}
               for s, a in answers.items()}
    n_sup = sum(sum(y != IGNORE_INDEX for y in e["labels"]) for e in train_enc)
    return {"model": model, "metrics": metrics, "answers": answers, "steps": steps,
            "supervised_tokens": n_sup, "answer_val_loss": evaluate(model, sft_loss_fn, val),
            "val_curve": [(r["step"], r["val_loss"]) for r in result.history if "val_loss" in r],
            "forgetting": (loss_before, lm_val_loss(model, probe))}


def show_run(name: str, r: dict) -> None:
    m = r["metrics"]
    print(f"{name:<28} {r['steps']} steps; answer-only val loss {r['answer_val_loss']:.3f}; "
          f"exact match: test {m['test']['exact_match']:.1%}, heldout {m['heldout']['exact_match']:.1%}; "
          f"pretraining loss {r['forgetting'][0]:.3f} → {r['forgetting'][1]:.3f}")


FLUSH = replace(TEMPLATE, response_prefix="")  # the answer starts the line: "### Response:\nBerlin."
qa_runs = {"answer at line start": sft_run(qa.splits, FLUSH)}
show_run("answer at line start", qa_runs["answer at line start"])

# %% [markdown]
# This first run writes each answer flush at the start of the line after `### Response:`, the way most templates
# lay it out. Those exact-match numbers are low. Does the base simply not know the facts? Ask it in the form its
# pretraining corpus uses for questions — `Q: … \nA: …` — with no fine-tuning at all, greedily:

# %%


def ask_base(examples: list[dict]) -> tuple[list[str], list[bool], list[bool]]:
    """The base, prompted in the corpus's own Q/A format: its answers (first line), whether each is exactly the
    reference, and whether it contains the reference somewhere ("Addis Ababa is the capital of Ethiopia.")."""
    prompts = [f"Q: {e['instruction']}\nA:" for e in examples]
    answers = [a.strip().split("\n")[0] for a in generate_batch(base, tok, prompts, 12, template=None)]
    refs = [normalize_answer(e["output"]) for e in examples]
    return (answers, [normalize_answer(a) == r for a, r in zip(answers, refs)],
            [r in normalize_answer(a) for a, r in zip(answers, refs)])


base_qa = {s: ask_base(qa.splits[s][:N_EVAL]) for s in ("test", "heldout")}
for s, (_, exact, contains) in base_qa.items():
    print(f"base model, corpus Q/A format, {s:>7} questions: {sum(exact) / len(exact):.1%} answered exactly, "
          f"{sum(contains) / len(contains):.1%} contain the answer")
for word in ("Berlin.", " Berlin.", "Danish.", " Danish."):
    ids = tok.encode(word)
    print(f"{word!r:>12} → {[tok.decode([i]) for i in ids]}")

# %% [markdown]
# The base knows most of the facts (and says many of them in exactly the expected words); the fine-tuned model
# fails to say them. The tokens show why. In the corpus
# an answer follows a space ("A: Berlin."), and the byte-level tokenizer has one token for " Berlin" *with its
# leading space*. That run put the answer at the start of a line, with no space, and "Berlin." at the start of
# a line is spelled with other tokens — "B", "erlin" — which the base has rarely had to produce. Fine-tuning then
# has to teach a new spelling of every answer: it can for the answers it trains on, but not for facts it never
# sees. (Train longer and the taught answers improve while the held-out ones lag behind: try `epochs=6`.) The model
# did not lack the knowledge; it lacked the *tokens* in which it knows it.
#
# The fix changes the layout, not the model: put one space in front of every answer, as part of the answer's
# tokens, so it is spelled as in the corpus. That is what minift's templates do by default
# (`PromptTemplate.response_prefix = " "`, which `TEMPLATE` has); `generate_batch` removes the space from the
# answers again.

# %%
print(f"response prefix of TEMPLATE: {TEMPLATE.response_prefix!r}, of FLUSH: {FLUSH.response_prefix!r}")
for t in (FLUSH, TEMPLATE):
    enc = encode_example(tok, qa.splits["train"][0], t)
    print(f"supervised tokens: {[tok.decode([y], skip_special=False) for y in enc['labels'] if y != IGNORE_INDEX]}")
qa_runs["answer after a space"] = sft_run(qa.splits)
for name, r in qa_runs.items():
    show_run(name, r)

# %% [markdown]
# ## 3. Loss masking: answer only, or the prompt too?
#
# With `train_on_prompt=True` the prompt tokens keep their labels and the loss also asks the model to predict the
# instruction. Both runs below see the same batches for the same number of steps; only the labels differ.

# %%
qa_runs["prompt trained too"] = sft_run(qa.splits, train_on_prompt=True)
masked, unmasked = qa_runs["answer after a space"], qa_runs["prompt trained too"]
ratio = unmasked["supervised_tokens"] / masked["supervised_tokens"]
claim("training on the prompt too supervises several times more tokens", ratio > 2, f"× {ratio:.1f}")
print(f"supervised training tokens: {masked['supervised_tokens']:,} masked (answers + EOS) vs "
      f"{unmasked['supervised_tokens']:,} unmasked (× {ratio:.1f})")
for name in ("answer after a space", "prompt trained too"):
    show_run(name, qa_runs[name])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
for name, r in qa_runs.items():
    axes[0].plot(*zip(*r["val_curve"]), "o-", label=name)
axes[0].set_xlabel("step")
axes[0].set_ylabel("answer-only validation loss")
axes[0].legend()
x = torch.arange(len(qa_runs))
for j, split in enumerate(("test", "heldout")):
    axes[1].bar(x + 0.4 * j - 0.2, [r["metrics"][split]["exact_match"] for r in qa_runs.values()], 0.4,
                label=f"{split} exact match")
axes[1].set_xticks(x, [n.replace(", ", ",\n") for n in qa_runs], fontsize=11)
axes[1].set_ylim(0, 1)
axes[1].legend()
plt.show()

# %% [markdown]
# **Look at** the left panel: it compares the runs on the same measure, the loss of the answer tokens of held-out
# questions. Both fixes matter. The loss is a *mean* over supervised tokens, so when the prompt is trained too, the
# answer tokens are only about one in ten of them and get about a tenth of the weight they get under masking: the
# same number of steps teaches the answers far less, and spends the rest on predicting questions — the template
# words, which are the same in every example, and the question words, which are not the task. With a fixed
# training budget, masking is the better use of it; that is why it is the default in minift (as in Alpaca and
# TRL), and `train_on_prompt=True` is there to compare. (Training on prompts can help when prompts are long and
# answers short and the data set is tiny — it is then extra language-modelling data — but that is not our case.)
#
# ## 4. Format adherence: JSON
#
# The `json` task asks for the sentiment and the topic of a post as a strict JSON object:
# `{"sentiment": "positive", "topic": "food"}`. Two measures of greedy generations:
#
# * **validity**: the share that parse as one JSON object, with nothing around it;
# * **schema compliance**: valid, with exactly the keys `sentiment` and `topic`, each with an allowed value.
#
# First the base model, prompted with the same template. Then `finetune` on the 400 training posts.

# %%
n_json = pick(quick=24, demo=100, full=None)
max_new = max_new_tokens_for(tok, js.splits["train"], base.config.block_size)
base_json, _ = evaluate_task(base, tok, js, TEMPLATE, max_new, n_eval=n_json)
res = finetune(FinetuneConfig(base=PRESET, task="json", method="full", template="plain", lr=LR_JSON, epochs=EPOCHS,
                              n_eval=n_json, seed=SEED), OUT / "json", force=True, progress=False)
tuned_json = res["metrics"]
for name, m in (("base", base_json["test"]), ("fine-tuned", tuned_json["test"])):
    print(f"{name:>10}: JSON validity {m['json_validity']:.1%}, schema compliance {m['json_compliance']:.1%}, "
          f"both fields right (exact match) {m['exact_match']:.1%}, failure kinds {m['reasons']}")
report("JSON validity, base", base_json["test"]["json_validity"])
report("JSON validity, fine-tuned", tuned_json["test"]["json_validity"])
report("JSON schema compliance, fine-tuned", tuned_json["test"]["json_compliance"])
if not QUICK:
    claim("fine-tuning turns invalid JSON into valid JSON", tuned_json["test"]["json_validity"] >= 0.9
          > base_json["test"]["json_validity"] + 0.5)
print(f"fine-tuning: {res['steps']} steps; pretraining loss "
      f"{res['forgetting']['before_loss']:.3f} → {res['forgetting']['after_loss']:.3f}")
tuned, _, _ = load_finetuned(OUT / "json")
shown = js.splits["test"][:4]
for e, b, t in zip(shown, generate_batch(base, tok, shown, max_new, TEMPLATE),
                   generate_batch(tuned, tok, shown, max_new, TEMPLATE)):
    print(f"\npost:       {e['input']}\nbase:       {b!r}\nfine-tuned: {t!r}\nreference:  {e['output']}")
fig, ax = plt.subplots(figsize=(6, 3.3))
kinds = ["json_validity", "json_compliance", "exact_match"]
for j, (name, m) in enumerate((("base", base_json["test"]), ("fine-tuned", tuned_json["test"]))):
    bars = ax.bar(torch.arange(3) + 0.4 * j - 0.2, [m[k] for k in kinds], 0.4, label=name)
    ax.bar_label(bars, labels=[f"{m[k]:.0%}" for k in kinds])
ax.set_xticks(range(3), ["valid JSON", "schema-compliant", "both fields right"])
ax.set_ylim(0, 1.15)
ax.legend()
plt.show()

# %% [markdown]
# **Look at** what the base writes: it continues the text with something from its corpus — a question and its
# answer, a bit of dialogue — and never a bare JSON object, although the corpus does contain JSON records. Three
# epochs on 400 examples later, every output is valid JSON and schema-compliant: format is
# what fine-tuning teaches fastest. Whether the *values* are right (the last pair of bars) is a different
# question: that is the sentiment-and-topic classification problem of lesson 04, now answered through text, and
# the posts with negation or "but" are where the values go wrong.
#
# ## 5. Where do the answers come from?
#
# Back to `qa` (the run with the default layout, answer after a space, and masking). Exact match on the test
# questions, whose facts the fine-tuning data taught (in another phrasing), against the held-out facts it never
# mentioned — and both against what the base knew in its own Q/A format before any fine-tuning (section 2).

# %%
answers = qa_runs["answer after a space"]["answers"]
print(f"{'exact match':<42}{'test (taught)':>15}{'heldout (never taught)':>24}")
for label, j in (("base, corpus Q/A format", 1), ("base, Q/A format, answer contained", 2)):
    print(f"{label:<42}" + "".join(f"{sum(base_qa[s][j]) / len(base_qa[s][j]):>{w}.1%}"
                                   for s, w in (("test", 15), ("heldout", 24))))
for name, r in qa_runs.items():
    print(f"{'fine-tuned, ' + name:<42}{r['metrics']['test']['exact_match']:>15.1%}"
          f"{r['metrics']['heldout']['exact_match']:>24.1%}")
held = qa.splits["heldout"][:N_EVAL]
right = [normalize_answer(a) == normalize_answer(e["output"]) for a, e in zip(answers["heldout"], held)]
knew = base_qa["heldout"][2]  # the base's answer contains the reference
print("\nheldout facts:            fine-tuned right   fine-tuned wrong")
for k, label in ((True, "base knew it"), (False, "base did not know it")):
    print(f"  {label:<22}{sum(r for r, b in zip(right, knew) if b == k):>16}"
          f"{sum(not r for r, b in zip(right, knew) if b == k):>19}")
for name, r in qa_runs.items():
    report(f"qa exact match, {name}, test (taught)", r["metrics"]["test"]["exact_match"])
    report(f"qa exact match, {name}, heldout (never taught)", r["metrics"]["heldout"]["exact_match"])
if not QUICK:
    claim("the leading space decides: the answer after a space scores far higher than flush at the line start",
          qa_runs["answer after a space"]["metrics"]["test"]["exact_match"]
          > qa_runs["answer at line start"]["metrics"]["test"]["exact_match"] + 0.3)
if MODE == "full":  # the notebook's run; across seeds the held-out score moves more (see "What you should see")
    claim("held-out facts score close to taught ones (the answers come from pretraining)",
          qa_runs["answer after a space"]["metrics"]["heldout"]["exact_match"]
          > qa_runs["answer after a space"]["metrics"]["test"]["exact_match"] - 0.15)
unknown = [row for row in zip(held, base_qa["heldout"][0], answers["heldout"], knew) if not row[3]]
print(f"\nthe {len(unknown)} heldout facts the base did not know (at most 10), with both models' answers:")
for e, b_ans, ft_ans, _ in unknown[:10]:
    print(f"  {e['instruction']:<44} base {b_ans!r:<36} fine-tuned {ft_ans.strip()!r:<14} "
          f"reference {e['output'].strip()!r}")
for s in ("test", "heldout"):
    print(f"\n{s} questions, fine-tuned model:")
    for e, a in list(zip(qa.splits[s], answers[s]))[:6]:
        print(f"  {e['instruction']:<46} → {a.strip()!r:<18} (reference {e['output'].strip()!r})")

# %% [markdown]
# **Look at** the first rows. Prompted in its own format, the base already *contains* the right answer for nearly
# every question, held out or not — but says it exactly much less often, because it answers in its own style
# ("People in Denmark speak Danish."). The fine-tuned model answers in the trained style, a few words and stop,
# and its exact match on the held-out facts comes close to that on the taught ones. The contingency table makes
# the point per fact: the held-out facts it gets right are overwhelmingly facts the base knew. Read the few the
# base "did not know": mostly it answered a *different question* about the right thing (a cow's sound when asked
# where it lives, or the capital itself when asked for its country). That is a failure to follow the question,
# not missing knowledge — and following the question is exactly what fine-tuning taught. Fine-tuning taught the
# *format*: read the instruction, answer in a few words, stop. The answers come from pretraining.
#
# One run is one run: over seeds (workshop mode, "What you should see") the taught facts score within a few points
# of each other, the held-out ones over a much wider range — on some seeds a short fine-tune leaves much of the
# base's knowledge out of reach of the new format. The contingency table is the way to tell which happened.
#
# The price was set in lesson 03: these runs moved every weight with a fairly large learning rate, and the
# loss on pretraining text (printed with each run) went up a lot. Parameter-efficient methods (later lessons) aim at the
# same format with less damage.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 40–50 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | JSON validity, base | 0.000 (every seed) |
# | JSON validity, fine-tuned | 1.00 (every seed) |
# | JSON schema compliance, fine-tuned | 0.90 ± 0.14 (0.73 – 1.00) |
# | qa exact match, answer at line start, test (taught) | 0.098 ± 0.051 (0.044 – 0.147) |
# | qa exact match, answer at line start, heldout (never taught) | 0.120 ± 0.030 (0.080 – 0.140) |
# | qa exact match, answer after a space, test (taught) | 0.848 ± 0.044 (0.794 – 0.882) |
# | qa exact match, answer after a space, heldout (never taught) | 0.750 ± 0.215 (0.470 – 0.900) |
# | qa exact match, prompt trained too, test (taught) | 0.172 ± 0.051 (0.132 – 0.235) |
# | qa exact match, prompt trained too, heldout (never taught) | 0.120 ± 0.055 (0.060 – 0.170) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/05_instruction_tuning.py` (each asks for one change, says what
# to expect, and solves it). More ideas to try on your own:
#
# 1. Use the Alpaca template (`TEMPLATE = ALPACA`): longer prompts, less room in a 128-token context. What happens
#    to the JSON task, whose posts then get truncated?
# 2. Train the JSON task for a single epoch (`epochs=1`): is the format learned before the values are?
# 3. In `sft_run`, train without EOS (`encode_dataset(..., add_eos=False)`) and generate: does the model still stop?
# 4. Fine-tune on the `style` task (pirate voice) with `finetune(FinetuneConfig(base=PRESET, task="style",
#    template="plain"), OUT / "style")` and generate from it on a plain question: how much of the style leaks
#    into other tasks? (Lesson 19 makes the pirate voice a brand voice and scores it with a rubric.)
# 5. Try LoRA (`method="lora"`) on `qa` and compare the forgetting numbers with the full runs here.
