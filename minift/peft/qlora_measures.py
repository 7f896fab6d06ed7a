"""What QLoRA saves and what its merge loses, measured on a model (docs/quantization.md reports the numbers).

memory_breakdown(model, step) — the bytes a training step holds, by kind:

    weights          every parameter at its dtype + the 4-bit layers' codes and constants (weight_memory_bytes)
    adapter          the trainable numbers, 4 bytes each, plus their gradients, 4 bytes each
    optimizer        AdamW's two moments, 8 bytes per trainable number
    activations      tensors the forward saves for the backward (autograd's saved tensors, each storage once,
                     parameters and buffers excluded): they grow with batch × length, not with the model
    dequantised      the largest Ŵ a 4-bit layer rebuilds for one matmul (float32 out × in): one at a time, freed
                     after use

merge_trap(model, original, x) — for each merge target (qlora.py), per adapted layer, with Ŵ = dequantise(W₄) the
weight the adapter was trained against and ΔW = s·BA its update:

    ΔW_eff = W'_into − Ŵ                         the change the merged layer really makes to what was trained on
    kept   = ⟨ΔW_eff, ΔW⟩ / ‖ΔW‖²                the share of the update that survives (1 = all of it)
    error  = ‖ΔW_eff − ΔW‖ / ‖ΔW‖                what comes in that is not the update (0 = nothing)
    drift  = max |logits_merged − logits_trained| over the batch x
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from minift.peft.core import trainable_parameters
from minift.peft.lora import LoRALinear
from minift.peft.qlora import MERGE_TARGETS, _merged_weight, merge_qlora
from minift.quant.linear4bit import Linear4bit, weight_memory_bytes


def saved_activation_bytes(model: nn.Module, forward: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Run `forward()` (returning a loss) and count the bytes autograd saves for the backward, each storage once,
    leaving out the model's own parameters and buffers. Returns (loss, bytes)."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in own:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    return loss, sum(seen.values())


def memory_breakdown(model: nn.Module, forward: Callable[[], torch.Tensor]) -> dict:
    """Bytes of one training step by kind (module docstring); runs the forward and the backward once."""
    n = sum(p.numel() for _, p in trainable_parameters(model))
    loss, activations = saved_activation_bytes(model, forward)
    loss.backward()
    four_bit = [m for m in model.modules() if isinstance(m, Linear4bit)]
    parts = {"weights": weight_memory_bytes(model), "adapter": 8 * n, "optimizer": 8 * n,
             "activations": activations,
             "dequantised": max((4 * m.in_features * m.out_features for m in four_bit), default=0)}
    return {**parts, "total": sum(parts.values())}


@torch.no_grad()
def merge_trap(model: nn.Module, original: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, dict]:
    """{target: {"kept", "error", "drift"}} for a trained QLoRA model (see the module docstring); the model itself
    is left as it was (each merge works on a copy)."""
    import copy

    layers = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear) and isinstance(m.base, Linear4bit)}
    trained = model(x)[0]
    out = {}
    for into in MERGE_TARGETS:
        dot = sq = err = 0.0
        for name, m in layers.items():
            delta = m.delta_weight()
            eff = _merged_weight(m, into, original.get(name + ".weight")) - m.base.dequantize()
            dot += float((eff * delta).sum())
            sq += float(delta.square().sum())
            err += float((eff - delta).square().sum())
        merged = merge_qlora(copy.deepcopy(model), into, original)
        out[into] = {"kept": dot / sq, "error": (err / sq) ** 0.5,
                     "drift": float((merged(x)[0] - trained).abs().max())}
    return out
