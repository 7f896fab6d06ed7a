"""Benchmark: greedy generation with the KV cache against generation without it, same model, same process.

What it measures. Milliseconds per generated token of `GPT.generate(..., temperature=0)` with
`use_cache=True` and `use_cache=False`, for each requested number of new tokens, and the speed-up
no-cache ms ÷ cache ms. Runs alternate (cache, no cache, no cache, cache, …) so drift on a shared machine hits
both alike; each number is the median over --repeats runs, after one untimed warm-up run of each.

Why the cache wins. Without it, step s re-runs the whole sequence of T₀ + s tokens: n new tokens cost
Σ_s (T₀ + s) ≈ T₀·n + n²/2 token-passes through the model, so ms/token grows linearly with n. With it, each step
pushes one token through the layers and only its attention reads the s cached keys and values: ms/token stays
nearly flat. The ratio therefore grows with n; with block_size 512, 256 new tokens and the tiny shape it should
be ≥ 5× on a CPU (on a GPU a tiny model is bound by per-step kernel launches, which can shrink the ratio).
Precision defaults to float32 even on CUDA: in bf16 the two paths round differently and a near-tie can flip a
greedy token, which would make the identical-token check fail for reasons unrelated to the cache.
Past block_size the cached path falls back to re-running the last block_size tokens, like the uncached path.

Against a lean decoder. `lean_decode` below is the shortest eager greedy decode of the same model (batch without
padding): preallocated key/value buffers, one token per step through the same weights with
F.scaled_dot_product_attention, no masks, no checks, no generality. `GPT.generate` (with its padding masks,
methods' hooks and input checks) is timed against it in the same alternating way; the goal is ≥ 0.95× its
tokens/s, and the tokens must be identical.

Correctness. The script stops with an error unless all paths produce identical tokens. The model is randomly
initialised; --sharpen multiplies every weight matrix so that greedy decoding does not repeat one token forever
(a GPT-2-init model is nearly uniform), which makes the identical-token check meaningful. Timing does not depend
on the weights' values. The unit tests (tests/model/test_generation.py) check the same property on many more cases.

Example (CPU: about 30 s with --threads 1; use --threads 1 on a busy machine):
    python scripts/bench_generate.py --new-tokens 200 256 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

import bench_common as bc
from minift.model.gpt import GPT, GPTConfig


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bc.add_model_args(p)
    p.add_argument("--batch-size", type=int, default=1, help="prompts generated together (default 1)")
    p.add_argument("--prompt-len", type=int, default=8)
    p.add_argument("--new-tokens", type=int, nargs="+", default=[200, 256])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per setting; the median is reported")
    p.add_argument("--sharpen", type=float, default=4.0,
                   help="multiply every weight matrix by this, so greedy tokens vary (1 = plain GPT-2 init)")
    p.add_argument("--seed", type=int, default=0)
    bc.add_clock_arg(p)
    bc.add_device_args(p, default_dtype="fp32")
    return p.parse_args(argv)


@torch.no_grad()
def lean_decode(model: GPT, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy decoding written as plainly as possible, for timing only (see the module docstring)."""
    cfg = model.config
    B, T0, H, dh = idx.size(0), idx.size(1), cfg.n_head, cfg.d_model // cfg.n_head
    ks = [idx.new_zeros(B, H, T0 + n, dh, dtype=torch.float32) for _ in model.blocks]
    vs = [torch.zeros_like(k) for k in ks]
    out, x_ids, t = [idx], idx, 0
    for _ in range(n):
        T = x_ids.size(1)
        x = model.tok_emb(x_ids) + model.pos_emb(torch.arange(t, t + T, device=idx.device))
        for blk, k_buf, v_buf in zip(model.blocks, ks, vs):
            h = blk.ln1(x)
            q, k, v = (lin(h).view(B, T, H, dh).transpose(1, 2) for lin in (blk.attn.q, blk.attn.k, blk.attn.v))
            k_buf[:, :, t:t + T], v_buf[:, :, t:t + T] = k, v
            y = F.scaled_dot_product_attention(q, k_buf[:, :, :t + T], v_buf[:, :, :t + T], is_causal=T > 1)
            x = x + blk.attn.o(y.transpose(1, 2).reshape(B, T, -1))
            x = x + blk.mlp(blk.ln2(x))
        nxt = model.lm_head(model.ln_f(x[:, -1])).argmax(-1, keepdim=True)
        out.append(nxt)
        t, x_ids = t + T, nxt
    return torch.cat(out, 1)


def build_model(args, device: torch.device) -> GPT:
    cfg = GPTConfig(vocab_size=args.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                    n_head=args.n_head, d_model=args.d_model)
    torch.manual_seed(args.seed)
    model = GPT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(args.sharpen)
    return model.to(device).eval()


def main(argv=None) -> None:
    args = parse_args(argv)
    device, dtype = bc.resolve_device(args)
    model = build_model(args, device)
    g = torch.Generator().manual_seed(args.seed + 1)
    prompt = torch.randint(0, args.vocab_size, (args.batch_size, args.prompt_len), generator=g).to(device)
    print(f"# KV-cache generation benchmark: {bc.describe(device, dtype)}")
    print(f"model d={args.d_model} L={args.n_layer} H={args.n_head} V={args.vocab_size} block={args.block_size} "
          f"({model.num_parameters() / 1e6:.2f} M parameters); batch {args.batch_size}, prompt {args.prompt_len} "
          f"tokens, greedy; median of {args.repeats} alternating runs, {args.clock} clock\n")

    clock = bc.CLOCKS[args.clock]

    def run(n: int, mode: str) -> tuple[float, torch.Tensor]:
        bc.synchronize(device)
        t0 = clock()
        with bc.autocast(device, dtype):
            if mode == "lean":
                out = lean_decode(model, prompt, n)
            else:
                out = model.generate(prompt, n, temperature=0, use_cache=mode == "cache")
        bc.synchronize(device)
        return clock() - t0, out

    modes = ("cache", "no cache", "lean")
    for mode in modes:
        run(16, mode)  # warm-up: allocator, kernel choice, first-call overheads
    bc.reset_cuda_peak(device)
    rows = []
    for n in args.new_tokens:
        times, first = {m: [] for m in modes}, None
        for r in range(args.repeats):
            for mode in (modes if r % 2 == 0 else modes[::-1]):
                dt, out = run(n, mode)
                times[mode].append(dt)
                first = out if first is None else first
                if not torch.equal(out, first):  # every path must give the same tokens
                    pos = int((out != first).any(0).nonzero()[0])
                    raise SystemExit(f"FAILED: {mode} generation differs from the first run at position {pos} (n={n})")
        new = first[:, args.prompt_len:]
        ms = {m: 1e3 * statistics.median(times[m]) / n for m in modes}
        rows.append({"new tokens": n, "cache ms/token": ms["cache"], "no-cache ms/token": ms["no cache"],
                     "speed-up": ms["no cache"] / ms["cache"], "lean ms/token": ms["lean"],
                     "× lean (tokens/s)": ms["lean"] / ms["cache"], "identical tokens": "yes",
                     "distinct tokens": len(set(new.flatten().tolist()))})
    bc.print_table(rows)
    print(f"\n{bc.memory_line(device)}")
    print("speed-up = no-cache ms/token ÷ cache ms/token; × lean = GPT.generate's tokens/s ÷ the lean decoder's "
          "(goal ≥ 0.95); 'distinct tokens' shows the output is not one token repeated, so the identical-token "
          "check has teeth.")


if __name__ == "__main__":
    main()
