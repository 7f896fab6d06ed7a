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

Correctness. The script stops with an error unless both paths produce identical tokens. The model is randomly
initialised; --sharpen multiplies every weight matrix so that greedy decoding does not repeat one token forever
(a GPT-2-init model is nearly uniform), which makes the identical-token check meaningful. Timing does not depend
on the weights' values. The unit tests (tests/model/test_generation.py) check the same property on many more cases.

Example (CPU: about 30 s with --threads 1; use --threads 1 on a busy machine):
    python scripts/bench_generate.py --new-tokens 200 256 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

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
    bc.add_device_args(p, default_dtype="fp32")
    return p.parse_args(argv)


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
          f"tokens, greedy; median of {args.repeats} alternating runs\n")

    def run(n: int, use_cache: bool) -> tuple[float, torch.Tensor]:
        bc.synchronize(device)
        t0 = time.perf_counter()
        with bc.autocast(device, dtype):
            out = model.generate(prompt, n, temperature=0, use_cache=use_cache)
        bc.synchronize(device)
        return time.perf_counter() - t0, out

    run(16, True), run(16, False)  # warm-up: allocator, kernel choice, first-call overheads
    bc.reset_cuda_peak(device)
    rows = []
    for n in args.new_tokens:
        times, first = {True: [], False: []}, None
        for r in range(args.repeats):
            for use_cache in ((True, False) if r % 2 == 0 else (False, True)):
                dt, out = run(n, use_cache)
                times[use_cache].append(dt)
                first = out if first is None else first
                if not torch.equal(out, first):  # every run, cached or not, must give the same tokens
                    pos = int((out != first).any(0).nonzero()[0])
                    raise SystemExit(f"FAILED: cached and uncached generation differ at position {pos} (n={n})")
        new = first[:, args.prompt_len:]
        ms_cache = 1e3 * statistics.median(times[True]) / n
        ms_plain = 1e3 * statistics.median(times[False]) / n
        rows.append({"new tokens": n, "cache ms/token": ms_cache, "no-cache ms/token": ms_plain,
                     "speed-up": ms_plain / ms_cache, "identical tokens": "yes",
                     "distinct tokens": len(set(new.flatten().tolist()))})
    bc.print_table(rows)
    print(f"\n{bc.memory_line(device)}")
    print("speed-up = no-cache ms/token ÷ cache ms/token; 'distinct tokens' shows the output is not one token "
          "repeated, so the identical-token check has teeth.")


if __name__ == "__main__":
    main()
