"""Where the maths runs and how it repeats: choosing a device, the matching mixed-precision context, and seeding
every random-number generator in one place.

    pick_device("auto")  →  cuda   if an NVIDIA GPU is usable
                            mps    else, if an Apple-silicon GPU is usable
                            cpu    otherwise

Mixed precision: on CUDA the forward pass runs under `torch.autocast(dtype=bfloat16)`, so matrix multiplies use
bf16 tensor cores while the weights, their gradients and the optimizer state stay float32. bf16 keeps float32's
8-bit exponent (range ≈ 1e±38) and drops mantissa bits (≈ 3 significant digits), so unlike float16 it needs no loss
scaling (Kalamkar et al., 2019, "A Study of BFLOAT16 for Deep Learning Training").

The precision of a run is one of PRECISIONS: "auto" is bf16 autocast on a CUDA GPU that supports it and float32
everywhere else; "fp32" always float32; "bf16" asks for autocast also on a CPU, which pays off only on CPUs with
bf16 instructions (AVX512-BF16 or AMX: the matmuls then run several times faster than float32) and is refused on
others, where it would be slower. float32 stays the CPU default because it is exact: resume, accumulation and the
parity tests compare to float rounding.
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from minift.errors import ConfigError

_KNOWN = "auto, cpu, cuda, cuda:N (a GPU index) or mps"
PRECISIONS = ("auto", "fp32", "bf16")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(name: str = "auto") -> torch.device:
    """Turn a device name into a `torch.device`, checking that it can actually be used.

    "auto" picks cuda, then mps, then cpu. Asking for a device this machine or this PyTorch build does not have is
    a ConfigError that says what is available instead of a crash deep inside the first matrix multiply.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"device must be a name such as {_KNOWN}; got {name!r}")
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise ConfigError("device 'mps' (Apple GPU) is not available here: it needs an Apple-silicon Mac and a "
                              "PyTorch build with MPS support; use device 'cpu' or 'auto'")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ConfigError(f"device {name!r} was requested but no CUDA GPU is usable (this PyTorch is {build}); "
                              "use device 'cpu' or 'auto', or install a CUDA build of PyTorch on a machine with "
                              "an NVIDIA GPU")
        if name == "cuda":
            return torch.device("cuda")
        index = name[len("cuda:"):]
        count = torch.cuda.device_count()
        if not index.isdigit() or int(index) >= count:
            raise ConfigError(f"device {name!r}: this machine has {count} CUDA device(s), so use cuda:0 … "
                              f"cuda:{count - 1} (or plain 'cuda')")
        return torch.device("cuda", int(index))
    raise ConfigError(f"unknown device {name!r}; use {_KNOWN}")


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (Linux: the avx512_bf16 or amx_bf16 flag in /proc/cpuinfo;
    elsewhere assumed not)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = {w for line in f if line.startswith("flags") for w in line.split()}
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """"bf16" or "fp32": what `precision` (one of PRECISIONS) means on `device`; a ConfigError where bf16 cannot
    run or would only be slower."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return "fp32"
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "auto":
        return "bf16" if cuda_bf16 else "fp32"
    if device.type == "cuda" and not cuda_bf16:
        raise ConfigError("this GPU has no bf16 support (it needs an Ampere or newer NVIDIA GPU); use --dtype fp32")
    if device.type == "mps":
        raise ConfigError("bf16 autocast is not supported on Apple GPUs here; use --dtype fp32")
    if device.type == "cpu" and not cpu_has_bf16():
        raise ConfigError("this CPU has no bf16 instructions (AVX512-BF16 or AMX), so bf16 would be slower than "
                          "float32; use --dtype fp32 (the default on a CPU)")
    return "bf16"


def uses_bf16_autocast(device: torch.device, precision: str = "auto") -> bool:
    """True where `autocast_context` turns on bf16 (see resolve_precision)."""
    return resolve_precision(device, precision) == "bf16"


def autocast_context(device: torch.device, precision: str = "auto"):
    """A context manager for the forward pass: bf16 autocast where resolve_precision says bf16, else nothing
    (float32).

    MPS: autocast support there is recent and incomplete across PyTorch versions, so float32 is the choice that
    works everywhere. Older CUDA GPUs without bf16 would need float16 plus a gradient scaler; minift keeps them in
    float32 rather than add that machinery.
    """
    if uses_bf16_autocast(device, precision):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_threads(n: int | None) -> int:
    """Set torch's intra-op thread count for this process (None: leave torch's default, one per core) and return
    the count in use. Set once, at the start: torch.set_num_threads also moves small element-wise operations into
    an OpenMP region, which a busy machine can make far slower, so minift never switches back and forth."""
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"threads must be an integer ≥ 1, got {n!r}")
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
    return torch.get_num_threads()


def describe_device(device: torch.device, precision: str = "auto") -> str:
    """One line for logs, e.g. 'cuda:0 (NVIDIA H100, bf16 autocast)' or 'cpu (2 threads, float32)'."""
    kind = "bf16 autocast" if uses_bf16_autocast(device, precision) else "float32"
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)}, {kind})"
    if device.type == "mps":
        return "mps (Apple GPU, float32)"
    return f"cpu ({torch.get_num_threads()} threads of {os.cpu_count()} cores, {kind})"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every CUDA device) in one place."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
