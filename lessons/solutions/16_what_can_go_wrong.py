# %% [markdown]
# # Lesson 16 — exercises with worked solutions
#
# The risk studies of lesson 16 on the `tiny` base. Full mode about 3 minutes on 2 CPU cores; workshop mode
# (`MINIFT_DEMO=1`) smaller sweeps; `MINIFT_QUICK=1` runs a small random model for a few steps (a smoke test).

# %%
import atexit
import copy
import shutil
import tempfile
from pathlib import Path

from minift.base.cache import resolve_base
from minift.model import GPT, GPTConfig
from minift.risks.bias import COLUMNS as BIAS_COLUMNS, bias_study
from minift.risks.config import BiasConfig, UnalignConfig
from minift.risks.unalign import COLUMNS as UNALIGN_COLUMNS, unalign_study
from minift.tables import markdown_table
from minift.training import seed_everything
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
QUICK = MODE == "quick"
OUT = Path(tempfile.mkdtemp(prefix="minift_solutions16_"))
atexit.register(shutil.rmtree, OUT, ignore_errors=True)
if QUICK:  # the quick base's 64-token context cannot hold a hiring profile: a small random model, its tokenizer
    _, tok, _ = resolve_base("quick", progress=False)
    seed_everything(SEED)
    base = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=192, n_layer=2, n_head=2, d_model=32))
else:
    base, tok, _ = resolve_base("tiny", progress=False)
print(f"mode: {MODE}; seed {SEED}")

# %% [markdown]
# **Exercise 1 — where does the decoder switch?** Lesson 16 trained at skews 0.5, 0.7 and 0.9. Fill in 0.6 and
# 0.8. *Expect:* the model's decisions do not follow the data's lean smoothly: greedy decoding turns any lean the
# model has learned into an all-or-nothing rule, so the greedy bias jumps towards 1 somewhere between 0.6 and 0.8.

# %%
config = pick(quick=BiasConfig(skews=(0.6,), mitigations=("none",), n_train=16, n_test=8, epochs=1, seed=SEED),
              demo=BiasConfig(skews=(0.6, 0.8), mitigations=("none",), seed=SEED),
              full=BiasConfig(skews=(0.6, 0.8), mitigations=("none",), seed=SEED))
bias = bias_study(config, OUT / "bias", force=True, progress=False, model_and_tok=(copy.deepcopy(base), tok, "tiny"))
print(markdown_table(bias["rows"], BIAS_COLUMNS))
for r in bias["rows"]:
    if r["mitigation"] == "none":
        report(f"skew {r['skew p']}: greedy bias", r["greedy bias"])
        report(f"skew {r['skew p']}: flip rate", r["flip rate"])
claim("the study reports the data's own lean", all(r["data bias"] is not None for r in bias["rows"]
                                                    if r["mitigation"] == "none"))

# %% [markdown]
# *Solution.* Read the greedy-bias column against the data-bias column: a model that has learned any lean at all
# turns it into whole decisions under greedy decoding, so the decisions' bias grows faster than the data's (lesson
# 16 measured 0.49 at no lean and 1.00 at 0.9). In workshop mode (seed 0) the switch lies between the two: at 0.6
# the decisions show no lean (greedy bias 0.52, no decision flips with the group), at 0.8 every decision follows
# the group (greedy bias 1.00; 88 % of decisions flip when only the group is changed).
#
# **Exercise 2 — the batch size as a safety setting.** Qi et al. found small batches more harmful. Fine-tune the
# aligned model on 25 benign shop answers with batches of 1 and of 8 (lesson 16 used 8). *Expect:* batch 1 takes 8
# times as many steps over the same examples and erases more of the refusal.

# %%
un = pick(quick=UnalignConfig(ks=(2,), kinds=("benign",), n_eval=4, align_epochs=0.1, max_new_tokens=8,
                              batch_sizes=(1, 2), sweep_k=2, seed=SEED),
          demo=UnalignConfig(ks=(25,), kinds=("benign",), batch_sizes=(1, 8), sweep_k=25, seed=SEED),
          full=UnalignConfig(ks=(25,), kinds=("benign",), batch_sizes=(1, 8), sweep_k=25, seed=SEED))
study = unalign_study(un, OUT / "unalign", force=True, progress=False, model_and_tok=(copy.deepcopy(base), tok,
                                                                                     "tiny"))
print(markdown_table(study["rows"], UNALIGN_COLUMNS))
batch = {r["batch"]: r for r in study["rows"] if r["arm"] == "batch"}
for b, r in batch.items():
    report(f"benign, batch {b}: refusal", r["refusal"])

# %% [markdown]
# *Solution.* Batches of one erased more of the refusal (workshop mode, seed 0: 92 % of harmful requests still
# refused, against 100 % at batch 8): at the same learning rate and epochs they take eight times as many steps over
# the same examples, and each step moves the weights further from the aligned model — the direction Qi et al. found.
# One seed and 25 examples: a small effect here; lesson 16's sweep over k shows the larger ones. A provider who
# fine-tunes for customers must fix the batch size and learning rate, not only screen the data.
