"""The bookkeeping around the training loop (minift/training/loop.py): checkpoints, random-number state, metrics, plot.

last.pt — everything needed to continue a run exactly where it stopped:
    {"model": trained_state (every trained parameter and buffer; frozen ones come from the base), "optimizer": state_dict (AdamW moments m, v and step counts), "state": RunState fields
     (step, best val loss, evaluations without improvement, tokens seen, time), "config": TrainConfig fields,
     "rng": the generator states of torch (CPU and CUDA/MPS), NumPy and Python, "world_size": W (processes),
     and under torchrun "rng_ranks": every rank's generator states (rank r resumes with its own)}
best.pt — the trained state at the lowest validation loss (load it with `load_weights`).

Only tensors and plain Python values are stored, because `minift.files.torch_load` reads with
`torch.load(weights_only=True)`, which refuses to unpickle arbitrary objects (a checkpoint cannot run code).
Both files are written atomically: a crash while saving leaves the previous file intact.

Why the RNG state: dropout draws its masks from torch's global generator. Restoring the weights and the optimizer
but not the generator would give the resumed run different dropout masks from the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from minift.errors import CheckpointError, ConfigError
from minift.files import append_jsonl, atomic_write_text, read_jsonl, torch_load, torch_save_atomic
from minift.plots import figure, save

FORMAT = "minift-train-1"
TRAINING_FILES = ("metrics.jsonl", "last.pt", "best.pt", "loss.png")  # what the loop writes into out_dir
# Changing these between a run and its resume would change which data each step sees, so resuming is refused.
# So would changing grad_accum × world size (the micro-batches of one step, minift/training/distributed.py); either factor
# may change if the product stays (e.g. 2 processes × 2 → 1 process × 4).
MUST_MATCH = ("seed",)


@dataclass
class RunState:
    """The loop's counters; saved in last.pt."""

    step: int = 0                       # optimizer steps done
    best_val: float | None = None
    best_step: int | None = None
    bad_evals: int = 0                  # evaluations since the last improvement (early stopping)
    tokens_seen: int = 0
    train_time: float = 0.0             # seconds spent in training steps (for tokens/s)
    elapsed: float = 0.0                # wall seconds of all runs, evaluation and saving included
    skipped: int = 0                    # steps skipped because N = 0
    last_loss: float | None = None


# -- random-number generator state ---------------------------------------------------------------------------

def rng_state() -> dict:
    """The state of every generator minift or a user's loss function may draw from."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": [version, list(mt), gauss],
             "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_initialized():  # only if this process uses CUDA; never start a GPU context just to save
        state["cuda"] = torch.cuda.get_rng_state_all()
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


@contextlib.contextmanager
def rng_preserved():
    """Run a block (evaluation) without moving any generator: the state is saved before and restored after."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


# -- checkpoints ---------------------------------------------------------------------------------------------

def trained_state(model) -> dict:
    """What a checkpoint must hold to restore a run: every parameter that trains, and every buffer. Frozen
    parameters are left out: they never change, and the run rebuilds them from its base. (For full fine-tuning
    that is the whole model; for a PEFT run on a real model, a few MB instead of hundreds.)"""
    return {name: t.detach() for name, t in model.state_dict(keep_vars=True).items()
            if not isinstance(t, torch.nn.Parameter) or t.requires_grad}


def load_trained_state(model, state: dict, path: Path) -> None:
    """Load `trained_state` back: every key must exist in the model, and every key left out must be frozen."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a shape mismatch
        raise CheckpointError(f"{path} does not fit this model: {str(e).splitlines()[0]} "
                              "(was it written for another architecture or adapter?)") from None
    params = dict(model.named_parameters(remove_duplicate=False))
    not_frozen = [k for k in missing if k not in params or params[k].requires_grad]
    if unexpected or not_frozen:
        raise CheckpointError(f"{path} does not fit this model: unexpected keys {unexpected[:3]}, missing trained "
                              f"keys {not_frozen[:3]} (was it written for another architecture or adapter?)")


def save_last(path: Path, model, optimizer, config, st: RunState, elapsed_this_run: float,
              rng_ranks: list[dict] | None = None) -> None:
    """rng_ranks: every rank's `rng_state()` under torchrun (rank 0's first); None: this process's."""
    state = asdict(st)
    state["elapsed"] = st.elapsed + elapsed_this_run
    rngs = rng_ranks or [rng_state()]
    data = {"format": FORMAT, "model": trained_state(model), "optimizer": optimizer.state_dict(), "state": state,
            "config": config.to_dict(), "rng": rngs[0], "world_size": len(rngs)}
    if len(rngs) > 1:
        data["rng_ranks"] = rngs
    torch_save_atomic(data, path)


def save_best(path: Path, model) -> None:
    torch_save_atomic(trained_state(model), path)


def load_weights(model, path: Path):
    """Load a best.pt (its `trained_state`) into `model`, reporting a mismatch as a CheckpointError."""
    load_trained_state(model, torch_load(path), path)
    return model


def load_last(path: Path, model, optimizer, config, rank: int = 0, world_size: int = 1) -> RunState:
    """Restore model, optimizer and RNG (rank `rank` of `world_size`) from last.pt; return the loop counters."""
    data = torch_load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minift training checkpoint (last.pt); start without resume")
    k_then, w_then = data["config"].get("grad_accum"), data.get("world_size", 1)
    if k_then * w_then != config.grad_accum * world_size:
        raise ConfigError(f"cannot resume {path}: it took grad_accum={k_then} × {w_then} process(es) = "
                          f"{k_then * w_then} micro-batches per step, now {config.grad_accum} × {world_size} = "
                          f"{config.grad_accum * world_size}; that decides which data each step sees, so keep "
                          "the product or start a new run")
    changed = [k for k in MUST_MATCH if data["config"].get(k) != getattr(config, k)]
    if changed:
        was = ", ".join(f"{k}={data['config'].get(k)!r} (now {getattr(config, k)!r})" for k in changed)
        raise ConfigError(f"cannot resume {path}: it was trained with {was}; these decide which data each step "
                          "sees, so resume with the same values or start a new run")
    load_trained_state(model, data["model"], path)
    try:
        optimizer.load_state_dict(data["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} does not fit this model/optimizer: {str(e).splitlines()[0]}") from None
    ranks = data.get("rng_ranks")
    set_rng_state(ranks[rank] if ranks and len(ranks) == world_size else data["rng"])
    return RunState(**data["state"])


# -- metrics and the loss plot -------------------------------------------------------------------------------

def start_metrics(out: Path | None, step: int, write: bool = True) -> list[dict]:
    """A fresh run starts an empty metrics.jsonl; a resumed one keeps the records up to its step. Records after
    it (written between the checkpoint and a crash) are dropped, since the resumed run writes them again.
    write=False (torchrun ranks other than 0): only read the kept records; the file is rank 0's."""
    if out is None:
        return []
    path = out / "metrics.jsonl"
    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step] if step > 0 and path.is_file() else []
    if not write:
        return kept
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept


def append_metrics(out: Path, record: dict) -> None:
    append_jsonl(out / "metrics.jsonl", record)


def plot_losses(history: list[dict], path: Path, title: str = "") -> None:
    """Train and validation loss against step, as a PNG (minift/plots.py: no display needed, and the pyplot state of
    a notebook that imported minift is left alone)."""
    fig, (ax,) = figure(6, 4)
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        pts = [(r["step"], r[key]) for r in history if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), style, label=key.replace("_", " "), markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    save(fig, path)
