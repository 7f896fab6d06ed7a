"""What a training run costs, measured: optimizer-state bytes, file sizes, peak memory.

    optimizer state   AdamW keeps two fp32 moments m, v per trainable number: 8 bytes each
    peak memory       process RSS on CPU (Linux: VmHWM, the process's own high-water mark), bytes allocated by
                      tensors on CUDA
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def optimizer_state_bytes(n_trainable: int) -> int:
    """AdamW's state: two fp32 moments (m, v) per trainable number, 8 bytes (the per-tensor step counters aside)."""
    return 8 * n_trainable


def path_bytes(path) -> int:
    """Size of a file, or of every file under a directory."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def own_peak_rss_mb() -> float | None:
    """Linux: this process's peak resident set size, VmHWM in /proc/self/status, in MiB; None elsewhere.
    Why not ru_maxrss (only the fallback here): a process started by subprocess (vfork + exec) inherits its
    parent's ru_maxrss as a floor, so a small run started from a big process would report the parent's peak.
    VmHWM belongs to the process's own memory map."""
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def reset_peak_rss() -> bool:
    """Linux: writing 5 to /proc/self/clear_refs sets VmHWM back to the current RSS, so a run in a shared process
    measures its own peak on top of what was already resident. False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak memory of this run: CUDA → bytes allocated by tensors (since `reset_peak_memory`); else the process's
    peak resident set size: VmHWM on Linux (`own_peak_rss_mb`), ru_maxrss elsewhere (KiB on Linux, bytes on macOS;
    unavailable on Windows). RSS counts the whole process, so compare runs each in its own process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    own = own_peak_rss_mb()
    if own is not None:
        return own
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or the process's VmHWM where Linux allows it."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()
