"""Handing a model to the Hugging Face ecosystem: a model as a `transformers` model directory, and its LoRA adapter
in `peft`'s layout. A Llama-family model (SmolLM2) becomes a `LlamaForCausalLM`; minift's GPT (the tiny bases, or
a GPT-2 read from its files) becomes a `GPT2LMHeadModel`, which has the same architecture.

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

    minift name (GPT)                    HF name (GPT-2)                     what changes
    tok_emb / pos_emb / ln_f             transformer.wte / wpe / ln_f
    blocks.{i}.ln1 / ln2                 transformer.h.{i}.ln_1 / ln_2
    blocks.{i}.attn.q, k, v              transformer.h.{i}.attn.c_attn       stacked (3d × d), then transposed
    blocks.{i}.attn.o                    transformer.h.{i}.attn.c_proj       transposed
    blocks.{i}.mlp.fc / proj             transformer.h.{i}.mlp.c_fc / c_proj transposed

GPT-2's `Conv1D` stores (in, out), the transpose of `nn.Linear`; a minift GPT built without biases gets zero biases
(GPT-2 always has them). LoRA on the fused c_attn: LoRA's on q, k and v (rank r each) are one LoRA of rank n·r on
the stack, with A stacked and B block-diagonal,

    A_f = [A_q; A_v]  (2r × d)      B_f = [[B_q, 0], [0, 0], [0, B_v]]  (3d × 2r)      B_f A_f = [B_q A_q; 0; B_v A_v]

(here for q and v), and α_f = n·α so that α_f / (n·r) = α / r (√n·α with rsLoRA); `rank_pattern` and
`alpha_pattern` tell peft that c_attn's rank differs.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from minift.base.safetensors import save_safetensors
from minift.errors import ConfigError
from minift.files import PathLike, atomic_write_text, make_dir
from minift.model.gpt import GPT
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


_GPT2 = {"attn.o": "attn.c_proj", "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}  # + q, k, v → attn.c_attn
GPT2_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new"}


def export_model(model, tok: Tokenizer, out: PathLike) -> Path:
    """A plain (or merged) model as a transformers model directory (module docstring)."""
    if isinstance(model, Llama):
        state, config = _llama(model, tok)
    elif isinstance(model, GPT):
        state, config = _gpt2(model, tok)
    else:
        raise ConfigError(f"export writes minift's GPT and Llama models; this is a {type(model).__name__}")
    out = make_dir(out)
    save_safetensors(state, out / "model.safetensors", {"format": "pt"})
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    tok.save(out)
    return out


def _gpt2(model: GPT, tok: Tokenizer) -> tuple[dict, dict]:
    """(HF GPT-2 state dict, GPT2LMHeadModel config) of a minift GPT (the table in the module docstring)."""
    cfg, sd, d = model.config, model.state_dict(), model.config.d_model

    def w(name):
        return sd[name].detach().float()

    def bias(name, n):  # a model built with bias=False: GPT-2's biases are zero
        return w(name) if name in sd else torch.zeros(n)

    state = {"transformer.wte.weight": w("tok_emb.weight"), "transformer.wpe.weight": w("pos_emb.weight"),
             "transformer.ln_f.weight": w("ln_f.weight"), "transformer.ln_f.bias": bias("ln_f.bias", d)}
    for i in range(cfg.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        state[theirs + "attn.c_attn.weight"] = torch.cat([w(ours + f"attn.{n}.weight") for n in "qkv"]).T.contiguous()
        state[theirs + "attn.c_attn.bias"] = torch.cat([bias(ours + f"attn.{n}.bias", d) for n in "qkv"])
        for mine, hf in _GPT2.items():
            weight = w(ours + mine + ".weight")
            state[theirs + hf + ".weight"] = weight.T.contiguous()
            state[theirs + hf + ".bias"] = bias(ours + mine + ".bias", weight.shape[0])
        for mine, hf in (("ln1", "ln_1"), ("ln2", "ln_2")):
            state[theirs + hf + ".weight"] = w(ours + mine + ".weight")
            state[theirs + hf + ".bias"] = bias(ours + mine + ".bias", d)
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
              "n_positions": cfg.block_size, "n_ctx": cfg.block_size, "n_embd": d, "n_layer": cfg.n_layer,
              "n_head": cfg.n_head, "n_inner": None, "activation_function": GPT2_ACTIVATION[cfg.activation],
              "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
              "scale_attn_weights": True, "tie_word_embeddings": True, "torch_dtype": "float32",
              "bos_token_id": tok.eos_id, "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id}
    return state, config


def _llama(model: Llama, tok: Tokenizer) -> tuple[dict, dict]:
    """(HF Llama state dict, LlamaForCausalLM config) of a minift Llama."""
    cfg = model.config
    state = {}
    for name, t in model.state_dict().items():
        module, _, kind = name.rpartition(".")
        if cfg.tie_embeddings and module == "lm_head":
            continue  # tied: transformers re-ties it from tie_word_embeddings
        state[f"{hf_module(module)}.{kind}"] = t.detach().float()
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": cfg.vocab_size,
              "hidden_size": cfg.d_model, "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.n_layer,
              "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_head,
              "max_position_embeddings": cfg.block_size, "rms_norm_eps": cfg.rms_eps, "rope_theta": cfg.rope_theta,
              "tie_word_embeddings": cfg.tie_embeddings, "hidden_act": "silu", "attention_bias": False,
              "mlp_bias": False, "torch_dtype": "float32", "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id,
              "bos_token_id": tok.token_to_id("<|im_start|>")}
    return state, config


def export_lora(model, out: PathLike, base_model_name_or_path: str = "") -> Path:
    """The LoRA adapter of a Llama or a GPT (LoRA, not DoRA; no trained biases) in peft's layout (module
    docstring)."""
    cfg = getattr(model, "peft_config", None)
    if cfg is None or cfg.method != "lora":
        raise ConfigError("export_lora needs a model with LoRA applied (method 'lora'; DoRA and the other methods "
                          "have no peft export here)")
    if cfg.bias != "none":
        raise ConfigError("a LoRA that also trained base biases cannot be exported in peft's layout here")
    if not isinstance(model, Llama):
        if not isinstance(model, GPT):
            raise ConfigError(f"export writes minift's GPT and Llama models; this is a {type(model).__name__}")
        return _export_gpt2_lora(model, cfg, out, base_model_name_or_path)
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


def _export_gpt2_lora(model: GPT, cfg, out: PathLike, base_model_name_or_path: str) -> Path:
    """A GPT's LoRA in peft's layout for GPT2LMHeadModel: q, k, v fused into c_attn (module docstring)."""
    sd = model.state_dict()
    found: dict[int, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
    for name in sd:
        m = re.match(r"^blocks\.(\d+)\.(attn\.[qkvo]|mlp\.fc|mlp\.proj)\.lora_A$", name)
        if m:
            a, b = sd[name].detach().float(), sd[name.removesuffix("lora_A") + "lora_B"].detach().float()
            found.setdefault(int(m.group(1)), {})[m.group(2)] = (a, b)
    if not found:
        raise ConfigError("this GPT has no LoRA on a linear layer of its blocks: nothing to export")
    kinds = {frozenset(v) for v in found.values()}
    if len(kinds) > 1:
        raise ConfigError("the LoRA targets differ from layer to layer; peft's layout for GPT-2 needs the same "
                          "targets in every chosen layer")
    chosen = sorted(next(iter(kinds)))
    fused = [t for t in ("attn.q", "attn.k", "attn.v") if t in chosen]
    d, r = model.config.d_model, cfg.r
    tensors = {}
    for i, layer in found.items():
        prefix = f"base_model.model.transformer.h.{i}."
        for t in chosen:
            if t in _GPT2:
                a, b = layer[t]
                tensors[prefix + _GPT2[t] + ".lora_A.weight"] = a.contiguous()
                tensors[prefix + _GPT2[t] + ".lora_B.weight"] = b.contiguous()
        if fused:
            a_f = torch.cat([layer[t][0] for t in fused])                     # (n·r, d)
            b_f = torch.zeros(3 * d, len(fused) * r)                          # (3d, n·r), block-diagonal
            for k, t in enumerate(fused):
                row = ("attn.q", "attn.k", "attn.v").index(t)
                b_f[row * d:(row + 1) * d, k * r:(k + 1) * r] = layer[t][1]
            tensors[prefix + "attn.c_attn.lora_A.weight"] = a_f
            tensors[prefix + "attn.c_attn.lora_B.weight"] = b_f
    modules = sorted({"attn.c_attn" if t in fused else _GPT2[t] for t in chosen})
    layers = "|".join(str(i) for i in sorted(found))
    n = len(fused)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": cfg.alpha,
              "lora_dropout": cfg.dropout, "use_rslora": cfg.rslora, "use_dora": False, "bias": "none",
              "fan_in_fan_out": True,  # GPT-2's Conv1D stores (in, out)
              "target_modules": rf"transformer\.h\.({layers})\.({'|'.join(re.escape(m) for m in modules)})",
              "rank_pattern": {"attn.c_attn": n * r} if n else {},
              "alpha_pattern": {"attn.c_attn": cfg.alpha * (math.sqrt(n) if cfg.rslora else n)} if n else {},
              "inference_mode": True, "base_model_name_or_path": base_model_name_or_path}
    out = make_dir(out)
    save_safetensors(tensors, out / "adapter_model.safetensors", {"format": "pt"})
    atomic_write_text(out / "adapter_config.json", json.dumps(config, indent=2) + "\n")
    return out
