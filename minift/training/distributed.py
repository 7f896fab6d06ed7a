"""Data parallelism: W processes, one model replica each, taking every optimizer step together.

    torchrun --standalone --nproc_per_node 2 -m minift finetune --task sentiment --out runs/ddp
    python -m torch.distributed.run --standalone --nproc_per_node 2 -m minift finetune ...     (the same)

runs 2 processes on one machine (--standalone: it picks a free port): one per GPU, or 2 CPU processes without GPUs.

torchrun starts W copies of the program and gives each one RANK (0 … W−1), LOCAL_RANK (its index on this machine,
which picks its GPU), WORLD_SIZE = W, and MASTER_ADDR/MASTER_PORT where they meet. Without those variables (or with
W = 1) minift is one process exactly as before: no process group, no wrapper, no communication.

One optimizer step with K micro-batches per rank (grad_accum) on W ranks (minift/training/loop.py):

    rank r, micro-batch k:  batch = train_batches((step·K + k)·W + r)
        the W·K batches of a step are the indices step·WK … step·WK + WK − 1: exactly those a single process with
        grad_accum = W·K sees. Same data, same maths, only spread out; and a step's data is still a function of
        the step alone, so resume stays exact (also on another W with the same W·K).
    k < K − 1:  forward + backward(S_{r,k}) inside DDP's no_sync(): gradients pile up locally, nothing is sent
    k = K − 1:  forward + backward(S_{r,K−1}): DDP all-reduces and *averages*:  g = (1/W)·Σ_r Σ_k ∇S_{r,k}
    (Σ S, N, input positions) all-reduced together (one tiny collective): N = Σ_r Σ_k n_{r,k}, the global count
    g ← g / (N/W)  =  Σ_all ∇S / N,  the gradient of the token mean over all W·K micro-batches

Why N must be global (docs/training.md, "Exact gradient accumulation"): if each rank divided by its own n_r and
DDP then averaged, the result would be the mean of the ranks' token means, which over-weights the tokens of a rank
whose micro-batches hold few supervised tokens: the mean-of-means error of gradient accumulation again, one level
up. Why the factor W: DDP's average divides by W, right for per-rank means but not for sums; dividing by N/W undoes
it (equivalently, each rank could backpropagate W·S_r/N).

After the all-reduce every rank holds the same gradient, clips it to the same norm and takes the same AdamW step,
so the replicas stay identical without ever sending weights again (DDP copies rank 0's weights to the others once,
when it wraps the model). Validation: rank r evaluates validation batches r, r + W, …; the sums (S, n) are
all-reduced, so every rank gets the same loss and takes the same early-stopping decision. Only rank 0 writes files
(metrics.jsonl, last.pt, best.pt, loss.png, results) and shows the progress bar; last.pt also keeps every rank's
random-number state, so dropout continues exactly after a resume.

Exact vs one process: same batches, same maths; floating-point sums run in another order (per rank, then across
ranks), so the weights agree to rounding, not bit for bit. Dropout: rank r seeds its generator with seed + r (as
nanoGPT does), so the masks differ from a single process's. The learning rate is not rescaled: W ranks with
grad_accum K train like one process with grad_accum W·K (and `minift finetune --epochs E` takes W times fewer
steps). The base-model cache is pretrained by rank 0 alone, as one process, so it is the same however it is launched.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from minift.errors import ConfigError

_owned = False  # True when init_from_env created the process group (so cleanup destroys it)
_solo = 0       # > 0 inside `solo()`: this process acts as a single process


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) without a process group (or inside `solo()`)."""
    if _solo or not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """True on rank 0, the rank that writes files and prints; always True for a single process."""
    return world()[0] == 0


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group torchrun describes in the environment (once; later calls only look it up) and return
    the device this rank computes on: cuda:LOCAL_RANK on GPUs, else `device` unchanged. Without torchrun's
    variables (WORLD_SIZE unset or 1) nothing happens. Backend: NCCL for CUDA, gloo for the CPU."""
    global _owned
    if _solo:
        return device
    if not (dist.is_available() and dist.is_initialized()):
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return device
        if not dist.is_available():
            raise ConfigError("this PyTorch build has no torch.distributed; run without torchrun")
        if device.type not in ("cuda", "cpu"):
            raise ConfigError(f"data-parallel training runs on CUDA GPUs (NCCL) or on the CPU (gloo), not on "
                              f"{device.type}; pass --device cpu or cuda")
        # generous: the other ranks wait at a barrier while rank 0 pretrains a missing base (torch's NCCL default
        # is 10 minutes)
        timeout = datetime.timedelta(minutes=30)
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if local >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK {local} needs GPU {local}, but this machine has "
                                  f"{torch.cuda.device_count()}; start at most that many processes per node")
            torch.cuda.set_device(local)  # before init: NCCL's communicator and barrier use the current GPU
            dist.init_process_group("nccl", timeout=timeout)
        else:
            dist.init_process_group("gloo", timeout=timeout)
        _owned = True
        atexit.register(cleanup)  # for scripts that never call it (a no-op after an explicit call)
    if device.type == "cuda" and world()[1] > 1:
        return torch.device("cuda", torch.cuda.current_device())  # "cuda:0" on every rank would share one GPU
    return device


def cleanup() -> None:
    """Destroy the process group if `init_from_env` created it: at the end of a command, also after an error, and
    at interpreter exit otherwise. No barrier: rank 0 may still be evaluating, and nothing is exchanged after
    training, so the other ranks leave as soon as they are done.

    The pause first: a gloo worker thread frees the tensors of the last collective after the collective has
    returned, and needs the GIL to do so. If the interpreter is already shutting down by then, the thread aborts the
    process ("terminate called without an active exception"). Measured with torch 2.13 on the CPU: about 1 in 20
    two-rank runs whose rank 1 exited right after its last collective; 0 in 150 with this pause."""
    global _owned
    if _owned and dist.is_initialized():
        time.sleep(0.1)  # releases the GIL, so a waiting worker thread can finish
        dist.destroy_process_group()
    _owned = False


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if world()[1] > 1:
        dist.barrier()


@contextlib.contextmanager
def solo():
    """Inside the block this process behaves as a single process: `world()` is (0, 1), train() does not wrap."""
    global _solo
    _solo += 1
    try:
        yield
    finally:
        _solo -= 1


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (as a single process) while the others wait; then the others run it. For work
    that fills a shared cache (pretraining the base once): the others find it done. If rank 0 fails, the others
    are not released; torchrun stops them when rank 0 exits."""
    rank, size = world()
    if size > 1 and rank > 0:
        dist.barrier()
    with solo():
        yield
    if size > 1 and rank == 0:
        dist.barrier()


def all_reduce_sum(*values, device: torch.device) -> tuple[float, ...]:
    """Σ over ranks of each number, as floats, in one collective (float64: integer counts stay exact up to 2**53).
    NCCL needs the tensor on this rank's GPU, gloo on the CPU."""
    if world()[1] == 1:
        return tuple(float(v) for v in values)
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values])
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return tuple(t.tolist())


def all_gather_object(obj) -> list:
    """[obj of rank 0, obj of rank 1, …] on every rank (pickled; for small things such as RNG states)."""
    if world()[1] == 1:
        return [obj]
    out = [None] * world()[1]
    dist.all_gather_object(out, obj)
    return out


class _DDP(DistributedDataParallel):
    """DDP that also answers the wrapped model's attributes (model.head, model.config, …), so loss functions written
    for the plain model work unchanged on the wrapper."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module the training forward passes go through: `model` itself in one process, else DDP around it.

    find_unused_parameters stays False (no extra graph walk per step): every trainable tensor of minift's models
    and methods gets a gradient in every forward; DDP raises an error naming the parameter if one does not."""
    if isinstance(model, DistributedDataParallel):
        raise ConfigError("pass the plain model to train(): it wraps the model in DistributedDataParallel itself "
                          "when launched with torchrun")
    if world()[1] == 1:
        return model
    return _DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def no_sync_unless(model: torch.nn.Module, last: bool):
    """For a micro-batch's forward + backward: DDP's `no_sync()` (accumulate locally) unless it is the last of the
    step, whose backward all-reduces everything accumulated. A no-op for a plain model."""
    if last or not isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def rank_tag() -> str:
    """'' on rank 0 or in one process, else '(rank r) ': for error lines, which every failing rank prints."""
    rank, size = world()
    return f"(rank {rank}) " if size > 1 and rank > 0 else ""
