"""GPT-2 from a Hugging Face model directory: `config.json` + `model.safetensors` (+ `tokenizer.json`, or
`vocab.json` + `merges.txt`), read without `transformers` and without pickle.

    HF name (GPT-2)                              minift name             what changes
    transformer.wte.weight  (V, d)               tok_emb.weight          (the LM head is tied to it)
    transformer.wpe.weight  (T, d)               pos_emb.weight
    transformer.h.{i}.ln_1.weight / .bias        blocks.{i}.ln1.*
    transformer.h.{i}.attn.c_attn.weight (d, 3d) blocks.{i}.attn.q/k/v   transposed, then split in three along out
    transformer.h.{i}.attn.c_proj.weight (d, d)  blocks.{i}.attn.o       transposed
    transformer.h.{i}.ln_2.*                     blocks.{i}.ln2.*
    transformer.h.{i}.mlp.c_fc.weight (d, 4d)    blocks.{i}.mlp.fc       transposed
    transformer.h.{i}.mlp.c_proj.weight (4d, d)  blocks.{i}.mlp.proj     transposed
    transformer.ln_f.*                           ln_f.*

GPT-2's linear layers are `Conv1D` modules that store their weight as (in, out), the transpose of `nn.Linear`'s;
`c_attn` computes q, k and v in one product. GPT-2 uses GELU with the tanh approximation ("gelu_new"), a config
option of minift's GPT. `attn.bias` / `attn.masked_bias` buffers some files carry are causal masks, not weights:
skipped. A `pytorch_model.bin` (a pickle, which can run code when loaded) is refused, with how to convert it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer as Backend
from tokenizers import AddedToken, decoders, models, pre_tokenizers

from minift.base.safetensors import load_safetensors
from minift.errors import CheckpointError, MissingFileError
from minift.files import PathLike, load_json
from minift.model.gpt import GPT, GPTConfig
from minift.model.tokenizer import Tokenizer

ACTIVATION = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def is_hf_gpt2(path: PathLike) -> bool:
    """A directory whose config.json says it is a Hugging Face GPT-2."""
    config = Path(path) / "config.json"
    try:
        return config.is_file() and load_json(config).get("model_type") == "gpt2"
    except Exception:  # an unreadable config is reported by whichever loader reads it
        return False


def config_from_hf(path: Path) -> GPTConfig:
    c = load_json(path / "config.json")
    act = c.get("activation_function", "gelu_new")
    if act not in ACTIVATION:
        raise CheckpointError(f"{path / 'config.json'}: activation {act!r} is not one minift's GPT has "
                              f"({', '.join(ACTIVATION)})")
    try:
        return GPTConfig(vocab_size=int(c["vocab_size"]), block_size=int(c.get("n_positions", c.get("n_ctx"))),
                         n_layer=int(c["n_layer"]), n_head=int(c["n_head"]), d_model=int(c["n_embd"]),
                         dropout=0.0, bias=True, activation=ACTIVATION[act])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / 'config.json'} is not a GPT-2 config (missing or bad {e})") from None


def state_dict_from_hf(weights: dict[str, torch.Tensor], cfg: GPTConfig, path: Path) -> dict[str, torch.Tensor]:
    """HF GPT-2 tensors → minift's GPT state dict (see the module docstring's table)."""
    w = {k.removeprefix("transformer."): v for k, v in weights.items()}
    d = cfg.d_model

    def get(name):
        if name not in w:
            raise CheckpointError(f"{path} lacks the tensor {name!r}: not a complete GPT-2 checkpoint")
        return w[name].float()

    state = {"tok_emb.weight": get("wte.weight"), "pos_emb.weight": get("wpe.weight"),
             "ln_f.weight": get("ln_f.weight"), "ln_f.bias": get("ln_f.bias")}
    for i in range(cfg.n_layer):
        h, b = f"h.{i}.", f"blocks.{i}."
        qkv_w, qkv_b = get(h + "attn.c_attn.weight").T, get(h + "attn.c_attn.bias")  # (3d, d), (3d,)
        for j, name in enumerate(("q", "k", "v")):
            state[b + f"attn.{name}.weight"] = qkv_w[j * d:(j + 1) * d].contiguous()
            state[b + f"attn.{name}.bias"] = qkv_b[j * d:(j + 1) * d].contiguous()
        for theirs, ours in (("attn.c_proj", "attn.o"), ("mlp.c_fc", "mlp.fc"), ("mlp.c_proj", "mlp.proj")):
            state[b + ours + ".weight"] = get(h + theirs + ".weight").T.contiguous()
            state[b + ours + ".bias"] = get(h + theirs + ".bias")
        for theirs, ours in (("ln_1", "ln1"), ("ln_2", "ln2")):
            state[b + ours + ".weight"] = get(h + theirs + ".weight")
            state[b + ours + ".bias"] = get(h + theirs + ".bias")
    state["lm_head.weight"] = state["tok_emb.weight"]
    return state


def tokenizer_from_hf(path: Path) -> Tokenizer:
    """tokenizer.json, or vocab.json + merges.txt; GPT-2's one special token <|endoftext|> ends texts and pads."""
    if (path / "tokenizer.json").is_file():
        try:
            backend = Backend.from_file(str(path / "tokenizer.json"))
        except Exception as e:
            raise CheckpointError(f"{path / 'tokenizer.json'} is not a readable tokenizer ({e})") from None
    elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        backend = Backend(models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt")))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
    else:
        raise MissingFileError(f"{path} has no tokenizer: give tokenizer.json, or vocab.json and merges.txt")
    eos = "<|endoftext|>"
    if backend.token_to_id(eos) is None:
        raise CheckpointError(f"{path}: the tokenizer has no {eos} token, so it is not GPT-2's")
    backend.add_special_tokens([AddedToken(eos, special=True, normalized=False)])
    return Tokenizer(backend, eos_token=eos, pad_token=eos)


def load_hf_gpt2(path: PathLike) -> tuple[GPT, Tokenizer]:
    """(model in eval mode, tokenizer) of a Hugging Face GPT-2 directory; see the module docstring."""
    path = Path(path)
    if not (path / "model.safetensors").is_file():
        if (path / "pytorch_model.bin").is_file():
            raise CheckpointError(f"{path} holds pytorch_model.bin, a pickle that can run code when it is loaded; "
                                  "minift reads model.safetensors only (convert it with the safetensors tools of the "
                                  "library that made it)")
        raise MissingFileError(f"{path} has no model.safetensors")
    cfg = config_from_hf(path)
    model = GPT(cfg)
    state = state_dict_from_hf(load_safetensors(path / "model.safetensors"), cfg, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path / 'model.safetensors'} does not match its config.json: "
                              f"{str(e).strip().splitlines()[0]}") from None
    model.origin = str(path.resolve())
    return model.eval(), tokenizer_from_hf(path)
