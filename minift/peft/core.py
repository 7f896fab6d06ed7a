"""What every parameter-efficient method shares: freeze the base, inject small trainable modules, count, switch
off, save/load only the adapter, merge.

The recipe (Hu et al., 2021; Houlsby et al., 2019; the huggingface/peft design):

    1. freeze every base parameter θ₀ (requires_grad = False);
    2. `config.inject(model)` inserts `PeftModule`s holding a few new parameters φ (|φ| ≪ |θ₀|);
    3. train φ only; the optimizer state and the saved file are O(|φ|), the base never changes.

A method is a `MethodConfig` subclass (a dataclass of its hyper-parameters) registered under a name:

    @register
    @dataclass
    class LoRAConfig(MethodConfig):
        method: ClassVar[str] = "lora"
        r: int = 8
        def inject(self, model): ...

Decisions stated here (peft-math.md §9):
  * one method per model: applying a second one raises (the base is frozen once and the file format names one method);
  * adapter files are loaded STRICTLY — a missing key, an unexpected key, a wrong shape or another base config is an
    error naming it, never a silent "B stays 0" (huggingface/peft#1678);
  * merging is explicit (`merge` / `unmerge`), never tied to `.train()` / `.eval()`; merging twice raises; saving
    while merged raises (the file would otherwise hold a delta that the base already contains);
  * `disabled(model)` gives exactly the base model — unless trainable base biases were chosen (LoRA `bias="all"`),
    which change the base itself; it refuses a merged model, whose weights already contain the update.

The adapter state is every trainable parameter by its full name (so trained biases and a new task head are
included) plus every buffer registered inside a PeftModule (tensors a method needs but does not train, e.g. the
fixed part of a parametrisation). Attach a new task head AFTER `apply_method` — applying freezes everything present.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import ClassVar, Iterator

import torch
import torch.nn as nn

from ..errors import CheckpointError, ConfigError
from ..utils import torch_load, torch_save_atomic

FORMAT = "minift-adapter"
VERSION = 1


class PeftModule(nn.Module):
    """Base class of every module a method puts into a model.

    `disabled = True` ⇒ the module must behave exactly like the base (the wrapped layer, or the identity).
    Mergeable modules also implement `merge()`, `unmerge()` and `unload()` (the plain module to put back after a
    merge) and keep `merged` up to date.
    """

    disabled: bool = False
    merged: bool = False

    def merge(self) -> None:
        raise ConfigError(f"{type(self).__name__} cannot be merged into the base weights")

    def unmerge(self) -> None:
        raise ConfigError(f"{type(self).__name__} cannot be merged, so it cannot be unmerged either")

    def unload(self) -> nn.Module:
        raise ConfigError(f"{type(self).__name__} cannot be unloaded into a plain module")


@dataclass
class MethodConfig:
    """Base class of every method's configuration (a dataclass); `method` is its registry name."""

    method: ClassVar[str] = ""
    mergeable: ClassVar[bool] = False

    def inject(self, model: nn.Module) -> None:
        """Insert this method's PeftModules (the base is already frozen). Validate first, then change the model,
        so an error leaves the model as it was."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        d = {f.name: plain_value(getattr(self, f.name)) for f in fields(self)}
        return {"method": self.method, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "MethodConfig":
        """Rebuild a config; called on MethodConfig itself it dispatches on d["method"]."""
        d = dict(d)
        name = d.pop("method", None)
        if cls is MethodConfig:
            target = _lookup(name)
        elif name != cls.method:
            raise ConfigError(f"{cls.__name__} is method {cls.method!r}, but the dict says {name!r}")
        else:
            target = cls
        known = {f.name for f in fields(target)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown {target.__name__} fields {unknown}; known fields are {sorted(known)}")
        return target(**d)


def plain_value(value):
    """Tuples → lists, recursively, so a config round-trips through JSON / torch.save and compares equal."""
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    return value


METHODS: dict[str, type[MethodConfig]] = {}


def register(cls: type[MethodConfig]) -> type[MethodConfig]:
    """Class decorator: make a MethodConfig subclass available as `method_config(cls.method)`."""
    if not getattr(cls, "method", ""):
        raise ConfigError(f"{cls.__name__} needs a class attribute `method` (its registry name)")
    METHODS[cls.method] = cls
    return cls


def _lookup(name) -> type[MethodConfig]:
    if name not in METHODS:
        raise ConfigError(f"unknown PEFT method {name!r}; known methods are {sorted(METHODS)}")
    return METHODS[name]


def method_config(name: str, **kwargs) -> MethodConfig:
    """`method_config("lora", r=4)` → LoRAConfig(r=4). Unknown names or fields raise ConfigError."""
    cls = _lookup(name)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"unknown {name!r} options {unknown}; known options are {sorted(known)}")
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Applying a method, counting, switching it off
# ---------------------------------------------------------------------------------------------------------------

def apply_method(model: nn.Module, config: MethodConfig) -> nn.Module:
    """Freeze every base parameter, inject the method's modules, remember the config on `model.peft_config`."""
    if not isinstance(config, MethodConfig):
        raise ConfigError(f"expected a MethodConfig (e.g. method_config('lora')), got {type(config).__name__}")
    if getattr(model, "peft_config", None) is not None:
        raise ConfigError(f"this model already has the method {model.peft_config.method!r} applied; "
                          "start again from a plain base model to apply another one")
    before = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in before:
        p.requires_grad_(False)
    try:
        config.inject(model)  # a method checks its targets before it changes anything
    except BaseException:
        for p, flag in before:
            p.requires_grad_(flag)
        raise
    model.peft_config = config
    return model


def peft_modules(model: nn.Module) -> Iterator[tuple[str, PeftModule]]:
    """Every PeftModule in the model, with its full name."""
    for name, m in model.named_modules():
        if isinstance(m, PeftModule):
            yield name, m


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) for each parameter that requires grad (a tied parameter appears once)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def count_parameters(model: nn.Module) -> dict:
    """{"trainable", "total", "fraction"}; shared (tied) parameters are counted once."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total, "fraction": trainable / total if total else 0.0}


@contextmanager
def disabled(model: nn.Module):
    """Inside the block every PeftModule is switched off, so the model computes the base function
    (except trained base biases, see the module docstring). The previous flags are restored afterwards."""
    mods = [m for _, m in peft_modules(model)]
    if any(m.merged for m in mods):
        raise ConfigError("the adapter is merged into the base weights, so it cannot be switched off; "
                          "call unmerge(model) first")
    before = [m.disabled for m in mods]
    try:
        for m in mods:
            m.disabled = True
        yield model
    finally:
        for m, flag in zip(mods, before):
            m.disabled = flag


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading only the adapter
# ---------------------------------------------------------------------------------------------------------------

def _adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The live tensors that make up the adapter: trainable parameters + buffers inside PeftModules."""
    out = dict(trainable_parameters(model))
    for prefix, m in peft_modules(model):
        # state_dict lists persistent buffers only; Parameters inside (frozen base weights) are not adapter state
        for name, t in m.state_dict(prefix=prefix + "." if prefix else "", keep_vars=True).items():
            if not isinstance(t, nn.Parameter):
                out.setdefault(name, t)
    return out


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every adapter tensor by its full name, detached (see `_adapter_tensors`)."""
    return {k: v.detach() for k, v in _adapter_tensors(model).items()}


def _require_method(model: nn.Module) -> MethodConfig:
    config = getattr(model, "peft_config", None)
    if config is None:
        raise ConfigError("no PEFT method is applied to this model; call apply_method(model, config) first")
    return config


def _base_config(model: nn.Module):
    cfg = getattr(model, "config", None)
    return cfg.to_dict() if hasattr(cfg, "to_dict") else None


def save_adapter(model: nn.Module, path) -> None:
    """Atomically write {"format", "version", "method", "base", "state"} with torch.save."""
    config = _require_method(model)
    if any(m.merged for _, m in peft_modules(model)):
        raise ConfigError("the adapter is merged into the base weights; call unmerge(model) before saving it")
    state = {k: v.detach().cpu().clone() for k, v in _adapter_tensors(model).items()}
    torch_save_atomic({"format": FORMAT, "version": VERSION, "method": config.to_dict(),
                       "base": _base_config(model), "state": state}, path)


def load_adapter(model: nn.Module, path) -> nn.Module:
    """Apply the stored method to a plain base model (or check the applied one is the same) and load strictly."""
    payload = torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minift adapter file (expected 'format': {FORMAT!r}); "
                              "save adapters with minift.peft.save_adapter")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has adapter format version {payload.get('version')!r}; "
                              f"this minift reads version {VERSION}")
    base, ours = payload.get("base"), _base_config(model)
    if base != ours:
        diff = _dict_diff(base or {}, ours or {})
        raise CheckpointError(f"{path} was trained on another base model: {diff} (file vs model); "
                              "load it into the base model it was trained on")
    try:
        config = MethodConfig.from_dict(payload["method"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: its method config cannot be used: {e}") from None
    current = getattr(model, "peft_config", None)
    if current is None:
        apply_method(model, config)
    elif current.to_dict() != config.to_dict():
        diff = _dict_diff(config.to_dict(), current.to_dict())
        raise CheckpointError(f"{path} holds another method config than the one applied: {diff} (file vs model); "
                              "load it into a plain base model instead")
    _load_strict(model, payload["state"], path)
    return model


def _dict_diff(a: dict, b: dict) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k}: {a.get(k, '<absent>')!r} vs {b.get(k, '<absent>')!r}" for k in keys
                     if a.get(k, "<absent>") != b.get(k, "<absent>"))


def _load_strict(model: nn.Module, state: dict, path) -> None:
    own = _adapter_tensors(model)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                   for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if wrong:
        problems.append(f"wrong shapes {wrong}")
    if problems:
        raise CheckpointError(f"{path} does not fit this model: " + "; ".join(problems))
    with torch.no_grad():
        for k, t in own.items():
            t.copy_(state[k])


# ---------------------------------------------------------------------------------------------------------------
# Merging (LoRA, DoRA, (IA)³: the update is a change of existing weights, so it can be folded in)
# ---------------------------------------------------------------------------------------------------------------

def _mergeable(model: nn.Module) -> list[PeftModule]:
    config = _require_method(model)
    if not type(config).mergeable:
        raise ConfigError(f"the method {config.method!r} cannot be merged into the base weights: its modules "
                          "compute something that is not a change of an existing weight matrix; keep it separate")
    return [m for _, m in peft_modules(model)]


def merge(model: nn.Module) -> nn.Module:
    """Fold every module's update into its base weight; the forward then skips the extra branch.
    Merged ≡ unmerged only in eval mode (dropout on the branch cannot be folded)."""
    mods = _mergeable(model)
    if any(m.merged for m in mods):
        raise ConfigError("the adapter is already merged; merging twice would add the update twice")
    if any(m.disabled for m in mods):
        raise ConfigError("cannot merge a switched-off adapter; leave the disabled(...) block first")
    for m in mods:
        m.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """Subtract the update again (equal to the original weights up to float rounding, not bit-for-bit)."""
    mods = _mergeable(model)
    if not all(m.merged for m in mods):
        raise ConfigError("the adapter is not merged, so there is nothing to unmerge")
    for m in mods:
        m.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge, then put each wrapped plain module back: the result is an ordinary model with no PeftModule.
    Like a freshly built model, every parameter requires grad again."""
    merge(model)
    for name, m in list(peft_modules(model)):
        replace_module(model, name, m.unload())
    for m in model.modules():  # the wrapper (e.g. a Classifier) and the GPT inside it may both carry the config
        m.__dict__.pop("peft_config", None)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


# ---------------------------------------------------------------------------------------------------------------
# Helpers for methods: finding and replacing modules by name
# ---------------------------------------------------------------------------------------------------------------

def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` where the submodule called `name` (dotted, e.g. "blocks.0.attn.q") is."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def layer_index(name: str) -> int | None:
    """The first numeric segment of a dotted name ("blocks.3.attn.q" → 3), or None."""
    for part in name.split("."):
        if part.isdigit():
            return int(part)
    return None


def name_matches(name: str, targets) -> bool:
    """A list/tuple entry matches when name == entry or name ends with "." + entry (so "v" does not match
    "attn.v_proj"); a string is a regular expression that must match the WHOLE name (re.fullmatch)."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def select_modules(model: nn.Module, targets, layers=None, kind=nn.Linear) -> list[tuple[str, nn.Module]]:
    """The modules of type `kind` whose names match `targets` (see `name_matches`; the string "all-linear" means
    every nn.Linear except the LM head), optionally only in the given layer indices. Matching nothing raises a
    ConfigError that lists the candidates."""
    candidates = [(n, m) for n, m in model.named_modules()
                  if isinstance(m, kind) and not _inside_peft(model, n)]
    if targets == "all-linear":
        chosen = [(n, m) for n, m in candidates if n.rsplit(".", 1)[-1] != "lm_head"]
    else:
        chosen = [(n, m) for n, m in candidates if name_matches(n, targets)]
    if layers is not None:
        chosen = [(n, m) for n, m in chosen if layer_index(n) in set(layers)]
    if not chosen:
        wrong_kind = [n for n, m in model.named_modules() if n and not isinstance(m, kind)
                      and targets != "all-linear" and name_matches(n, targets)]
        hint = (f" ({', '.join(wrong_kind)} matched but {'is' if len(wrong_kind) == 1 else 'are'} not "
                f"{kind.__name__})") if wrong_kind else ""
        short = sorted({re.sub(r"^blocks\.\d+\.", "", n) for n, _ in candidates})
        raise ConfigError(f"targets {targets!r} (layers {layers}) match no {kind.__name__} module{hint}; "
                          f"candidates are {short} (a list entry matches a dotted suffix, a string is a regex "
                          r"over the full name such as 'blocks\.\d+\.attn\.(q|v)', or use 'all-linear')")
    return chosen


def _inside_peft(model: nn.Module, name: str) -> bool:
    parts = name.split(".")
    return any(isinstance(model.get_submodule(".".join(parts[:i])), PeftModule) for i in range(1, len(parts)))


def is_tied(model: nn.Module, param: nn.Parameter) -> bool:
    """True when the same Parameter object is registered under more than one name (weight tying)."""
    return sum(p is param for _, p in model.named_parameters(remove_duplicate=False)) > 1


def check_targets(targets, layers=None) -> None:
    """Validate a `targets` value (see `select_modules`) and an optional list of layer indices."""
    if isinstance(targets, str):
        if not targets:
            raise ConfigError("targets is an empty string; give a list of name suffixes, a regex or 'all-linear'")
    elif not (isinstance(targets, (list, tuple)) and targets and all(isinstance(t, str) and t for t in targets)):
        raise ConfigError(f"targets must be a non-empty list of module-name suffixes, a regex string or "
                          f"'all-linear', got {targets!r}")
    if layers is not None and not (isinstance(layers, (list, tuple)) and
                                   all(isinstance(i, int) and i >= 0 for i in layers)):
        raise ConfigError(f"layers must be None or a list of block indices, got {layers!r}")
