# %% [markdown]
# # Lesson 11 — exercises with worked solutions
#
# 4-bit formats on SmolLM2's real weights (no training: both exercises take well under a minute in full mode;
# `MINIFT_QUICK=1` measures a few matrices only).

# %%
import torch

from minift.base import load_base
from minift.quant import error
from minift.tables import markdown_table
from minift.workshop import claim, mode, pick, report, seed

MODE, SEED = mode(), seed()
model, _ = load_base("smollm2", progress=False)
linears = [m.weight.detach() for n, m in model.named_modules()
           if isinstance(m, torch.nn.Linear) and n.split(".")[-1] != "lm_head"]
sample = linears[:pick(quick=3, demo=30, full=len(linears))]
print(f"mode: {MODE}; {len(sample)} of SmolLM2's {len(linears)} linear weights")


def relative_error(fmt: str, block_size: int, double_quant: bool = True) -> tuple[float, float]:
    """(relative mean squared error over the sample, bits per weight)."""
    num = sum(error(x, fmt, block_size, double_quant)["mse"] * x.numel() for x in sample)
    den = sum(float(x.square().sum()) for x in sample)
    return num / den, error(sample[0], fmt, block_size, double_quant)["bits"]


# %% [markdown]
# **Exercise 1 — the block size.** NF4 with blocks of 32, 64 (QLoRA's) and 256 weights. *Expect:* smaller blocks
# follow the local scale of the weights more closely (less error) and pay more bits for their constants; the
# error falls less than the bits rise — 64 is a compromise, not a law.

# %%
rows = []
for block in pick(quick=[64, 256], demo=[32, 64, 256], full=[32, 64, 256]):
    rel, bits = relative_error("nf4", block)
    rows.append({"block": block, "bits per weight": round(bits, 3), "relative error": round(rel, 5)})
    report(f"NF4, block {block}: relative error", rel, fmt=".5f")
print(markdown_table(rows))
claim("smaller blocks, smaller error, more bits", rows[0]["relative error"] < rows[-1]["relative error"]
      and rows[0]["bits per weight"] > rows[-1]["bits per weight"])

# %% [markdown]
# *Solution.* Error and bits move in opposite directions (table above): from 256 to 32 the error falls by a few
# tens of percent while the constants' cost grows from a few hundredths of a bit per weight to a quarter.
#
# **Exercise 2 — is double quantisation free?** The same NF4 with and without quantising the block constants.
# *Expect:* 0.373 fewer bits per weight (4.5 → 4.127) for an error that barely changes: the constants are
# quantised to 8 bits, far finer than the 4-bit weights they scale.

# %%
plain, plain_bits = relative_error("nf4", 64, double_quant=False)
dq, dq_bits = relative_error("nf4", 64, double_quant=True)
report("bits saved by double quantisation", plain_bits - dq_bits)
report("relative error change (×)", dq / plain, fmt=".4f")
claim("double quantisation saves 0.373 bits per weight", abs(plain_bits - dq_bits - 0.373) < 0.001)

# %% [markdown]
# *Solution.* 0.373 bits saved; the error ratio is within a fraction of a percent of 1 (numbers above). On a
# 65-billion-parameter model those bits are 3 GB, for nothing — which is why QLoRA turns it on by default.
