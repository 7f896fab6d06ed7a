"""Benchmark: the SFT loss on the supervised positions only against the loss over every position, same process.

What it measures. One training step (forward, backward, AdamW update) with `minift.finetune.sft.sft_loss_fn`, which
gathers the supervised positions before the LM head (`GPT.forward(positions=...)`), against the same step with the
whole (B, T, V) logits and −100 ignored (what the loss did before), on real batches of a built-in task laid out by
the task's template. The two steps alternate (A B B A …) and each is timed with the process's CPU clock
(`time.process_time`) at one thread, so another job on the machine slows both alike and neither gets its cores;
the median of --repeats and the spread are reported, and the ratio gathered ÷ full. Before timing, the two losses
are checked equal (to float32 rounding).

Why it wins. The LM head is a d × V product per position, the largest matrix of a small model (V = 4096, d = 192
for `tiny`; V = 49,152, d = 576 for SmolLM2), and its softmax is V wide; an instruction batch supervises only its
answers: about 10 % of a qa batch's positions, 25 % of json's. Everything before the head (the blocks) still runs
on every position, so the gain is the head's share of the step.

Examples:
    python scripts/bench_sft_loss.py --base tiny --task qa            (the cached `tiny` base; about 30 s)
    python scripts/bench_sft_loss.py --base smollm2 --task json --method lora --batch-size 8 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import bench_common as bc
from minift.finetune.sft import sft_loss_fn
from minift.model.gpt import IGNORE_INDEX


def full_loss_fn(model, batch):
    """The loss as it was: logits at every position, −100 ignored by the cross-entropy."""
    ids, targets = batch[0], batch[1]
    logits, _ = model(ids)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, (targets != IGNORE_INDEX).sum()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="tiny", help="a preset, smollm2 or a model directory (default: tiny)")
    p.add_argument("--task", default="qa", help="an instruction task: qa, json or style (default: qa)")
    p.add_argument("--method", default="full", help="full or a PEFT method (default: full)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7, help="timed steps of each kind (median reported)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, batch, opt = bc.sft_setup(args.base, args.task, args.method, args.batch_size)
    share = float((batch[1] != IGNORE_INDEX).float().mean())

    def step(loss_fn):
        loss, n = loss_fn(model, batch)
        (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    a, b = step(sft_loss_fn), step(full_loss_fn)  # warm-up, and the check that both compute the same loss
    if abs(a - b) > 1e-4 * max(1.0, abs(b)):
        raise SystemExit(f"FAILED: the gathered loss {a} differs from the full one {b}")
    times = {"gathered": [], "full": []}
    for r in range(args.repeats):
        for name in (("gathered", "full") if r % 2 == 0 else ("full", "gathered")):
            t0 = time.process_time()
            step(sft_loss_fn if name == "gathered" else full_loss_fn)
            times[name].append(time.process_time() - t0)
    rows = []
    for name in ("gathered", "full"):
        med = statistics.median(times[name])
        rows.append({"loss": name, "CPU s/step": med, "spread": (max(times[name]) - min(times[name])) / med})
    rows[0]["× full"] = rows[0]["CPU s/step"] / rows[1]["CPU s/step"]
    rows[1]["× full"] = 1.0
    print(f"# SFT step, {args.base} ({model.num_parameters() / 1e6:.1f}M parameters), {args.task}, {args.method}, "
          f"batch {args.batch_size} × {batch[0].size(1)} positions, {share:.1%} supervised, "
          f"{torch.get_num_threads()} thread(s), CPU time, median of {args.repeats}\n")
    bc.print_table(rows)
    print(f"\nthe same loss: {a:.6f} (gathered) vs {b:.6f} (full)")


if __name__ == "__main__":
    main()
