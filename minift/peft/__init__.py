"""Parameter-efficient fine-tuning, written out: LoRA / DoRA, (IA)³, bottleneck adapters, prefix and prompt tuning,
ReFT.

Read core.py first (freeze, inject, count, switch off) and persistence.py (save/load, merge), then lora.py, ia3.py,
adapters.py, prompts.py, reft.py.

    from minift.peft import method_config, apply_method, save_adapter
    apply_method(model, method_config("lora", r=8, alpha=16, targets=["attn.q", "attn.v"]))
"""

from .core import (
    METHODS,
    MethodConfig,
    PeftModule,
    apply_method,
    count_parameters,
    disabled,
    method_config,
    register,
    trainable_parameters,
)
from .persistence import adapter_state_dict, load_adapter, merge, merge_and_unload, save_adapter, unmerge

# importing a method module registers its config under its name
from . import lora, ia3, adapters, prompts, reft  # noqa: E402,F401
from .lora import DoRAConfig, LoRAConfig, LoRALinear, lora_scale  # noqa: E402
from .ia3 import IA3Config, IA3Linear  # noqa: E402

__all__ = [
    "METHODS", "MethodConfig", "PeftModule", "adapter_state_dict", "apply_method", "count_parameters", "disabled",
    "load_adapter", "merge", "merge_and_unload", "method_config", "register", "save_adapter",
    "trainable_parameters", "unmerge",
    "LoRAConfig", "DoRAConfig", "LoRALinear", "lora_scale", "IA3Config", "IA3Linear",
]
