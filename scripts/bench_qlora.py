"""QLoRA measured: the formats' storage and error, SmolLM2's perplexity per format, its weight footprint, the memory
and the time of a LoRA vs a QLoRA step, and the merge trap after a short run. Prints markdown tables.

    python scripts/bench_qlora.py                 # every part (about 10 minutes on 2 cores; SmolLM2 is fetched once)
    python scripts/bench_qlora.py --parts error,perplexity

Parts:
    error        bits per weight and quantisation error (mse, max, mse / mean w²) of NF4, FP4, Int4 (block 64, double
                 quantisation) and ggml's Q4_0, Q4_1, on Gaussian weights and on SmolLM2's linear weights
    perplexity   SmolLM2 on the fixed general-English windows of the forgetting probe, its linear weights replaced by
                 their round trip in each format
    memory       the weight footprint in fp32, bf16, NF4; a LoRA and a QLoRA step's memory by kind (activations from
                 autograd's saved tensors), and the peak RSS of each measured in a fresh process
    step         LoRA vs QLoRA step time, alternating in one process on the same batch (CPU clock)
    merge        a short QLoRA run on json, then each merge target: the share of the update kept, the error brought
                 in, the logit drift

Times are on this process's CPU clock (1 thread unless --threads), so other work on the machine does not change them.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import statistics
import subprocess
import sys

import torch
from bench_common import alternate, markdown_table, sft_setup

from minift.base.cache import load_base
from minift.finetune.forgetting import lm_val_loss, pretraining_batches
from minift.finetune.sft import sft_loss_fn
from minift.peft import apply_method, method_config
from minift.peft.qlora_measures import memory_breakdown, merge_trap
from minift.quant.formats import FORMATS, error, fake_quantize_linears_, linear_weights
from minift.quant.linear4bit import weight_memory_bytes
from minift.training.costs import own_peak_rss_mb, reset_peak_rss
from minift.training.optim import AdamW, param_groups

PARTS = ("error", "perplexity", "memory", "step", "merge")
MB = 2 ** 20


def part_error() -> list[dict]:
    torch.manual_seed(0)
    gauss = torch.randn(1024, 1024)
    model, _ = load_base("smollm2", progress=False)
    real = [lin.weight.detach() for lin in linear_weights(model).values()]
    rows = []
    # NF4 at ggml's block of 32 too, so that NF4 vs Q4_0 is also seen at equal block size
    for fmt, block in [(f, 64) for f in FORMATS[:3]] + [("nf4", 32)] + [(f, 32) for f in FORMATS[3:]]:
        g = error(gauss, fmt, block)
        sq = mx = wsq = 0.0
        for w in real:
            e = error(w, fmt, block)
            sq += e["mse"] * w.numel()
            wsq += float(w.square().sum())
            mx = max(mx, e["max"])
        rows.append({"format": fmt, "block": block, "bits/weight": f"{g['bits']:.3f}",
                     "Gaussian mse": f"{g['mse']:.5f}", "Gaussian max |err|": f"{g['max']:.3f}",
                     "SmolLM2 mse / mean w²": f"{sq / wsq:.5f}", "SmolLM2 max |err|": f"{mx:.4f}"})
    return rows


def part_perplexity() -> list[dict]:
    rows = []
    for fmt in ("as loaded", *FORMATS):
        model, tok = load_base("smollm2", progress=False)
        if fmt != "as loaded":
            fake_quantize_linears_(model, fmt)
        loss = lm_val_loss(model.eval(), pretraining_batches(tok, None))
        rows.append({"linear weights": fmt, "loss": f"{loss:.4f}", "perplexity": f"{math.exp(loss):.2f}"})
    return rows


def peak_child(method: str, batch: int) -> None:
    """In a fresh process: load, apply, hand freed memory back to the OS, reset the peak, 2 training steps; print
    the resident memory before the steps and the peak during them (MiB) as JSON."""
    model, b, opt = sft_setup("smollm2", "json", method, batch)
    gc.collect()
    if sys.platform.startswith("linux"):  # glibc keeps freed blocks (the fp32 weights QLoRA replaced) unless asked
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    reset_peak_rss()
    resident = own_peak_rss_mb()
    for _ in range(2):
        loss, _ = sft_loss_fn(model, b)
        loss.backward()
        opt.step()
        opt.zero_grad()
    print(json.dumps({"resident_mb": resident, "peak_mb": own_peak_rss_mb()}))


def part_memory(batch: int) -> tuple[list[dict], list[dict]]:
    model, _ = load_base("smollm2", progress=False)
    fp32 = weight_memory_bytes(model)
    bf16 = fp32 // 2
    apply_method(model, method_config("qlora"))
    nf4 = weight_memory_bytes(model)
    emb = model.tok_emb.weight.numel()
    footprint = [{"weights": "fp32", "MiB": fp32 / MB}, {"weights": "bf16", "MiB": bf16 / MB},
                 {"weights": "NF4 linear layers + fp32 embedding", "MiB": nf4 / MB},
                 {"weights": "NF4 linear layers + bf16 embedding", "MiB": (nf4 - 2 * emb) / MB}]
    rows = []
    for method in ("lora", "qlora"):
        m, b, _ = sft_setup("smollm2", "json", method, batch)
        parts = memory_breakdown(m, lambda: sft_loss_fn(m, b)[0])
        out = subprocess.run([sys.executable, __file__, "--peak-child", method, "--batch-size", str(batch)],
                             capture_output=True, text=True, check=True)
        rss = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"method": method, **{k: v / MB for k, v in parts.items()},
                     "measured RSS before the step": rss["resident_mb"], "measured peak RSS": rss["peak_mb"]})
    return footprint, rows


def part_step(batch: int, repeats: int) -> list[dict]:
    setups = {m: sft_setup("smollm2", "json", m, batch) for m in ("lora", "qlora")}

    def step(m):
        model, b, opt = setups[m]
        loss, _ = sft_loss_fn(model, b)
        loss.backward()
        opt.step()
        opt.zero_grad()

    for m in setups:  # warm-up
        step(m)
    times = alternate({m: (lambda m=m: step(m)) for m in setups}, repeats)
    med = {m: statistics.median(t) for m, t in times.items()}
    return [{"method": m, "step s (median)": med[m], "min": min(times[m]), "max": max(times[m]),
             "× LoRA": med[m] / med["lora"]} for m in setups]


def part_merge(steps: int, batch: int) -> list[dict]:
    plain, _ = load_base("smollm2", progress=False)
    original = plain.state_dict()
    model, b, _ = sft_setup("smollm2", "json", "qlora", batch)
    opt = AdamW(param_groups(model, 0.0), lr=method_config("qlora").default_lr)
    for _ in range(steps):
        loss, _ = sft_loss_fn(model, b)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    trap = merge_trap(model, original, b[0][:2])
    return [{"merge into": k, "update kept": v["kept"], "error brought in (× ‖ΔW‖)": v["error"],
             "max logit drift": v["drift"]} for k, v in trap.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--merge-steps", type=int, default=20)
    p.add_argument("--peak-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: steady CPU-clock timings)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak_child:
        return peak_child(args.peak_child, args.batch_size)
    parts = args.parts.split(",")
    print(f"# QLoRA measured ({torch.get_num_threads()} thread(s), torch {torch.__version__})\n")
    if "error" in parts:
        print("## Quantisation error\n\n" + markdown_table(part_error()) + "\n")
    if "perplexity" in parts:
        print("## SmolLM2 perplexity per format\n\n" + markdown_table(part_perplexity()) + "\n")
    if "memory" in parts:
        footprint, rows = part_memory(args.batch_size)
        print("## Weight footprint\n\n" + markdown_table(footprint) + "\n")
        print(f"## Training memory, batch {args.batch_size} (MiB)\n\n" + markdown_table(rows) + "\n")
    if "step" in parts:
        print(f"## Step time, batch {args.batch_size}\n\n" + markdown_table(part_step(args.batch_size,
                                                                                       args.repeats)) + "\n")
    if "merge" in parts:
        print(f"## Merge trap after {args.merge_steps} steps\n\n"
              + markdown_table(part_merge(args.merge_steps, args.batch_size)) + "\n")


if __name__ == "__main__":
    main()
