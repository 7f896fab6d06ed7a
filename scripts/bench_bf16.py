"""Benchmark: a fine-tuning step in float32 against the same step under bf16 autocast on this CPU, same process.

What it measures. One SFT training step (forward, backward, AdamW update; `minift.finetune.sft.sft_loss_fn`) on a
batch of a built-in task, once in float32 and once inside `autocast_context(cpu, "bf16")` — the matmuls in
bfloat16, the weights, gradients and optimizer state in float32, as `minift finetune --dtype bf16` runs it. The two
alternate (A B B A …); each is timed on the process's CPU clock; the median of --repeats is reported with the ratio
bf16 ÷ fp32 and the difference of the two losses on the same weights (what bf16's 8-bit mantissa changes).

A CPU without bf16 instructions (AVX512-BF16 or AMX) emulates bf16 and is slower; minift refuses --dtype bf16
there, and this script says so instead of timing it.

Examples:
    python scripts/bench_bf16.py --base tiny --task qa --method full
    python scripts/bench_bf16.py --base smollm2 --task json --method lora --batch-size 8 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import bench_common as bc
from minift.finetune.sft import sft_loss_fn
from minift.training.device import autocast_context, cpu_has_bf16


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="tiny")
    p.add_argument("--task", default="qa", help="an instruction task: qa, json or style")
    p.add_argument("--method", default="full")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not cpu_has_bf16():
        raise SystemExit("this CPU has no bf16 instructions (AVX512-BF16 or AMX): bf16 would only be emulated")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, batch, opt = bc.sft_setup(args.base, args.task, args.method, args.batch_size)
    cpu = torch.device("cpu")

    def step(precision: str) -> float:
        with autocast_context(cpu, precision):
            loss, n = sft_loss_fn(model, batch)
        (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach() / n)

    losses = {p: step(p) for p in ("fp32", "bf16")}  # warm-up, and the loss of each on the same weights
    times = {"fp32": [], "bf16": []}
    for r in range(args.repeats):
        for p in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            t0 = time.process_time()
            step(p)
            times[p].append(time.process_time() - t0)
    med = {p: statistics.median(t) for p, t in times.items()}
    print(f"# SFT step fp32 vs bf16 autocast: {args.base} ({model.num_parameters() / 1e6:.1f}M parameters), "
          f"{args.task}, {args.method}, batch {args.batch_size} × {batch[0].size(1)}, {torch.get_num_threads()} "
          f"thread(s), CPU time, median of {args.repeats}\n")
    bc.print_table([{"precision": p, "CPU s/step": med[p], "× fp32": med[p] / med["fp32"], "loss": losses[p]}
                    for p in ("fp32", "bf16")])
    print(f"\nloss difference bf16 − fp32 on the same weights: {losses['bf16'] - losses['fp32']:+.2e}")


if __name__ == "__main__":
    main()
