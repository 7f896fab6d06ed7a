"""Keeping a trained adapter: save it alone, load it back strictly, or merge it into the base weights.

core.py freezes the base and trains only the method's parameters φ; this file is what comes after training.

The adapter file is {"format", "version", "method", "base", "state"} written with torch.save: the method's config
(so loading can apply it to a plain base model), the base model's config (so an adapter is never loaded into
another base), and the adapter state, O(|φ|) — every trainable parameter by its full name (so trained biases and a
new task head are included) plus every buffer registered inside a PeftModule (tensors a method needs but does not
train, e.g. the fixed part of a parametrisation).

Decisions stated here (docs/peft.md, "What every method shares"):
  * adapter files are loaded STRICTLY — a missing key, an unexpected key, a wrong shape or another base config is an
    error naming it, never a silent "B stays 0" (huggingface/peft#1678);
  * merging is explicit (`merge` / `unmerge`), never tied to `.train()` / `.eval()`; merging twice raises; saving
    while merged raises (the file would otherwise hold a delta that the base already contains);
  * only a method whose update is a change of existing weight matrices can be merged (its config says
    `mergeable = True`: LoRA, DoRA, (IA)³); the others raise and stay separate modules.

minift.peft exports the public functions.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn as nn

from minift.errors import CheckpointError, ConfigError
from minift.files import torch_load, torch_save_atomic
from minift.peft.core import MethodConfig, PeftModule, apply_method, peft_modules, replace_module, trainable_parameters
from minift.quant.linear4bit import Linear4bit

FORMAT = "minift-adapter"
VERSION = 1


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading only the adapter
# ---------------------------------------------------------------------------------------------------------------

def _adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The live tensors that make up the adapter: trainable parameters + buffers inside PeftModules."""
    out = dict(trainable_parameters(model))
    # a 4-bit base layer (QLoRA) keeps its frozen weight in buffers: base state, rebuilt from the base when loading
    frozen = {id(b) for m in model.modules() if isinstance(m, Linear4bit) for b in m.buffers()}
    for prefix, m in peft_modules(model):
        # state_dict lists persistent buffers only; Parameters inside (frozen base weights) are not adapter state
        for name, t in m.state_dict(prefix=prefix + "." if prefix else "", keep_vars=True).items():
            if not isinstance(t, nn.Parameter) and id(t) not in frozen:
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


def base_fingerprint(model: nn.Module, exclude: set[str]) -> str:
    """A short hash of the base weights under a method: every tensor of the state_dict except the adapter's own
    (`exclude`: the names of `_adapter_tensors(model)`). Computed with the method applied (so the names are the
    same when saving and when loading), it names the exact base an adapter was trained on, not only its shapes."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if name not in exclude:
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def save_adapter(model: nn.Module, path) -> None:
    """Atomically write {"format", "version", "method", "base", "base_fingerprint", "base_origin", "state"} with
    torch.save. The fingerprint names the exact base weights; the origin (where the base was loaded from, when
    known) is for the error message a mismatch gives."""
    config = _require_method(model)
    if any(m.merged for _, m in peft_modules(model)):
        raise ConfigError("the adapter is merged into the base weights; call unmerge(model) before saving it")
    state = {k: v.detach().cpu().clone() for k, v in _adapter_tensors(model).items()}
    torch_save_atomic({"format": FORMAT, "version": VERSION, "method": config.to_dict(),
                       "base": _base_config(model), "state": state,
                       "base_fingerprint": base_fingerprint(model, set(state)),
                       "base_origin": _origin(model)}, path)


def _origin(model: nn.Module) -> str | None:
    body = getattr(model, "body", model)  # a Classifier's GPT
    return getattr(body, "origin", None)


def load_adapter(model: nn.Module, path, allow_other_base: bool = False) -> nn.Module:
    """Apply the stored method to a plain base model (or check the applied one is the same) and load strictly.

    The base must be the one the adapter was trained on: same architecture, and same weights (the file's
    `base_fingerprint`, checked once the method is in place, before any adapter tensor is loaded; a refused
    plain model is left with the method applied, untrained). `allow_other_base=True` skips the weights check."""
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
    recorded = payload.get("base_fingerprint")
    if recorded is not None and not allow_other_base:
        ours = base_fingerprint(model, set(_adapter_tensors(model)))
        if ours != recorded:
            was = payload.get("base_origin") or "another base"
            now = _origin(model) or "this model"
            raise CheckpointError(f"{path} was trained on {was} (weights fingerprint {recorded}), not on {now} "
                                  f"({ours}), which has the same shapes but other weights; load it into the base it "
                                  "was trained on (or pass allow_other_base=True / --allow-other-base if you know "
                                  "the two are equivalent)")
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

