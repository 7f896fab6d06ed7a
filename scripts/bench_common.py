"""Shared helpers for minift's benchmark scripts (bench_generate.py, bench_train.py).

What is here and why:
  * `add_device_args` / `resolve_device`: the same --device and --dtype flags in every script. dtype "auto" means
    bf16 autocast on a CUDA GPU that supports it (what minift's training loop uses there) and float32 elsewhere.
  * `timeit`: run a function a few times untimed (warm-up: kernel selection, allocator growth, caches), then time
    it `repeats` times and report the **median**, which one slow outlier (another process, a GC pause) cannot move.
    GPU work is asynchronous, so the clock is read only after `torch.cuda.synchronize()`.
  * `matmul_peak_flops`: the throughput this machine actually reaches on one big square matmul,
        FLOP/s = 2·n³ / t     (an n×n by n×n product is n³ multiply-adds, 2 FLOPs each),
    the denominator for "fraction of peak" (model FLOPs utilisation, MFU, as in the PaLM paper, Chowdhery et al.,
    2022). Using a measured peak instead of the datasheet number keeps the fraction honest on any machine.
  * `peak_rss_mb`, `cuda_peak_mb`: peak host memory of the process and peak CUDA memory held by tensors.
  * `markdown_table`: results as a table that pastes into a README.

Run from the repository root, e.g. `python scripts/bench_generate.py --help`; this file is imported, not run.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from minift.training.device import pick_device

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# -- model shape flags ------------------------------------------------------------------------------------------

def add_model_args(parser: argparse.ArgumentParser, vocab_size: int = 4096, block_size: int = 512, n_layer: int = 4,
                   n_head: int = 4, d_model: int = 256) -> None:
    """Add --vocab-size, --block-size, --n-layer, --n-head and --d-model (the GPTConfig shape) with these defaults."""
    parser.add_argument("--vocab-size", type=int, default=vocab_size)
    parser.add_argument("--block-size", type=int, default=block_size)
    parser.add_argument("--n-layer", type=int, default=n_layer)
    parser.add_argument("--n-head", type=int, default=n_head)
    parser.add_argument("--d-model", type=int, default=d_model)


# -- device and precision flags ---------------------------------------------------------------------------------

def add_device_args(parser: argparse.ArgumentParser, default_dtype: str | None = "auto") -> None:
    """Add --device (auto, cpu, cuda, cuda:N, mps), --dtype (auto, fp32, bf16, fp16) and --threads to a parser.
    default_dtype=None leaves --dtype out (for a script whose precision is fixed elsewhere)."""
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    if default_dtype is not None:
        parser.add_argument("--dtype", default=default_dtype, choices=["auto", *DTYPES],
                            help="compute precision: auto = bf16 autocast on CUDA, float32 elsewhere "
                                 f"(default: {default_dtype})")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice). On a shared or busy machine "
                             "--threads 1 gives steadier numbers: spinning threads that wait for a busy core "
                             "can make a 2-thread run several times slower than a 1-thread one")


def resolve_device(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """(device, dtype) from the parsed flags (and applies --threads); dtype 'auto' → bfloat16 on a bf16-capable
    CUDA GPU, else float32."""
    device = pick_device(args.device)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    dtype = getattr(args, "dtype", "auto")
    if dtype == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return device, torch.bfloat16 if bf16 else torch.float32
    return device, DTYPES[dtype]


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to `dtype` (weights stay float32, matmuls run in dtype), or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read afterwards measures the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe(device: torch.device, dtype: torch.dtype) -> str:
    """One line naming the hardware, precision and software, for the top of every report."""
    if device.type == "cuda":
        hw = f"{device} ({torch.cuda.get_device_name(device)})"
    else:
        hw = f"{device} ({torch.get_num_threads()} threads)"
    return f"{hw}, {str(dtype).replace('torch.', '')}, torch {torch.__version__}, python {sys.version.split()[0]}"


# -- timing ---------------------------------------------------------------------------------------------------

@dataclass
class Timing:
    median_s: float
    times_s: list[float]

    @property
    def spread(self) -> float:
        """(max − min) / median: how noisy the repeats were (0.05 = ±5 %-ish; above ~0.3, rerun on a quiet box)."""
        return (max(self.times_s) - min(self.times_s)) / self.median_s if self.median_s > 0 else 0.0


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def add_clock_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu",
                        help="cpu: this process's CPU time (default; with --threads 1 another job on the machine "
                             "cannot slow the measurement, only delay it); wall: elapsed time (a GPU, or a quiet "
                             "machine with several threads)")


def timeit(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
           device: torch.device | None = None, clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Call fn() `warmup` times untimed, then `repeats` times timed; median of the seconds on `clock` (wall by
    default; CLOCKS["cpu"] for CPU time)."""
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    dev = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
    synchronize(dev)
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        synchronize(dev)
        times.append(clock() - t0)
    return Timing(statistics.median(times), times)


def alternate(fns: dict[str, Callable[[], object]], repeats: int,
              clock: Callable[[], float] = time.process_time) -> dict[str, list[float]]:
    """Seconds of each fn over `repeats` rounds that run them all, the order reversed every other round (A B, B A,
    …), so a slow drift of the machine hits every fn alike. Returns every round's time per fn (take the median)."""
    names, times = list(fns), {n: [] for n in fns}
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            t0 = clock()
            fns[n]()
            times[n].append(clock() - t0)
    return times


def matmul_peak_flops(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None,
                      repeats: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
    """Achievable matmul throughput in FLOP/s: median over `repeats` of 2·n³ / t for an (n×n)·(n×n) product.

    n defaults to 8192 on CUDA (big enough to saturate an H100's tensor cores) and 1024 on CPU (about 2 GFLOP, a
    fraction of a second even on two cores). The operands are created directly in `dtype`, which is what the
    matmuls inside an autocast region see.
    """
    if n is None:
        n = 8192 if device.type == "cuda" else 1024
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    t = timeit(lambda: a @ b, repeats=repeats, warmup=2, device=device, clock=clock)
    return 2 * n ** 3 / t.median_s


# -- a fine-tuning step to time ---------------------------------------------------------------------------------

def sft_setup(base: str, task: str, method: str, batch_size: int):
    """(model in train mode, one SFT batch, an AdamW at lr 0) for timing a fine-tuning step: the base with the
    method applied ("full": none), the first batch_size training examples of the task laid out by the base's auto
    template, and an optimizer whose steps cost what real ones do but leave the weights where they are (so every
    timed step does the same work)."""
    from minift.base.cache import resolve_base
    from minift.data.task_data import load_task_data
    from minift.finetune.sft import encode_dataset, sft_collate
    from minift.finetune.templates import get_template, resolve_template_name
    from minift.peft import apply_method, method_config
    from minift.training.optim import AdamW, param_groups

    model, tok, _ = resolve_base(base, progress=False)
    if method != "full":
        apply_method(model, method_config(method))
    model.train()
    template = get_template(resolve_template_name("auto", model.config.block_size, tok))
    enc, _ = encode_dataset(tok, load_task_data(task).splits["train"][:batch_size], template,
                            model.config.block_size)
    return model, sft_collate(tok.pad_id)(enc), AdamW(param_groups(model, 0.0), lr=0.0)


# -- memory ---------------------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2 ** 20 if sys.platform == "darwin" else rss / 2 ** 10


def cuda_peak_mb(device: torch.device) -> float | None:
    """Peak memory held by CUDA tensors since the last `reset_cuda_peak`, in MiB; None off CUDA."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2 ** 20


def reset_cuda_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def memory_line(device: torch.device) -> str:
    cuda = cuda_peak_mb(device)
    return f"peak RSS {peak_rss_mb():.0f} MiB" + ("" if cuda is None else f", peak CUDA allocated {cuda:.0f} MiB")


# -- output ---------------------------------------------------------------------------------------------------

def _fmt(value) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
            return f"{value:.3g}"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Rows (dicts) as a GitHub-markdown table; columns default to the first row's keys. Floats get 3–4 digits."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda items: "| " + " | ".join(s.ljust(w) for s, w in zip(items, widths)) + " |"  # noqa: E731
    out = [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(row) for row in cells])


def print_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    print(markdown_table(rows, columns))
