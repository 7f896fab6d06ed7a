"""Benchmark: training throughput on a GPU — a GPT-2-small-shape model (124M parameters) and SmolLM2-135M, full
fine-tuning and LoRA, bf16 autocast, SDPA's flash kernel, a fused AdamW, optionally `torch.compile` — as tokens/s
and model FLOPs utilisation (MFU) against the device's dense bf16 peak.

One prepared script, for one call on a rented GPU: it prints everything it measured as one table and exits.

    MFU = (training FLOPs per token × tokens/s) ÷ peak,  training FLOPs per token = 6·N + 12·L·T·d
    (N the non-embedding-position parameters; forward 2N, backward 4N, plus attention's scores: PaLM's formula,
    Chowdhery et al., 2022). LoRA's step does less (no weight gradients for the frozen base: about 4N instead of
    6N), so its MFU is computed with 4·N + 12·L·T·d.

Peaks (dense bf16, from the vendors' datasheets): H100 and H200 SXM 989 TFLOP/s, A100 312 TFLOP/s. An unknown
device prints no MFU rather than a guessed one.

The optimizer: minift's hand-written AdamW (`--optimizer minift`, what `minift.training.train` uses) or PyTorch's
fused one (`--optimizer fused`, one kernel for the whole update), which shows what the update costs at this size.

--smoke runs the same code on a tiny shape on the CPU for two steps (the test suite does, so the script cannot rot
on machines without a GPU). SmolLM2 is included when it is in the cache (`minift fetch smollm2`).

Example (one H100/H200, a few minutes):
    python scripts/bench_gpu.py --batch-size 16 --block-size 1024 --steps 20 --optimizer fused --compile
"""

from __future__ import annotations

import argparse
import time

import torch

import bench_common as bc
from minift.base.cache import base_dir
from minift.model.gpt import GPT, GPTConfig
from minift.peft import apply_method, method_config
from minift.training.batches import lm_loss_fn
from minift.training.optim import AdamW, param_groups

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s, datasheet
GPT2_SMALL = dict(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, d_model=768)  # V rounded up to 64·k


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--block-size", type=int, default=1024, help="tokens per sequence (SmolLM2: the same)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, allocator)")
    p.add_argument("--optimizer", choices=["minift", "fused"], default="fused")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (first steps compile)")
    p.add_argument("--smoke", action="store_true", help="a tiny shape on the CPU, two steps: checks the script")
    return p.parse_args(argv)


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def models(args, device):
    """(name, model factory) pairs: GPT-2-small's shape (random weights) and SmolLM2 when cached."""
    if args.smoke:
        yield "gpt (smoke)", lambda: GPT(GPTConfig(vocab_size=128, block_size=args.block_size, n_layer=2, n_head=2,
                                                    d_model=32))
        return
    yield "gpt2-124M shape", lambda: GPT(GPTConfig(**{**GPT2_SMALL, "block_size": args.block_size}))
    if (base_dir("smollm2") / "config.json").is_file():
        from minift.base.store import load_model_dir

        yield "smollm2-135M", lambda: load_model_dir(base_dir("smollm2"))[0]


def run(make, method: str, args, device, dtype) -> dict:
    torch.manual_seed(0)
    model = make().to(device).train()
    if method == "lora":
        apply_method(model, method_config("lora"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "fused" and device.type == "cuda":
        opt = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.0, fused=True)
    else:
        opt = AdamW(param_groups(model, 0.0), lr=1e-5)
    net = torch.compile(model) if args.compile else model
    B, T, V = args.batch_size, args.block_size, model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, V, (B, T + 1), generator=g).to(device)
    batch = (x[:, :-1], x[:, 1:])

    def step():
        with bc.autocast(device, dtype):
            loss_sum, n = lm_loss_fn(net, batch)
        (loss_sum / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    bc.synchronize(device)
    bc.reset_cuda_peak(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    bc.synchronize(device)
    seconds = (time.perf_counter() - t0) / args.steps
    cfg = model.config
    n = model.num_parameters(exclude_position=getattr(model, "pos_emb", None) is not None)
    flops = (6 if method == "full" else 4) * n + 12 * cfg.n_layer * T * cfg.d_model
    tps = B * T / seconds
    peak = peak_flops(device)
    return {"model": "", "method": method, "trainable": f"{sum(p.numel() for p in trainable):,}",
            "s/step": seconds, "tokens/s": tps, "MFU": f"{flops * tps / peak:.1%}" if peak else "—",
            "peak memory": bc.memory_line(device)}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.smoke:
        args.batch_size, args.block_size, args.steps, args.warmup = 2, 16, 2, 1
    device = torch.device("cpu") if args.smoke else bc.pick_device("auto")
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # any float32 leftovers (the optimizer) use tensor cores
    peak = peak_flops(device)
    print(f"# GPU training throughput: {bc.describe(device, dtype)}; batch {args.batch_size} × {args.block_size} "
          f"tokens; optimizer {args.optimizer}; compile {args.compile}; peak "
          f"{f'{peak / 1e12:.0f} TFLOP/s (dense bf16, datasheet)' if peak else 'unknown: no MFU'}\n")
    rows = []
    for name, make in models(args, device):
        for method in ("full", "lora"):
            row = run(make, method, args, device, dtype)
            row["model"] = name
            rows.append(row)
    bc.print_table(rows)


if __name__ == "__main__":
    main()
