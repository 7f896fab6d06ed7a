"""Benchmark: training throughput of minift against a bare PyTorch loop of the same shape, same process.

What runs.
  * minift: `minift.model.GPT`, trained by `minift.training.train` (its `minift.training.optim.AdamW`, cosine schedule, global
    clipping at 1.0, loss = summed per-token cross-entropy ÷ N) on `random_windows` batches, progress bar off, no
    checkpoints, no validation.
  * reference: a minimal nanoGPT-style model written below (fused q/k/v projection `c_attn`, attention through
    `F.scaled_dot_product_attention(is_causal=True)`, tied head, GPT-2 init), `torch.optim.AdamW`, and the bare
    loop: forward, mean cross-entropy, backward, `clip_grad_norm_`, step. Same batches (the same `random_windows`
    function), same batch and block size, same number of steps, same precision (bf16 autocast on CUDA as minift's
    loop uses there, float32 elsewhere), same parameter count (checked).
Each run does --warmup untimed steps then --steps timed ones; runs alternate (minift, reference, reference,
minift, …) for --rounds rounds so drift on a shared machine hits both; the median over rounds is reported, with
its spread. minift's step times come from its own per-step log (log_every=1): the time of each whole step, batch
creation included; the reference is timed the same way, with a device synchronise around the timed steps.
The clock (--clock) is the process's CPU time by default — with --threads 1 another job on the machine then delays
the run without changing its measured cost — or wall time (a GPU; a quiet machine with several threads). For the
CPU clock minift's loop is pointed at time.process_time for the benchmark's duration (its logs measure with
whatever `time.perf_counter` it is given).

How to read the numbers.
  * tokens/s = input positions (batch × block) processed per second of training.
  * ratio = minift tokens/s ÷ reference tokens/s. Goal ≥ 0.95: the readable loop costs < 5 %. Where it is lower,
    the gap is minift's per-step bookkeeping (a loss `.item()` per step, which makes the GPU wait, the gradient
    division by N, the schedule) and separate q, k, v matmuls instead of one fused one; it shrinks as the model grows.
  * fraction of peak (MFU) = model FLOP/s ÷ measured matmul FLOP/s (bench_common.matmul_peak_flops, measured
    with the same clock once per round, interleaved with the runs, and the median taken), with
        model FLOPs per token = 6·N + 12·L·T·d
    N = parameters without the position table (the tied token matrix counts once: its matmul is the LM head),
    6·N = 2 (forward multiply-add) + 4 (backward, two matmuls) per parameter per token, and 12·L·T·d the attention
    score and weighted-sum matmuls (Kaplan et al., 2020, "Scaling Laws", §2.1; nanoGPT's `estimate_mfu`). A tiny
    model on a big GPU reaches a small fraction (launch overhead dominates); on a CPU a few tens of percent.

Example (CPU, under a minute): python scripts/bench_train.py --d-model 128 --n-layer 4 --block-size 128 \\
        --batch-size 8 --steps 10 --warmup 2 --rounds 2 --threads 1
GPU: python scripts/bench_train.py (defaults: the tiny shape d=256 L=4 H=4 V=4096, block 512, batch 32).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

import bench_common as bc
from minift.training.device import uses_bf16_autocast
from minift.model.gpt import GPT, GPTConfig
from minift.training.optim import param_groups
from minift.training.batches import lm_loss_fn, random_windows
from minift.training.config import TrainConfig
from minift.training.loop import train

LR, BETAS, WEIGHT_DECAY, CLIP = 3e-4, (0.9, 0.95), 0.1, 1.0


# -- the reference: nanoGPT's model, shrunk to what the benchmark needs ----------------------------------------

class RefBlock(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)  # q, k and v in one matmul
        self.attn_proj = nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class RefGPT(nn.Module):
    def __init__(self, vocab: int, block: int, n_layer: int, n_head: int, d: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.blocks = nn.ModuleList(RefBlock(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias") and "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def run_reference(model, batches, steps: int, warmup: int, device, dtype, clock=time.perf_counter
                  ) -> tuple[float, float]:
    """The bare loop; returns (seconds for the `steps` timed steps, last loss)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            bc.synchronize(device)
            t0 = clock()
        x, y = (z.to(device, non_blocking=True) for z in batches(i))
        with bc.autocast(device, dtype):
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
    bc.synchronize(device)
    return clock() - t0, loss.item()


def run_minift(model, batches, steps: int, warmup: int, device_name: str) -> tuple[float, float]:
    """minift.training.train with logging every step; returns (seconds of the timed steps, last loss)."""
    total = warmup + steps
    cfg = TrainConfig(max_steps=total, lr=LR, warmup_steps=0, weight_decay=WEIGHT_DECAY, betas=BETAS,
                      grad_clip=CLIP, log_every=1, eval_every=total, device=device_name,
                      save_checkpoints=False, progress=False, desc="bench")
    result = train(model, lm_loss_fn, batches, cfg)
    per_step = [r for r in result.history if "tokens_per_s" in r]
    assert len(per_step) == total, "expected one log record per step"
    tokens = batches(0)[0].numel()
    seconds = sum(tokens / r["tokens_per_s"] for r in per_step[warmup:])  # each record covers exactly one step
    return seconds, result.final_train_loss


@contextlib.contextmanager
def loop_clock(clock):
    """minift's loop times its steps with time.perf_counter; for the duration, give it `clock` instead."""
    import minift.training.loop as loop

    real = loop.time
    loop.time = types.SimpleNamespace(perf_counter=clock)
    try:
        yield
    finally:
        loop.time = real


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bc.add_model_args(p)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of every run")
    p.add_argument("--rounds", type=int, default=3, help="alternating runs of each; the median is reported")
    p.add_argument("--seed", type=int, default=0)
    bc.add_device_args(p, default_dtype=None)  # precision: whatever minift's loop uses on the device
    bc.add_clock_arg(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    device, _ = bc.resolve_device(args)
    dtype = torch.bfloat16 if uses_bf16_autocast(device) else torch.float32  # what minift.training.train will use
    V, T, L, H, d, B = args.vocab_size, args.block_size, args.n_layer, args.n_head, args.d_model, args.batch_size

    torch.manual_seed(args.seed)
    ours = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, d_model=d))
    ref = RefGPT(V, T, L, H, d).to(device)
    n_ours, n_ref = ours.num_parameters(), sum(p.numel() for p in ref.parameters())
    assert n_ours == n_ref, f"parameter counts differ: minift {n_ours}, reference {n_ref}"
    assert sum(len(g["params"]) for g in param_groups(ours, WEIGHT_DECAY)) == len(list(ours.parameters()))
    stream = torch.randint(0, V, (max(200_000, 4 * B * T),), generator=torch.Generator().manual_seed(args.seed))
    batches = random_windows(stream, T, B, seed=args.seed)

    n_flop = ours.num_parameters(exclude_position=True)
    flops_per_token = 6 * n_flop + 12 * L * T * d
    print(f"# Training throughput: minift vs a bare PyTorch loop — {bc.describe(device, dtype)}")
    print(f"model d={d} L={L} H={H} V={V} block={T}: {n_ours / 1e6:.2f} M parameters; batch {B} ⇒ {B * T} "
          f"tokens/step; {args.warmup} warm-up + {args.steps} timed steps per run, {args.rounds} rounds")
    clock = bc.CLOCKS[args.clock]
    print(f"model FLOPs per token = 6·N + 12·L·T·d = 6·{n_flop:,} + 12·{L}·{T}·{d} = {flops_per_token / 1e6:.1f} "
          f"MFLOP; clock: {args.clock}\n")

    bc.reset_cuda_peak(device)
    secs = {"minift": [], "reference": []}
    peaks, losses = [], {}
    for r in range(args.rounds):
        peaks.append(bc.matmul_peak_flops(device, dtype, clock=clock))  # interleaved: the same conditions
        for name in (("minift", "reference") if r % 2 == 0 else ("reference", "minift")):
            if name == "minift":
                with loop_clock(clock):
                    s, losses[name] = run_minift(ours, batches, args.steps, args.warmup, args.device)
            else:
                s, losses[name] = run_reference(ref, batches, args.steps, args.warmup, device, dtype, clock)
            secs[name].append(s)
    peak = statistics.median(peaks)
    print(f"matmul peak, measured each round: {peak / 1e12:.3g} TFLOP/s ({str(dtype).replace('torch.', '')}, "
          f"median; spread {(max(peaks) - min(peaks)) / peak:.2f})")
    tokens = args.steps * B * T
    rows, tps = [], {}
    for name in ("minift", "reference"):
        tps[name] = tokens / statistics.median(secs[name])
        rows.append({"loop": name, "tokens/s": tps[name], "ms/step": 1e3 * statistics.median(secs[name]) / args.steps,
                     "spread": (max(secs[name]) - min(secs[name])) / statistics.median(secs[name]),
                     "fraction of peak": tps[name] * flops_per_token / peak, "last loss": losses[name]})
    bc.print_table(rows)
    print(f"\nratio minift / reference = {tps['minift'] / tps['reference']:.3f}   (goal ≥ 0.95)")
    print(f"{bc.memory_line(device)}; spread = (max − min) / median over rounds; the last losses are a sanity check "
          f"(random tokens: both start near ln V = {math.log(V):.2f}).")


if __name__ == "__main__":
    main()
