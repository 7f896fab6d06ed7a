"""Stage 6, parameter-efficient fine-tuning, written out: LoRA / DoRA, (IA)³, bottleneck adapters, prefix and prompt
tuning, ReFT.

Read core.py first (freeze, inject, count, switch off; what a method owns) and persistence.py (save/load, merge),
then lora.py, qlora.py (LoRA over a 4-bit base, minift/quant/), ia3.py, adapters.py, prompts.py, reft.py. docs/peft.md derives every method.

    from minift.peft import method_config, apply_method, save_adapter
    apply_method(model, method_config("lora", r=8, alpha=16, targets=["attn.q", "attn.v"]))
"""

# importing a method module registers its config under its name (in this order: it is the order of METHODS)
from minift.peft import lora, qlora, adapters, prompts, ia3, reft  # noqa: F401
from minift.peft.adapters import HoulsbyConfig, PfeifferConfig
from minift.peft.core import (METHODS, MethodConfig, PeftModule, apply_method, count_parameters, disabled,
                              method_config, method_of, peft_modules, register, trainable_parameters)
from minift.peft.ia3 import IA3Config, IA3Linear
from minift.peft.lora import DoRAConfig, LoRAConfig, LoRALinear, lora_scale
from minift.peft.persistence import (adapter_state_dict, load_adapter, merge, merge_and_unload, save_adapter,
                                     unmerge)
from minift.peft.prompts import PrefixConfig, PromptConfig
from minift.peft.qlora import QLoRAConfig, merge_qlora
from minift.peft.reft import DiReFTConfig, LoReFTConfig

__all__ = [
    "METHODS", "MethodConfig", "PeftModule", "adapter_state_dict", "apply_method", "count_parameters", "disabled",
    "load_adapter", "merge", "merge_and_unload", "method_config", "method_of", "peft_modules", "register",
    "save_adapter", "trainable_parameters", "unmerge",
    "LoRAConfig", "DoRAConfig", "LoRALinear", "lora_scale", "IA3Config", "IA3Linear", "HoulsbyConfig",
    "PfeifferConfig", "PrefixConfig", "PromptConfig", "LoReFTConfig", "DiReFTConfig", "QLoRAConfig", "merge_qlora",
]
