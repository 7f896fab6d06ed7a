"""Handing a model to the Hugging Face ecosystem: a Llama-family model (SmolLM2) as a `transformers` model
directory, and its LoRA adapter in `peft`'s layout.

    merged model   config.json (LlamaForCausalLM's fields), model.safetensors (HF tensor names), tokenizer.json and
                   tokenizer_config.json (which says that special-token text in user input is plain text, so
                   `transformers` tokenises exactly as minift does)
    LoRA adapter   adapter_config.json (peft_type LORA, r, lora_alpha, target_modules, use_rslora, …) and
                   adapter_model.safetensors with keys base_model.model.<HF module>.lora_A.weight (r, in) and
                   .lora_B.weight (out, r); peft computes the same α/r (or α/√r) scale from them

    minift name                          HF name (Llama)
    tok_emb / ln_f / lm_head             model.embed_tokens / model.norm / lm_head
    blocks.{i}.ln1 / ln2                 model.layers.{i}.input_layernorm / post_attention_layernorm
    blocks.{i}.attn.q / k / v / o        model.layers.{i}.self_attn.q_proj / k_proj / v_proj / o_proj
    blocks.{i}.mlp.gate / up / down      model.layers.{i}.mlp.gate_proj / up_proj / down_proj

The q/k rows are already in the rotate-half order `transformers` uses (minift/base/llama_gguf.py un-permuted them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path


from minift.base.safetensors import save_safetensors
from minift.errors import ConfigError
from minift.files import PathLike, atomic_write_text, make_dir
from minift.model.llama import Llama
from minift.model.tokenizer import Tokenizer

_MODULES = [(r"^tok_emb$", "model.embed_tokens"), (r"^ln_f$", "model.norm"), (r"^lm_head$", "lm_head"),
            (r"^blocks\.(\d+)\.ln1$", r"model.layers.\1.input_layernorm"),
            (r"^blocks\.(\d+)\.ln2$", r"model.layers.\1.post_attention_layernorm"),
            (r"^blocks\.(\d+)\.attn\.(q|k|v|o)$", r"model.layers.\1.self_attn.\2_proj"),
            (r"^blocks\.(\d+)\.mlp\.(gate|up|down)$", r"model.layers.\1.mlp.\2_proj")]


def hf_module(name: str) -> str:
    """minift's module name → the `transformers` Llama module name (see the module docstring)."""
    for pattern, replacement in _MODULES:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    raise ConfigError(f"{name} has no counterpart in a transformers Llama")


def _need_llama(model) -> Llama:
    if not isinstance(model, Llama):
        raise ConfigError("export writes Llama-family models (SmolLM2) in transformers' layout; this is a "
                          f"{type(model).__name__}")
    return model


def export_model(model, tok: Tokenizer, out: PathLike) -> Path:
    """A plain (or merged) Llama as a transformers model directory (module docstring)."""
    model, out = _need_llama(model), make_dir(out)
    cfg = model.config
    state = {}
    for name, t in model.state_dict().items():
        module, _, kind = name.rpartition(".")
        if cfg.tie_embeddings and module == "lm_head":
            continue  # tied: transformers re-ties it from tie_word_embeddings
        state[f"{hf_module(module)}.{kind}"] = t.detach().float()
    save_safetensors(state, out / "model.safetensors", {"format": "pt"})
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": cfg.vocab_size,
              "hidden_size": cfg.d_model, "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.n_layer,
              "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_head,
              "max_position_embeddings": cfg.block_size, "rms_norm_eps": cfg.rms_eps, "rope_theta": cfg.rope_theta,
              "tie_word_embeddings": cfg.tie_embeddings, "hidden_act": "silu", "attention_bias": False,
              "mlp_bias": False, "torch_dtype": "float32", "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id,
              "bos_token_id": tok.token_to_id("<|im_start|>")}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    tok.save(out)
    return out


def export_lora(model, out: PathLike, base_model_name_or_path: str = "") -> Path:
    """The LoRA adapter of a Llama (LoRA, not DoRA; no trained biases) in peft's layout (module docstring)."""
    cfg = getattr(model, "peft_config", None)
    if cfg is None or cfg.method != "lora":
        raise ConfigError("export_lora needs a model with LoRA applied (method 'lora'; DoRA and the other methods "
                          "have no peft export here)")
    if cfg.bias != "none":
        raise ConfigError("a LoRA that also trained base biases cannot be exported in peft's layout here")
    _need_llama(model)
    out = make_dir(out)
    tensors, targets = {}, set()
    for name, t in model.state_dict().items():
        m = re.match(r"^(.*)\.lora_(A|B)$", name)
        if m:
            module = hf_module(m.group(1))
            targets.add(module.rsplit(".", 1)[-1])
            tensors[f"base_model.model.{module}.lora_{m.group(2)}.weight"] = t.detach().float().contiguous()
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": cfg.r, "lora_alpha": cfg.alpha,
              "lora_dropout": cfg.dropout, "use_rslora": cfg.rslora, "use_dora": False, "bias": "none",
              "fan_in_fan_out": False, "target_modules": sorted(targets), "inference_mode": True,
              "base_model_name_or_path": base_model_name_or_path,
              "layers_to_transform": cfg.layers if cfg.layers is not None else None}
    save_safetensors(tensors, out / "adapter_model.safetensors", {"format": "pt"})
    atomic_write_text(out / "adapter_config.json", json.dumps(config, indent=2) + "\n")
    return out
