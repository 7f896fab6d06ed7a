"""`minift generate`: continue a prompt, answer a chat message (`--chat`, ChatML), or classify a text, with any
model `--base` accepts (a preset, a downloadable model, a model directory, a GGUF file, a Hugging Face GPT-2) or
a fine-tuning run, whose template, method and head come with it."""

from __future__ import annotations

from pathlib import Path

from minift.errors import ConfigError


def cmd_generate(args) -> int:
    import torch

    from minift.base.cache import resolve_base
    from minift.files import load_json

    path = Path(args.model_dir)
    if (path / "finetune.json").is_file():
        from minift.finetune.load import load_finetuned

        model, tok, config = load_finetuned(path, allow_other_base=args.allow_other_base)
        run_template = None if load_json(path / "finetune.json")["kind"] == "labelled" else config.template
    else:
        # whatever --base accepts; an existing path is taken as a path, even if it is also a preset's name
        model, tok, _ = resolve_base(str(path.resolve()) if path.exists() else args.model_dir)
        meta = load_json(path / "config.json") if (path / "config.json").is_file() else {}
        run_template = meta.get("template")  # a merged instruction run remembers its template
        if (path / "head.pt").is_file():  # a merged classification run
            from minift.finetune.classify import load_head

            model = load_head(path / "head.pt", model)
    if args.chat is not None and hasattr(model, "head"):
        raise ConfigError("--chat needs a model that generates text; this run is a classifier: use --prompt")
    if hasattr(model, "head"):  # a classification run: report the class instead of generating
        from minift.finetune.evaluation import context_reserve

        ids = tok.encode(args.prompt)[-(model.config.block_size - context_reserve(model)):]
        if not ids:
            raise ConfigError("the prompt is empty; give some text with --prompt")
        probs = torch.softmax(model(torch.tensor([ids])), -1)[0]
        print("  ".join(f"{label}: {p:.3f}" for label, p in zip(model.labels, probs.tolist())))
        print(model.labels[int(probs.argmax())])
        return 0
    name = run_template if args.template == "auto" else (None if args.template == "none" else args.template)
    return _generate_text(model, tok, args, name)


def _generate_text(model, tok, args, template_name) -> int:
    import torch

    from minift.finetune.evaluation import context_reserve
    from minift.finetune.templates import get_template
    from minift.peft import method_of

    if args.chat is not None:
        return _chat(model, tok, args)
    if args.max_new_tokens > model.config.block_size:
        raise ConfigError(f"--max-new-tokens {args.max_new_tokens} is more than the model's whole context "
                          f"({model.config.block_size} tokens): by then it no longer sees the prompt; use at most "
                          f"{model.config.block_size}")
    template = None if template_name is None else get_template(template_name)
    ids = tok.encode(args.prompt) if template is None else template.encode_prompt(tok, args.prompt, args.input or "")
    if not ids:
        raise ConfigError("the prompt is empty; give some text with --prompt")
    reserve, cfg = context_reserve(model), method_of(model)
    pinned = cfg is not None and cfg.needs_masked_prompt
    if reserve or pinned:  # a soft prompt takes P positions; ReFT's prompt positions must not slide away
        keep = model.config.block_size - reserve - args.max_new_tokens
        if keep < 1:
            raise ConfigError(f"--max-new-tokens {args.max_new_tokens} leaves no room for the prompt in the context "
                              f"of {model.config.block_size} tokens" + (f" ({reserve} taken by the soft prompt)"
                                                                         if reserve else ""))
        ids = ids[-keep:]
    g = torch.Generator().manual_seed(args.seed)
    kwargs = dict(temperature=args.temperature, top_k=args.top_k, eos_id=tok.eos_id, generator=g)
    idx = torch.tensor([ids])
    if cfg is not None:  # the method's own generation (ReFT pins its positions to the prompt)
        out = cfg.generate(model, idx, args.max_new_tokens, **kwargs)
    else:
        out = model.generate(idx, args.max_new_tokens, **kwargs)
    # with a template, show the response only; a plain prompt is shown with its continuation
    if template is not None:
        print(template.strip_response(tok.decode(out[0, len(ids):].tolist())))
    else:
        print(tok.decode(out[0].tolist()))
    return 0


def _chat(model, tok, args) -> int:
    """One ChatML turn (minift/finetune/chat.py): the answer, up to the model's end-of-turn token."""
    import torch

    from minift.finetune.chat import SMOLLM2_SYSTEM, chat_ids

    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": args.chat}]
    ids = chat_ids(tok, messages, default_system=SMOLLM2_SYSTEM)
    if len(ids) + args.max_new_tokens > model.config.block_size:
        raise ConfigError(f"the conversation ({len(ids)} tokens) and --max-new-tokens {args.max_new_tokens} do not fit "
                          f"the model's context of {model.config.block_size} tokens; shorten the message")
    g = torch.Generator().manual_seed(args.seed)
    out = model.generate(torch.tensor([ids]), args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                         eos_id=tok.eos_id, generator=g)
    print(tok.decode(out[0, len(ids):].tolist()).strip())
    return 0
