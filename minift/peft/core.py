"""What every parameter-efficient method shares: freeze the base, inject small trainable modules, count them,
switch them off.

The recipe (Hu et al., 2021; Houlsby et al., 2019; the huggingface/peft design):

    1. freeze every base parameter θ₀ (requires_grad = False);
    2. `config.inject(model)` inserts `PeftModule`s holding a few new parameters φ (|φ| ≪ |θ₀|);
    3. train φ only; the optimizer state and the saved file are O(|φ|), the base never changes.

A method is a `MethodConfig` subclass (a dataclass of its hyper-parameters) registered under a name. It owns
everything that is special about it, so adding a method touches its own file (and its test) only:

    @register
    @dataclass
    class LoRAConfig(MethodConfig):
        method: ClassVar[str] = "lora"
        default_lr: ClassVar[float] = 2e-3          # the lr a run uses when none is given ...
        lr_reason: ClassVar[str] = "..."            # ... and why, in one line
        mergeable: ClassVar[bool] = True            # or why_not_mergeable = "..."
        r: int = 8
        def inject(self, model): ...

and, where the method needs them, the hooks `reserved_positions()` (context positions it takes from the input),
`wrap_sft_loss(loss_fn)` (a method that must see an instruction batch before the loss: ReFT's prompt positions),
`generate(...)` and the class flag `needs_masked_prompt` (docs/peft.md).

Decisions stated here:
  * one method per model: applying a second one raises (the base is frozen once and the file format names one method);
  * `disabled(model)` gives exactly the base model — unless trainable base biases were chosen (LoRA `bias="all"`),
    which change the base itself, or the method quantised the base (QLoRA: then it gives the quantised base); it
    refuses a merged model, whose weights already contain the update.

Attach a new task head AFTER `apply_method` — applying freezes everything present. The last section holds what the
methods use to pick their target modules by name. What comes after training (saving and strictly loading only the
adapter, merging it into the base weights) is in persistence.py.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import ClassVar, Iterator

import torch.nn as nn

from minift.errors import ConfigError
from minift.quant.linear4bit import Linear4bit


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
    default_lr: ClassVar[float] = 1e-3        # peak lr of a fine-tuning run that gives none
    lr_reason: ClassVar[str] = ""             # one line: why that lr (shown by `minift methods`)
    mergeable: ClassVar[bool] = False
    why_not_mergeable: ClassVar[str] = ""     # one line, for methods that cannot be merged
    needs_masked_prompt: ClassVar[bool] = False  # finds the prompt through masked labels: no train_on_prompt
    key_options: ClassVar[tuple[str, ...]] = ()  # the options a results table shows beside the method's name
    merge_targets: ClassVar[tuple[str, ...]] = ()  # where a merge may put the update, when the user must choose
    quantizes_base: ClassVar[bool] = False  # the base is replaced by a quantised copy (QLoRA): disabled() gives that

    def reserved_positions(self) -> int:
        """Context positions the method takes from the input (a soft prompt's P); 0 for most methods."""
        return 0

    def wrap_sft_loss(self, loss_fn):
        """The instruction-tuning loss (batches of prompt-masked targets) to train this method with: `loss_fn`
        itself unless the method must see each batch first."""
        return loss_fn

    def generate(self, model: nn.Module, idx, max_new_tokens: int, **kwargs):
        """Continue `idx` (1, T) with the method in place: `model.generate` unless the method needs more."""
        return model.generate(idx, max_new_tokens, **kwargs)

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


def method_of(model: nn.Module) -> MethodConfig | None:
    """The method applied to `model` (or to the model inside a wrapper such as a Classifier), or None."""
    cfg = getattr(model, "peft_config", None)
    if cfg is None and isinstance(getattr(model, "body", None), nn.Module):
        cfg = getattr(model.body, "peft_config", None)
    return cfg


def method_config(name: str, **kwargs) -> MethodConfig:
    """`method_config("lora", r=4)` → LoRAConfig(r=4). Unknown names or fields, and values of the wrong type
    (`--opt dropout=abc`), raise ConfigError."""
    cls = _lookup(name)
    types = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(kwargs) - set(types))
    if unknown:
        raise ConfigError(f"unknown {name!r} options {unknown}; known options are {sorted(types)}")
    for key, value in kwargs.items():
        check_type(f"{name} option {key}", value, types[key])
    return cls(**kwargs)


_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str, "list": (list, tuple), "dict": dict}


def check_type(what: str, value, annotation) -> None:
    """Check `value` against a field's annotation (a string such as "int | None", as `from __future__ import
    annotations` leaves them); a bool is not accepted as a number. ConfigError naming what was expected."""
    names = [t.strip() for t in str(annotation).split("|")]
    if value is None and "None" in names:
        return
    for t in names:
        expected = _TYPES.get(t)
        if expected is None:
            return  # an annotation this check does not know: leave it to the config's own validation
        if isinstance(value, expected) and not (isinstance(value, bool) and t != "bool"):
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{what} must be a finite number, got {value}")
            return
    raise ConfigError(f"{what} must be {' or '.join(names)}, got {value!r}")


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
    """{"trainable", "total", "fraction"}; shared (tied) parameters are counted once, and a weight frozen in 4 bits
    (QLoRA's Linear4bit, which stores it in buffers) counts as the in × out numbers it stands for."""
    total = sum(p.numel() for p in model.parameters())
    total += sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, Linear4bit))
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
    with temporarily(mods, "disabled", True):
        yield model


@contextmanager
def temporarily(objects, attr: str, value):
    """Inside the block every object's `attr` is `value`; afterwards each gets its own previous value back, also
    when the block raises (`disabled` switches the PeftModules off with it)."""
    before = [getattr(o, attr) for o in objects]
    try:
        for o in objects:
            setattr(o, attr, value)
        yield
    finally:
        for o, old in zip(objects, before):
            setattr(o, attr, old)


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

