"""`minift fetch` and `minift export`: a real pretrained model brought in once (minift/base/download.py), and a
model or adapter handed on to `transformers` and `peft` (minift/base/export.py)."""

from __future__ import annotations

from pathlib import Path

from minift.errors import ConfigError


def cmd_fetch(args) -> int:
    from minift.base.cache import build_downloaded
    from minift.base.download import DOWNLOADS

    d = build_downloaded(args.name, force=args.force)
    print(f"{DOWNLOADS[args.name].description}: ready in {d}; use it with `--base {args.name}` or "
          f"`minift generate {args.name} --chat \"...\"`")
    return 0


def cmd_export(args) -> int:
    """A run's LoRA adapter in peft's layout, or a model (a base, a full run, a merged run) for transformers."""
    from minift.base.cache import resolve_base
    from minift.base.export import export_lora, export_model
    from minift.files import check_out_dir, prepare_out_dir
    from minift.finetune.load import load_finetuned
    from minift.peft import merge_and_unload, method_of
    from minift.peft.adapters import gpt_of

    adapter_files, model_files = ("adapter_config.json", "adapter_model.safetensors"), (
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    check_out_dir(args.out, model_files + adapter_files, force=args.force)  # before anything is loaded
    source = Path(args.source)
    if (source / "finetune.json").is_file():
        model, tok, config = load_finetuned(source)
        if hasattr(model, "head"):
            raise ConfigError(f"{source} is a classification run; export writes language models only")
        cfg, gpt = method_of(model), gpt_of(model)
        if cfg is not None and not args.merged:
            out = export_lora(gpt, prepare_out_dir(args.out, adapter_files, force=args.force), config.base)
            print(f"wrote {out}/ (adapter_config.json, adapter_model.safetensors): load it with peft's "
                  f"PeftModel.from_pretrained on the base {config.base!r}")
            return 0
        if cfg is not None:
            merge_and_unload(gpt)
    else:
        gpt, tok, _ = resolve_base(args.source)
    out = export_model(gpt, tok, prepare_out_dir(args.out, model_files, force=args.force))
    print(f"wrote {out}/ (config.json, model.safetensors, tokenizer.json, tokenizer_config.json): "
          "transformers' AutoModelForCausalLM.from_pretrained reads it")
    return 0
