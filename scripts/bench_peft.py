"""Benchmark: LoRA against full fine-tuning on the same model — step time, memory, optimizer state, parameters.

What runs. One GPT (default: the `tiny` shape d=192, L=4, H=4, V=2048, T=128, batch 16), randomly initialised,
copied twice: one copy trains every weight (full fine-tuning), the other gets LoRA (r=8, α=16, on attn.q and attn.v)
with everything else frozen. One training step = forward, next-token loss, backward, global-norm clipping at 1.0
and minift's AdamW step — what `minift.training.train` does per step. Both copies see the same batches; their steps
ALTERNATE (full, lora, lora, full, …) in one process, each step is timed on its own (with a device synchronise) and
the median is reported, so drift on a shared machine hits both alike. Peak memory is measured in a fresh process
per method (a second run of this script with --memory-of), because a process's peak RSS never goes back down; on
CPU the table shows the peak RSS and, in brackets, how much building the model and three steps added to it (the
rest is Python and PyTorch). At this shape the activations of a batch dominate and are the same for both methods,
so the RSS difference is about the weight gradients plus the optimizer state (columns 5 and 4), within the
allocator's noise; on CUDA the allocated bytes are exact.
On CUDA the forward pass runs under bf16 autocast (weights, gradients and AdamW state stay float32), as in minift.

Goals (issue 5): LoRA step ≤ 0.8 × full step; LoRA optimizer state ≤ 5 % of full's.

Why LoRA is NOT much faster per step (microsoft/LoRA#24). Count the matmul FLOPs per token, N = weights in matmuls
(the position table excluded, the tied token matrix once, as the LM head):
    full:  forward 2N  +  backward 2N (gradients of the activations) + 2N (gradients of the weights)  = 6N
    LoRA:  forward 2N  +  backward 2N (activations: the loss must still flow down through every frozen layer to
           reach the adapters in the lower blocks)  +  ≈ 0 (weights: only A and B)                     ≈ 4N
plus 12·L·T·d for the attention scores and weighted sums, which have no weights and cost the same in both. So even
a perfect implementation saves at most a third of the arithmetic — (4N + 12LTd) / (6N + 12LTd) ≈ 0.70 on the tiny
shape — and the extra small matmuls x·Aᵀ·Bᵀ (r = 8 columns: poor hardware utilisation, extra kernel launches)
give some of it back. The frozen base's forward and backward still run. What LoRA does save is memory and storage:
no gradient tensors for the frozen weights, AdamW moments for 2·r·(d_in + d_out) numbers per adapted layer instead
of every weight (8 bytes each), and a checkpoint of kilobytes instead of the whole model. That is what lets a big
model be fine-tuned on a small GPU — the LoRA paper's GPT-3 run went from 1.2 TB to 350 GB of VRAM, and it was
~25 % faster there only because the optimizer and the gradient traffic of 175 B weights dominate at that scale.

Fraction of peak: useful FLOP/s (FLOPs per token above × tokens/s) ÷ the measured matmul peak
(bench_common.matmul_peak_flops); LoRA's useful FLOPs are 4N + 6·N_lora + 12LTd.

CPU (about a minute): OMP_NUM_THREADS=1 python scripts/bench_peft.py --threads 1
GPU: python scripts/bench_peft.py --device cuda --batch-size 64 --steps 50 (larger: --d-model 768 --n-layer 12)
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import bench_common as bc
from minift.training.costs import own_peak_rss_mb, reset_peak_rss
from minift.model.gpt import GPT, GPTConfig
from minift.training.optim import AdamW, clip_grad_norm, param_groups
from minift.peft import adapter_state_dict, apply_method, method_config
from minift.training.batches import lm_loss_fn, random_windows

METHODS = ("full", "lora")


def build(args, method: str, device: torch.device) -> tuple[GPT, AdamW]:
    torch.manual_seed(args.seed)  # the same initial weights for both methods
    model = GPT(GPTConfig(vocab_size=args.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                          n_head=args.n_head, d_model=args.d_model))
    if method == "lora":
        apply_method(model, method_config("lora", r=args.rank, alpha=2 * args.rank, targets=args.targets.split(",")))
    model.to(device).train()
    return model, AdamW(param_groups(model, 0.0), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)


def make_step(model: GPT, opt: AdamW, device: torch.device, dtype: torch.dtype):
    params = [p for p in model.parameters() if p.requires_grad]

    def step(batch) -> None:
        x, y = (t.to(device, non_blocking=True) for t in batch)
        with bc.autocast(device, dtype):
            loss_sum, n = lm_loss_fn(model, (x, y))
        (loss_sum / n).backward()
        clip_grad_norm(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def state_bytes(opt: AdamW) -> int:
    """Bytes of every tensor in the optimizer state (m, v; the step counters are plain numbers or 0-d tensors)."""
    return sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
               if isinstance(t, torch.Tensor) and t.dim() > 0)


def checkpoint_bytes(model: GPT, method: str) -> int:
    """What a run saves: the whole state_dict (full) or only the adapter tensors (LoRA), as torch.save bytes."""
    buf = io.BytesIO()
    torch.save(model.state_dict() if method == "full" else adapter_state_dict(model), buf)
    return buf.getbuffer().nbytes


def mb(n_bytes: int) -> str:
    return f"{n_bytes / 2 ** 20:.3f} MB" if n_bytes < 2 ** 20 else f"{n_bytes / 2 ** 20:.1f} MB"


def measure_memory(args, method: str) -> dict:
    """Run in a fresh process: peak memory of building the model and a few training steps. CPU: the process's own
    peak RSS (VmHWM; ru_maxrss would inherit the parent's peak) and its rise above the RSS before the model."""
    device, dtype = bc.resolve_device(args)
    batches = random_windows(torch.randint(0, args.vocab_size, (100_000,)), args.block_size, args.batch_size, 0)
    AdamW([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo: count that as baseline
    reset_peak_rss()
    before = own_peak_rss_mb()
    bc.reset_cuda_peak(device)
    model, opt = build(args, method, device)
    step = make_step(model, opt, device, dtype)
    for i in range(3):
        step(batches(i))
    bc.synchronize(device)
    if device.type == "cuda":  # every allocated tensor belongs to this run
        return {"kind": "CUDA allocated", "peak_mb": bc.cuda_peak_mb(device), "added_mb": None}
    peak = own_peak_rss_mb()
    if peak is None:  # not Linux: ru_maxrss, inherited floor and all
        return {"kind": "RSS", "peak_mb": bc.peak_rss_mb(), "added_mb": None}
    return {"kind": "RSS", "peak_mb": peak, "added_mb": peak - before}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bc.add_model_args(p, vocab_size=2048, block_size=128, d_model=192)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rank", type=int, default=8, help="LoRA rank r (α = 2r, scale 2)")
    p.add_argument("--targets", default="attn.q,attn.v", help="LoRA target modules")
    p.add_argument("--steps", type=int, default=30, help="timed steps per method")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per method first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-of", choices=METHODS, help=argparse.SUPPRESS)  # internal: the per-method process
    bc.add_device_args(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.memory_of:
        print(json.dumps(measure_memory(args, args.memory_of)))
        return
    device, dtype = bc.resolve_device(args)
    L, T, d, B = args.n_layer, args.block_size, args.d_model, args.batch_size
    runs = {m: build(args, m, device) for m in METHODS}
    steps = {m: make_step(*runs[m], device, dtype) for m in METHODS}
    stream = torch.randint(0, args.vocab_size, (max(200_000, 4 * B * T),),
                           generator=torch.Generator().manual_seed(0))
    batches = random_windows(stream, T, B, seed=args.seed)

    times = {m: [] for m in METHODS}
    for i in range(args.warmup + args.steps):
        for m in (METHODS if i % 2 == 0 else METHODS[::-1]):  # alternate which goes first
            bc.synchronize(device)
            t0 = time.perf_counter()
            steps[m](batches(i))
            bc.synchronize(device)
            if i >= args.warmup:
                times[m].append(time.perf_counter() - t0)

    here = Path(__file__).resolve()
    memory = {}
    for m in METHODS:  # a fresh process each: peak RSS only ever grows within one
        proc = subprocess.run([sys.executable, str(here), *argv, "--memory-of", m], capture_output=True, text=True,
                              check=True)
        memory[m] = json.loads(proc.stdout.strip().splitlines()[-1])

    peak = bc.matmul_peak_flops(device, dtype)
    full_model = runs["full"][0]
    n_mm = full_model.num_parameters(exclude_position=True)
    rows, med = [], {}
    for m in METHODS:
        model, opt = runs[m]
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_lora = trainable if m == "lora" else 0
        flops = (6 * n_mm if m == "full" else 4 * n_mm + 6 * n_lora) + 12 * L * T * d
        med[m] = statistics.median(times[m])
        tps = B * T / med[m]
        rows.append({
            "method": m, "trainable": f"{trainable:,}",
            "% of model": f"{100 * trainable / model.num_parameters():.3g}%",
            "optimizer state": mb(state_bytes(opt)), "state_bytes": state_bytes(opt),
            "weight grads": mb(4 * trainable), "checkpoint": mb(checkpoint_bytes(model, m)),
            "step ms (median)": 1e3 * med[m], "spread": (max(times[m]) - min(times[m])) / med[m],
            "tokens/s": tps, "MFLOP/token": flops / 1e6, "fraction of peak": tps * flops / peak,
            f"peak {memory[m]['kind']}": f"{memory[m]['peak_mb']:.0f} MB" + (
                "" if memory[m]["added_mb"] is None else f" (model + steps: {memory[m]['added_mb']:.0f} MB)"),
        })
    state = {r["method"]: r.pop("state_bytes") for r in rows}

    print(f"# LoRA vs full fine-tuning — {bc.describe(device, dtype)}")
    print(f"model d={d} L={L} H={args.n_head} V={args.vocab_size} T={T}, batch {B} ({B * T} tokens/step); LoRA r="
          f"{args.rank} on {args.targets}; {args.warmup} warm-up + {args.steps} timed steps each, alternating")
    print(f"measured matmul peak {peak / 1e9:.3g} GFLOP/s; matmul weights N = {n_mm:,}\n")
    bc.print_table(rows)
    ratio, frac = med["lora"] / med["full"], state["lora"] / state["full"]
    ideal = (4 * n_mm + 12 * L * T * d) / (6 * n_mm + 12 * L * T * d)
    verdict = "met" if ratio <= 0.8 else f"missed by {ratio - 0.8:.3f}"
    print(f"\nLoRA step / full step = {ratio:.3f}   (goal ≤ 0.8: {verdict}; FLOP-count ideal {ideal:.2f})")
    print(f"LoRA optimizer state / full = {100 * frac:.3f} %   (goal ≤ 5 %: {'met' if frac <= 0.05 else 'missed'})")


if __name__ == "__main__":
    main()
