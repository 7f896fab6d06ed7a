"""ReFT: representation fine-tuning (Wu et al., 2024; stanfordnlp/pyreft, pyvene). Instead of changing weights,
edit the residual stream h ∈ ℝ^d after chosen blocks, at a few chosen prompt positions:

    LoReFT  Φ(h) = h + Rᵀ(W h + b − R h)     R ∈ ℝ^{r×d} with orthonormal rows (R Rᵀ = I_r), W ∈ ℝ^{r×d}, b ∈ ℝ^r
            R Φ(h) = W h + b: inside the r-dim subspace spanned by R's rows, h's coordinates are replaced by the
            learned W h + b; the orthogonal complement is untouched.
    DiReFT  Φ(h) = h + W₂ᵀ(W₁ h + b)          W₁, W₂ ∈ ℝ^{r×d}, b ∈ ℝ^r, unconstrained (the paper's definition)

    h: (B, T, d), applied only where the position is selected;  trainable per intervention 2rd + r;
    n_int = |layers| × (2 if untied and the spec has both f and l, else 1)
    (d = 384, L = 6, r = 4, "f3+l3": untied 36,912, tied 18,456)

Positions: a spec "fN+lM" names the first N and last M tokens OF THE PROMPT ("f5", "l1", "f3+l3"). Tied = one Φ per
layer for all of them; untied = two per layer, one for the first-N positions and one for the last-M positions
(pyreft's training script; it matches the paper's reported parameter counts).

How it is wired: `blocks[i].reft` is a `ReftLayer` and a forward hook on the block applies it to the block's output.
`inject` installs `hidden_with_reft` as the model's `hidden` (an instance attribute shadowing GPT.hidden, which
GPT.forward and GPT.generate call): before each call it works out which positions of this call are selected (a
(B, T) tensor `where`: 0 = none, 1 = the first-N unit, 2 = the last-M unit) and hands it to every ReftLayer.
Which tokens are "the prompt":
  * pinned: inside `with prompt_lengths(model, n):` (n: one int, or one per row) the prompt is the first n[b] real
    tokens of row b. Use this for training on prompt + response (the response is never intervened; for SFT batches
    `pinned_loss_fn(loss_fn)` reads the lengths off the −100 prompt labels) and for generation: `reft.generate(model, idx, ...)` pins n = the prompt's real tokens, so every call — the cached
    prefill, each cached step, or a full uncached recompute — intervenes at the same absolute prompt positions;
  * default: the real tokens of a call with no past (cache None or empty) are the prompt; a call that continues a
    cache is never intervened. So `model.generate(idx)` with the KV cache behaves as pyvene's
    `intervene_on_prompt=True`. Without a cache and without pinning, each full recompute would take the whole
    current text as the prompt and move the "last" positions — pin the lengths (or use reft.generate) instead.
  Positions count real tokens: with left padding, the prompt of row b starts at its first real token. They are
  absolute indices of the sequence, so keep prompt + generated tokens within block_size (once GPT.generate slides
  its window, the indices shift).

Decisions (docs/peft.md derives the method):
  * R: `torch.nn.utils.parametrizations.orthogonal` on a Linear(d, r) weight (r × d), Householder map without the
    "trivialization" base (that base is a random d×d buffer, which an adapter file would have to carry): the
    trainable tensor is the reflector matrix `…rotate.parametrizations.weight.original` (r × d, rd numbers) and R
    is orthonormal (to float precision) after any optimizer step. It is kept and computed in fp32 with autocast off: the
    Householder product has no bf16/fp16 kernel (adapter-hub/adapters#772). Marked `no_decay = True`: decay would
    shrink the reflectors' diagonal signs towards 0 and break the map.
  * W, b: the default nn.Linear init (as pyreft), so LoReFT is NOT the identity at init; `init="identity"` sets
    W = R, b = 0 (Φ(h) = h; DiReFT: W₁ = 0, b = 0) for tests and gentle starts. W, W₁, W₂ decay by the dim ≥ 2 rule.
  * dropout acts on the edit Rᵀ(…) only, not on the whole output (pyreft drops the whole Φ(h)).
  * short prompts (n tokens): with both f and l, first = min(N, ⌊n/2⌋) and last = min(M, ⌊n/2⌋) (pyreft's code),
    so the two sets never overlap; with one side only, min(N, n).
  * intervened in the prompt only; the edit reaches later tokens through the keys/values of the edited states.
  * not mergeable: the edit depends on the position (and LoReFT on h itself, through W h − R h at selected
    positions only), so no fixed weight change reproduces it.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import orthogonal

from minift.errors import ConfigError, InputError
from minift.model.gpt import IGNORE_INDEX
from minift.peft.adapters import gpt_of, resolve_layers
from minift.peft.core import MethodConfig, PeftModule, register, temporarily

# ------------------------------------------------------------------------------------------------------------
# The interventions, on vectors h (..., d)
# ------------------------------------------------------------------------------------------------------------


class LoReFT(nn.Module):
    """Φ(h) = h + drop(Rᵀ(W h + b − R h)). R = `rotate.weight` (r, d), W, b = `proj.weight`, `proj.bias`."""

    def __init__(self, d: int, r: int, dropout: float = 0.0, init: str = "random"):
        super().__init__()
        self.rotate = orthogonal(nn.Linear(d, r, bias=False), orthogonal_map="householder",
                                 use_trivialization=False)
        self.rotate.parametrizations.weight.original.no_decay = True
        self.proj = nn.Linear(d, r)
        self.dropout = nn.Dropout(dropout)
        if init == "identity":
            with torch.no_grad():
                self.proj.weight.copy_(self.rotate.weight)
                self.proj.bias.zero_()

    @property
    def R(self) -> torch.Tensor:
        return self.rotate.weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        R = self.R  # computed once per call: the Householder product is the costly part
        edit = (self.proj(h) - h @ R.T) @ R  # Rᵀ(W h + b − R h), as row vectors
        return h + self.dropout(edit)


class DiReFT(nn.Module):
    """Φ(h) = h + drop(W₂ᵀ(W₁ h + b)). W₁, b = `proj.weight`, `proj.bias`; W₂ = `write` (r, d)."""

    def __init__(self, d: int, r: int, dropout: float = 0.0, init: str = "random"):
        super().__init__()
        self.proj = nn.Linear(d, r)
        self.write = nn.Parameter(torch.empty(r, d))
        nn.init.kaiming_uniform_(self.write, a=math.sqrt(5))  # the nn.Linear default, as pyreft
        self.dropout = nn.Dropout(dropout)
        if init == "identity":
            with torch.no_grad():
                self.proj.weight.zero_()
                self.proj.bias.zero_()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.dropout(self.proj(h) @ self.write)


# ------------------------------------------------------------------------------------------------------------
# Positions
# ------------------------------------------------------------------------------------------------------------

_SPEC = re.compile(r"f(\d+)\+l(\d+)|f(\d+)|l(\d+)")  # fN+lM | fN | lM


def parse_positions(spec: str) -> tuple[int, int]:
    """"f3+l3" → (3, 3); "f5" → (5, 0); "l1" → (0, 1). ConfigError for anything else."""
    m = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if m is None:
        raise ConfigError(f"bad ReFT position spec {spec!r}: write fN (first N prompt tokens), lM (last M) or "
                          "fN+lM, e.g. 'f3+l3', 'f5', 'l1'")
    f_and_l, f_only, l_only = m.group(1, 2), m.group(3), m.group(4)
    first, last = (int(f_and_l[0]), int(f_and_l[1])) if f_and_l[0] else (int(f_only or 0), int(l_only or 0))
    if first + last == 0:
        raise ConfigError(f"ReFT position spec {spec!r} selects no position; use e.g. 'f1' or 'l1'")
    return first, last


def select_positions(rel: torch.Tensor, n: torch.Tensor, first: int, last: int) -> tuple[torch.Tensor, torch.Tensor]:
    """rel (B, S): each slot's index inside its row's prompt (negative before it); n (B,): prompt lengths.
    Returns the masks (is_first, is_last), (B, S).

    Both sides present: min(N, ⌊n/2⌋) and min(M, ⌊n/2⌋) positions; one side only: min(N, n)."""
    cap = n // 2 if first and last else n
    f = torch.clamp(cap, max=first)[:, None]
    m = torch.clamp(cap, max=last)[:, None]
    n = n[:, None]
    return (rel >= 0) & (rel < f), (rel >= n - m) & (rel < n)


class ReftLayer(PeftModule):
    """The interventions of one block: `shared` (tied, or one-sided spec) or `first` and `last` (untied)."""

    def __init__(self, kind: type, d: int, r: int, spec: str, tied: bool, dropout: float, init: str):
        super().__init__()
        self.spec = spec
        self.first_n, self.last_n = parse_positions(spec)
        if tied or not (self.first_n and self.last_n):
            self.shared = kind(d, r, dropout, init)
        else:
            self.first = kind(d, r, dropout, init)
            self.last = kind(d, r, dropout, init)
        self.where = None  # (B, T) long, set by `locate` for the current call
        self.pinned = None  # (B,) prompt lengths inside `prompt_lengths(...)`, else None

    def units(self, where: torch.Tensor) -> list[tuple[torch.Tensor, nn.Module]]:
        """(selected-positions mask (B, T, 1), Φ) for each intervention of this layer."""
        if hasattr(self, "shared"):
            return [((where > 0)[..., None], self.shared)]
        return [((where == 1)[..., None], self.first), ((where == 2)[..., None], self.last)]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, T, d) block output → the same with Φ applied where `where` > 0 (other positions are h, exactly)."""
        where = self.where
        if self.disabled or where is None or not bool((where > 0).any()):
            return h
        with torch.autocast(h.device.type, enabled=False):
            h32 = h.float()
            out = h32
            for sel, phi in self.units(where):
                out = torch.where(sel, phi(h32), out)  # exact h wherever sel is False
        return out.to(h.dtype)


def _intervene(block: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook on a block: its output (the residual stream) goes through its ReftLayer."""
    return block.reft(output)


def _reft_layers(model: nn.Module) -> list[ReftLayer]:
    return [b.reft for b in gpt_of(model).blocks if isinstance(getattr(b, "reft", None), ReftLayer)]


def locate(model: nn.Module, b: int, t: int, attention_mask=None, cache=None) -> None:
    """Work out `where` (B, T) for a call on t new tokens and hand it to every ReftLayer."""
    layers = _reft_layers(model)
    spec = layers[0]
    past = cache.n_tokens if cache is not None else 0
    where = None
    if spec.pinned is not None or past == 0:
        dev = model.device
        new = (torch.ones(b, t, dtype=torch.bool, device=dev) if attention_mask is None
               else attention_mask.to(device=dev, dtype=torch.bool))
        old = None if cache is None else cache.key_mask
        if old is None:
            old = torch.ones(b, past, dtype=torch.bool, device=dev)
        real = torch.cat([old.to(dev), new], dim=1)  # (B, past + t): which slots hold real tokens
        start = (real.long().cumsum(1) == 0).sum(1)  # leading pads per row
        n = real.sum(1) if spec.pinned is None else spec.pinned.to(dev)
        if n.numel() not in (1, b):
            raise InputError(f"{n.numel()} prompt lengths given for a batch of {b} rows; give one per row")
        n = n.expand(b)
        if cache is None and bool((n > real.sum(1)).any()):
            raise InputError(f"prompt lengths {n.tolist()} exceed the real tokens per row "
                             f"{real.sum(1).tolist()}; count prompt tokens without padding")
        rel = torch.arange(past + t, device=dev)[None, :] - start[:, None]  # index inside the row's prompt
        first, last = select_positions(rel, n, spec.first_n, spec.last_n)
        where = (first.long() + 2 * last.long())[:, past:]
    for layer in layers:
        layer.where = where


def hidden_with_reft(model: nn.Module, idx=None, attention_mask=None, cache=None, inputs_embeds=None):
    """GPT.hidden, after locating this call's intervened positions. Installed as `model.hidden`, so GPT.forward,
    GPT.generate and anything calling model.hidden use it."""
    x = idx if inputs_embeds is None else inputs_embeds
    if x is None:
        raise InputError("give token ids (idx) or inputs_embeds")
    locate(model, x.size(0), x.size(1), attention_mask, cache)
    return type(model).hidden(model, idx, attention_mask, cache, inputs_embeds)


@contextmanager
def prompt_lengths(model: nn.Module, lengths):
    """Inside the block the prompt of row b is its first lengths[b] real tokens (an int means every row)."""
    layers = _reft_layers(model)
    if not layers:
        raise ConfigError("prompt_lengths needs a model with ReFT applied (method 'loreft' or 'direft')")
    n = torch.as_tensor(lengths, dtype=torch.long).reshape(-1)
    if bool((n < 0).any()):
        raise InputError(f"prompt lengths must be ≥ 0, got {n.tolist()}")
    with temporarily(layers, "pinned", n):
        yield model


def prompt_lengths_from_targets(targets: torch.Tensor) -> torch.Tensor:
    """Prompt lengths of masked SFT rows (B, T): the input at the first supervised target k is the last prompt
    token (it predicts the first response token), so n = k + 1. Needs prompt masking (labels −100 on the prompt)."""
    supervised = targets != IGNORE_INDEX
    if not bool(supervised.any(1).all()):
        raise InputError("a row has no supervised target, so its prompt length is unknown; drop such rows")
    return supervised.long().argmax(1) + 1


def pinned_loss_fn(loss_fn):
    """Wrap a `loss_fn(model, batch)` whose batch is (ids, targets, ...) with prompt-masked targets, so that the
    forward inside it intervenes on the prompt only."""
    def wrapped(model, batch):
        with prompt_lengths(model, prompt_lengths_from_targets(batch[1])):
            return loss_fn(model, batch)
    return wrapped


@torch.no_grad()
def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, attention_mask=None, **kwargs) -> torch.Tensor:
    """model.generate with the prompt pinned to idx's real tokens, so the cached and uncached paths intervene at
    the same absolute prompt positions. kwargs: temperature, top_k, eos_id, use_cache, generator."""
    n = idx.size(1) if attention_mask is None else attention_mask.long().sum(1)
    with prompt_lengths(model, n):
        return model.generate(idx, max_new_tokens, attention_mask=attention_mask, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------------------


@dataclass
class _ReftConfig(MethodConfig):
    rank: int = 4
    layers: list | None = None  # block indices (None = all)
    positions: str = "f3+l3"
    tied: bool = False
    dropout: float = 0.0
    init: str = "random"  # "random" | "identity"

    kind: ClassVar[type] = nn.Module
    default_lr: ClassVar[float] = 1e-2
    lr_reason: ClassVar[str] = ("a low-rank edit of a few positions' hidden states, from scratch (tiny base, "
                                "sentiment, 10 epochs: LoReFT 0.80, DiReFT 0.78)")
    why_not_mergeable: ClassVar[str] = ("ReFT edits the hidden states at chosen prompt positions only, which no fixed "
                                        "weight change reproduces")
    key_options: ClassVar[tuple[str, ...]] = ("rank", "positions")
    needs_masked_prompt: ClassVar[bool] = True  # the prompt's length is read from the −100 labels

    def wrap_sft_loss(self, loss_fn):
        """Training: the prompt positions come from the batch's labels (`pinned_loss_fn`)."""
        return pinned_loss_fn(loss_fn)

    def generate(self, model: nn.Module, idx, max_new_tokens: int, **kwargs):
        """Generation: the edited positions stay pinned to the prompt (`generate` in this file)."""
        return generate(model, idx, max_new_tokens, **kwargs)

    def __post_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"ReFT rank must be a positive integer, got {self.rank!r}")
        parse_positions(self.positions)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ReFT dropout must be in [0, 1), got {self.dropout!r}")
        if self.init not in ("random", "identity"):
            raise ConfigError(f"ReFT init must be 'random' or 'identity', got {self.init!r}")
        if isinstance(self.layers, tuple):
            self.layers = list(self.layers)

    def inject(self, model: nn.Module) -> None:
        model = gpt_of(model)
        d = model.config.d_model
        if self.rank > d:
            raise ConfigError(f"ReFT rank {self.rank} exceeds d_model={d}; R cannot have more orthonormal rows "
                              "than the width")
        for i in resolve_layers(self.layers, len(model.blocks), self.method):
            block = model.blocks[i]
            block.reft = ReftLayer(self.kind, d, self.rank, self.positions, self.tied, self.dropout,
                                   self.init).to(model.device)
            block.register_forward_hook(_intervene)
        # GPT.hidden is a plain method, not a module call, so no hook can reach it: shadow it on this instance
        model.hidden = partial(hidden_with_reft, model)


@register
@dataclass
class LoReFTConfig(_ReftConfig):
    """LoReFT at `positions` of the prompt after each of `layers`. Not mergeable (position-specific edit)."""

    method: ClassVar[str] = "loreft"
    kind: ClassVar[type] = LoReFT


@register
@dataclass
class DiReFTConfig(_ReftConfig):
    """DiReFT (unconstrained W₂, no subtraction) at `positions` of the prompt. Not mergeable."""

    method: ClassVar[str] = "direft"
    kind: ClassVar[type] = DiReFT
