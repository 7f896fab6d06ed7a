"""Time one step of minift's AdamW against torch.optim.AdamW on the parameter shapes of a GPT.

    python scripts/bench_adamw.py                       # preset "small" on CPU
    python scripts/bench_adamw.py --params-preset all --device cuda --steps 50

For each preset a GPT is built only to copy its parameter shapes into independent parameter lists (one per
optimizer, split by `minift.training.optim.param_groups`, λ = 0.1), every parameter gets a fixed random gradient, and the
optimizers are timed in the same process, alternating in short rounds after a warm-up so that both see the same
machine load. Reported: the median milliseconds per `step()` of both libraries in their default configuration
(foreach=None: the per-tensor loop on CPU, the foreach path on CUDA) and with foreach forced on, and the ratios.
On CPU each step sweeps ~16 bytes of state per parameter several times: the "medium" preset (~23M parameters)
takes seconds per step there, so run it with few --rounds/--steps or on a GPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from minift.model.gpt import GPT, GPTConfig
from minift.training.optim import AdamW, param_groups

PRESETS = {
    "small": GPTConfig(vocab_size=4096, block_size=256, n_layer=4, n_head=4, d_model=256),
    "medium": GPTConfig(vocab_size=8192, block_size=512, n_layer=6, n_head=8, d_model=512),
}


def make_groups(template: list[dict], grads: list[torch.Tensor]) -> list[dict]:
    """Fresh parameters with the template's values and the given gradients (each optimizer owns its copy)."""
    out, i = [], 0
    for g in template:
        params = []
        for p in g["params"]:
            q = nn.Parameter(p.detach().clone())
            q.grad = grads[i].clone()
            params.append(q)
            i += 1
        out.append({"params": params, "weight_decay": g["weight_decay"]})
    return out


def bench_preset(name: str, device: torch.device, steps: int, rounds: int, clock) -> dict[str, float]:
    torch.manual_seed(0)
    template = param_groups(GPT(PRESETS[name]).to(device), 0.1)
    grads = [torch.randn_like(p) for g in template for p in g["params"]]
    n_params = sum(p.numel() for g in template for p in g["params"])
    optimizers = {
        "minift default": AdamW(make_groups(template, grads), lr=3e-4),
        "minift foreach": AdamW(make_groups(template, grads), lr=3e-4, foreach=True),
        "torch default": torch.optim.AdamW(make_groups(template, grads), lr=3e-4),
        "torch foreach": torch.optim.AdamW(make_groups(template, grads), lr=3e-4, foreach=True),
    }
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in optimizers}
    for k, opt in optimizers.items():  # warm-up: creates the state, fills caches
        for _ in range(2):
            opt.step()
    sync()
    for _ in range(rounds):
        for k, opt in optimizers.items():
            sync()
            t0 = clock()
            for _ in range(steps):
                opt.step()
            sync()
            times[k].append((clock() - t0) * 1e3 / steps)
    result = {k: statistics.median(v) for k, v in times.items()}
    result["n_params"] = n_params
    result["n_tensors"] = len(grads)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params-preset", choices=[*PRESETS, "all"], default="small")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--steps", type=int, default=3, help="steps per timed round")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: process CPU time, steadier than wall time on a busy machine (CPU runs only)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating timed rounds per optimizer")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and device.type != "cpu":
        raise SystemExit("--clock cpu measures host CPU time; use --clock wall with a GPU")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    names = list(PRESETS) if args.params_preset == "all" else [args.params_preset]
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.rounds} rounds × {args.steps} steps, median {args.clock}-clock ms/step\n")
    print("| preset | params | tensors | minift default | minift foreach | torch default | torch foreach "
          "| minift / torch (default) | minift / torch (foreach) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        r = bench_preset(name, device, args.steps, args.rounds, clock)
        print(f"| {name} | {r['n_params'] / 1e6:.2f}M | {r['n_tensors']} | {r['minift default']:.2f} "
              f"| {r['minift foreach']:.2f} | {r['torch default']:.2f} | {r['torch foreach']:.2f} "
              f"| {r['minift default'] / r['torch default']:.2f}× | {r['minift foreach'] / r['torch foreach']:.2f}× |")


if __name__ == "__main__":
    main()
