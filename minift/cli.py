"""The `minift` command line.

    minift pretrain --out DIR [--preset tiny|quick] [--max-steps N] [--resume] [--force]
    minift finetune --task NAME | --data FILE --out DIR [--base PRESET|DIR] [--method full|lora|...] [options]
    minift eval RUN_DIR [--task NAME]
    minift merge RUN_DIR --out DIR
    minift compare --task NAME --out DIR [--methods full,lora,...] [--seeds N]     (minift/compare.py)
    minift generate DIR --prompt TEXT [--input TEXT] [--template auto|alpaca|plain|none] [--max-new-tokens N] ...
    minift data export NAME --out FILE [--split train]

Every error a user can cause is a `MiniftError`; it is printed as one line (`minift: error: ...`) and the program
exits with status 2, without a traceback (argparse's own usage errors also exit 2). Ctrl-C exits with 130.

Data-parallel training: `torchrun --nproc_per_node 2 -m minift pretrain|finetune ...` (minift/distributed.py).
Rank 0 prints and writes; a rank other than 0 prints only its errors, tagged "(rank r)".
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from . import __version__
from .errors import ConfigError, MiniftError

# method option flags: flag name → the MethodConfig field it sets (the first one the method has)
METHOD_FLAGS = {"rank": ("r", "rank"), "alpha": ("alpha",), "targets": ("targets",), "layers": ("layers",),
                "positions": ("positions",), "n_virtual": ("n_virtual",), "reduction_factor": ("reduction_factor",)}
WHY_NOT_MERGEABLE = {
    "adapter-houlsby": "a bottleneck adapter is a small non-linear network added to the block, not a change of an "
                       "existing weight matrix",
    "prefix": "prefix tuning adds key/value slots to every attention layer, not a change of a weight matrix",
    "prompt": "prompt tuning adds input positions (a soft prompt), not a change of a weight matrix",
    "loreft": "ReFT edits the hidden states at chosen prompt positions only, which no fixed weight change reproduces",
}
WHY_NOT_MERGEABLE["adapter-pfeiffer"] = WHY_NOT_MERGEABLE["adapter-houlsby"]
WHY_NOT_MERGEABLE["direft"] = WHY_NOT_MERGEABLE["loreft"]


def _number(text: str, kind: type, minimum: float, strict: bool = False):
    """Parse `text` as `kind` (int or float) and require ≥ minimum (> minimum with strict); argparse turns the
    ArgumentTypeError into a one-line usage error."""
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum or (strict and value == minimum):
        raise argparse.ArgumentTypeError(f"expected a number {'>' if strict else '≥'} {minimum}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, 1)


def _non_negative_int(text: str) -> int:
    return _number(text, int, 0)


def _non_negative_float(text: str) -> float:
    return _number(text, float, 0)


def _positive_float(text: str) -> float:
    return _number(text, float, 0, strict=True)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected block indices separated by commas, e.g. 0,1, got {text!r}") \
            from None


def _key_value(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. dropout=0.1, got {text!r}")
    try:
        return key, json.loads(raw)  # numbers, true/false, lists; anything else is a string
    except json.JSONDecodeError:
        return key, raw


# -- subcommands -----------------------------------------------------------------------------------------------

def cmd_pretrain(args) -> int:
    from .base import pretrain
    from .distributed import is_main

    model, tok, result = pretrain(args.out, preset=args.preset, max_steps=args.max_steps, resume=args.resume,
                                  force=args.force, device=args.device, seed=args.seed)
    if not is_main():
        return 0
    print(f"pretrained '{args.preset}' ({model.num_parameters():,} parameters) in {result.elapsed_s:.0f} s: "
          f"{result.steps} steps, best validation loss {result.best_val_loss:.3f}")
    print(f"wrote {args.out}/ (config.json, model.pt, tokenizer.json, metrics.jsonl, loss.png)")
    return 0


def method_options(args) -> dict:
    """The method flags given on the command line → method_options; a flag the method does not have is an error
    that lists the flags it does have."""
    from .peft import METHODS

    given = {flag: getattr(args, flag) for flag in METHOD_FLAGS if getattr(args, flag) is not None}
    extra = dict(args.opt or [])
    if args.method == "full":
        if given or extra:
            wrong = ", ".join("--" + f.replace("_", "-") for f in given) or "--opt"
            raise ConfigError(f"{wrong}: not an option of full fine-tuning; its only option is --freeze-until K")
        return {}
    if args.freeze_until is not None:
        raise ConfigError(f"--freeze-until applies to full fine-tuning only, not to method {args.method!r}")
    known = {f.name for f in fields(METHODS[args.method])}
    usable = {flag: next(n for n in names if n in known) for flag, names in METHOD_FLAGS.items()
              if any(n in known for n in names)}
    wrong = [flag for flag in given if flag not in usable]
    if wrong:
        flags = ", ".join("--" + f.replace("_", "-") for f in usable) or "none"
        raise ConfigError(f"{', '.join('--' + f.replace('_', '-') for f in wrong)} does not apply to method "
                          f"{args.method!r}; its options are {flags} "
                          f"(and --opt KEY=VALUE for any of {', '.join(sorted(known))})")
    options = {usable[flag]: value for flag, value in given.items()}
    if "targets" in options:
        t = options["targets"]
        options["targets"] = t if t == "all-linear" else [x.strip() for x in t.split(",") if x.strip()]
    return {**options, **extra}


def cmd_finetune(args) -> int:
    from .finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        base=args.base, task=args.task, data=args.data, method=args.method, method_options=method_options(args),
        freeze_until=args.freeze_until, epochs=args.epochs, max_steps=args.max_steps, lr=args.lr, head_lr=args.head_lr,
        batch_size=args.batch_size, grad_accum=args.grad_accum, warmup=args.warmup, weight_decay=args.weight_decay,
        eval_every=args.eval_every, patience=args.patience, max_len=args.max_len,
        train_on_prompt=args.train_on_prompt, template=args.template, seed=args.seed, device=args.device,
        n_train=args.n_train, n_eval=args.n_eval)
    r = finetune(config, args.out, force=args.force, resume=args.resume, progress=not args.quiet)
    if r is None:  # a torchrun rank other than 0: it trained; rank 0 reports
        return 0
    print(results_summary(r))
    print(f"wrote {args.out}/ (results.json, finetune.json, {r['weights_file']}, metrics.jsonl, loss.png)")
    return 0


def results_summary(r: dict) -> str:
    """A short table of one run: what it trained, how well, what it cost."""
    from .runs import headline, markdown_table

    row = {"method": r["method"], "task": r["task"], "trainable": r["trainable_params"],
           "trainable %": round(r["trainable_pct"], 3), **headline(r["kind"], r["metrics"]),
           "forgetting Δloss": r["forgetting"]["delta_loss"], "weights MB": round(r["weights_bytes"] / 2**20, 3),
           "steps": r["steps"], "seconds": round(r["wall_seconds"], 1)}
    lines = [markdown_table([row])]
    for name, b in r.get("baselines", {}).items():
        lines.append(f"baseline {name}: accuracy {b['accuracy']:.3f}, macro-F1 {b['macro_f1']:.3f}")
    return "\n".join(lines)


def cmd_eval(args) -> int:
    from .finetune import evaluate_run
    from .runs import markdown_table, metrics_rows

    metrics = evaluate_run(args.run_dir, task=args.task, n_eval=args.n_eval)
    print(markdown_table(metrics_rows(metrics)))
    return 0


def cmd_merge(args) -> int:
    from .base import save_model_dir
    from .finetune import FinetuneConfig, load_finetuned
    from .peft import merge_and_unload
    from .peft.adapters import gpt_of
    from .finetune import save_head
    from .utils import load_json, prepare_out_dir

    run = Path(args.run_dir)
    if not (run / "finetune.json").is_file():
        load_finetuned(run)  # raises the "not a run directory" error
    meta = load_json(run / "finetune.json")
    method = FinetuneConfig.from_dict(meta["config"]).method
    if method == "full":  # checked before loading anything: fail fast
        raise ConfigError(f"{run} is full fine-tuning: there is no adapter to merge, and {run / 'model'} already "
                          "is a plain model directory")
    if method in WHY_NOT_MERGEABLE:
        raise ConfigError(f"method {method!r} cannot be merged: {WHY_NOT_MERGEABLE[method]}; "
                          "load the run directory itself (base + adapter) instead")
    model, tok, config = load_finetuned(run)
    out = prepare_out_dir(args.out, force=args.force, markers=("config.json", "model.pt"))
    gpt = gpt_of(model)
    merge_and_unload(gpt)
    info = {"preset": meta["preset"], "merged_from": run.name, "method": method}
    if meta["kind"] == "instruction":
        info["template"] = config.template  # so `minift generate OUT` applies it by default
    save_model_dir(out, gpt.cpu(), tok, **info)
    if meta["kind"] == "labelled":
        save_head(out / "head.pt", model)
    print(f"merged {config.method} into the base weights: wrote {out}/ (a plain model directory"
          + (", head.pt" if meta["kind"] == "labelled" else "") + ")")
    return 0


def cmd_generate(args) -> int:
    import torch

    from .base import load_model_dir
    from .utils import load_json

    path = Path(args.model_dir)
    if (path / "finetune.json").is_file():
        from .finetune import load_finetuned

        model, tok, config = load_finetuned(path)
        run_template = None if load_json(path / "finetune.json")["kind"] == "labelled" else config.template
    else:
        model, tok = load_model_dir(path)
        run_template = load_json(path / "config.json").get("template")
        if (path / "head.pt").is_file():  # a merged classification run
            from .finetune import load_head

            model = load_head(path / "head.pt", model)
    if hasattr(model, "head"):  # a classification run: report the class instead of generating
        from .runs import context_reserve

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

    from .peft import reft
    from .runs import context_reserve
    from .sft import get_template

    template = None if template_name is None else get_template(template_name)
    text = args.prompt if template is None else template.format_prompt(args.prompt, args.input or "")
    ids = tok.encode(text)
    if not ids:
        raise ConfigError("the prompt is empty; give some text with --prompt")
    reserve = context_reserve(model)
    uses_reft = any(hasattr(b, "reft") for b in model.blocks)
    if reserve or uses_reft:  # a soft prompt takes P positions; ReFT's prompt positions must not slide away
        keep = model.config.block_size - reserve - args.max_new_tokens
        if keep < 1:
            raise ConfigError(f"--max-new-tokens {args.max_new_tokens} leaves no room for the prompt in the context "
                              f"of {model.config.block_size} tokens" + (f" ({reserve} taken by the soft prompt)"
                                                                         if reserve else ""))
        ids = ids[-keep:]
    g = torch.Generator().manual_seed(args.seed)
    kwargs = dict(temperature=args.temperature, top_k=args.top_k, eos_id=tok.eos_id, generator=g)
    idx = torch.tensor([ids])
    out = reft.generate(model, idx, args.max_new_tokens, **kwargs) if uses_reft else \
        model.generate(idx, args.max_new_tokens, **kwargs)
    # with a template, show the response only; a plain prompt is shown with its continuation
    if template is not None:
        print(template.strip_response(tok.decode(out[0, len(ids):].tolist())))
    else:
        print(tok.decode(out[0].tolist()))
    return 0


def cmd_data_export(args) -> int:
    from .errors import OutputExistsError
    from .tasks import export_task

    if Path(args.out).exists() and not args.force:
        raise OutputExistsError(f"{args.out} exists; pass --force to overwrite it")
    n = export_task(args.name, args.out, split=args.split, seed=args.seed)
    print(f"wrote {n} examples of {args.name}/{args.split} to {args.out}")
    return 0


# -- the parser ------------------------------------------------------------------------------------------------

class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after an option's help, except where there is no default worth showing (None, off)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _sub(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, formatter_class=_Formatter)


def _finetune_parser(sub) -> None:
    from .finetune import METHOD_DEFAULTS
    from .peft import METHODS
    from .sft import TEMPLATES
    from .tasks import TASKS

    s = _sub(sub, "finetune", "fine-tune a base model on a task, with full fine-tuning or a PEFT method")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=list(TASKS), help="a built-in task")
    what.add_argument("--data", help="your own JSONL/CSV: {text, label} → classification, "
                                     "{instruction, input, output} → instruction tuning")
    s.add_argument("--base", default="tiny", help="a preset (tiny, quick) or a model directory")
    s.add_argument("--method", default="full", choices=["full", *METHODS], help="what to train")
    s.add_argument("--out", required=True, help="run directory")
    steps = s.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=_positive_float, default=None, help="passes over the training set "
                                                                            "(3 when --max-steps is not given either)")
    steps.add_argument("--max-steps", type=_positive_int, default=None, help="optimizer steps")
    s.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (unset: the method's "
                                                                    "default, minift.finetune.METHOD_DEFAULTS)")
    s.add_argument("--head-lr", type=_positive_float, default=None, help="classification head's peak learning "
                                                                         "rate (unset: the same as --lr)")
    s.add_argument("--batch-size", type=_positive_int, default=16, help="examples per micro-batch")
    s.add_argument("--grad-accum", type=_positive_int, default=1, help="micro-batches per optimizer step")
    s.add_argument("--warmup", type=_non_negative_int, default=None, help="warmup steps (unset: 5%% of the steps)")
    s.add_argument("--weight-decay", type=_non_negative_float, default=0.0, help="AdamW's decoupled decay λ")
    s.add_argument("--eval-every", type=_positive_int, default=None, help="steps between validations "
                                                                          "(unset: about 10 per run)")
    s.add_argument("--patience", type=_positive_int, default=None, help="stop after this many validations "
                                                                        "without improvement")
    s.add_argument("--max-len", type=_positive_int, default=None, help="tokens per example (unset: the context)")
    s.add_argument("--n-train", type=_positive_int, default=None, help="train on a random subset of this size")
    s.add_argument("--n-eval", type=_positive_int, default=None, help="score only this many test examples")
    s.add_argument("--train-on-prompt", action="store_true", help="instruction tasks: also train on prompt tokens")
    s.add_argument("--template", default="auto", choices=["auto", *TEMPLATES],
                   help="instruction prompt layout; auto: alpaca for a context of ≥ 256 tokens, else plain")
    s.add_argument("--seed", type=int, default=0, help="data order, initialisation, subsets")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    m = s.add_argument_group("method options (each applies to some methods only)")
    m.add_argument("--freeze-until", type=_non_negative_int, default=None,
                   help="full: train only the last K blocks (and the final LayerNorm)")
    lora, reft_ = METHOD_DEFAULTS["lora"]["options"], METHOD_DEFAULTS["loreft"]["options"]
    m.add_argument("--rank", type=_positive_int, default=None,
                   help=f"lora, dora: r ({lora['r']} if unset); loreft, direft: rank ({reft_['rank']})")
    m.add_argument("--alpha", type=_positive_float, default=None,
                   help=f"lora, dora: α, scale α/r ({lora['alpha']} if unset)")
    m.add_argument("--targets", default=None, help="lora, dora, ia3: module names, e.g. attn.q,attn.v, or all-linear")
    m.add_argument("--layers", type=_int_list, default=None, help="block indices, e.g. 0,1 (unset: all)")
    m.add_argument("--positions", default=None, help="loreft, direft: prompt positions, e.g. f3+l3, f5, l1")
    m.add_argument("--n-virtual", type=_positive_int, default=None,
                   help=f"prefix, prompt: virtual tokens ({METHOD_DEFAULTS['prompt']['options']['n_virtual']} "
                        "if unset)")
    m.add_argument("--reduction-factor", type=_positive_int, default=None, help="adapters: bottleneck d/factor "
                                                                                "(16 if unset)")
    m.add_argument("--opt", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="any other method option, e.g. --opt dropout=0.1 --opt rslora=true (repeatable)")
    s.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_finetune)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minift", description="Fine-tuning from scratch in plain PyTorch.",
                                formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"minift {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = _sub(sub, "pretrain", "pretrain a base model on the built-in corpus")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--preset", default="tiny", choices=["tiny", "quick"], help="model size and recipe")
    s.add_argument("--max-steps", type=_positive_int, default=None, help="override the preset's number of steps")
    s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    s.add_argument("--force", action="store_true", help="overwrite an existing output directory")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    s.add_argument("--seed", type=int, default=0, help="corpus, tokenizer and initialisation")
    s.set_defaults(func=cmd_pretrain)

    _finetune_parser(sub)

    from .compare import add_compare_command

    add_compare_command(sub)

    s = _sub(sub, "eval", "score a fine-tuning run on its task's test split (or on another task)")
    s.add_argument("run_dir", help="a run directory (from `minift finetune`)")
    s.add_argument("--task", default=None, help="a built-in task of the same kind (default: the run's own)")
    s.add_argument("--n-eval", type=_positive_int, default=None, help="score only this many examples per split")
    s.set_defaults(func=cmd_eval)

    s = _sub(sub, "merge", "fold a LoRA / DoRA / (IA)³ run into the base weights: a plain model directory")
    s.add_argument("run_dir", help="a run directory (from `minift finetune --method lora|dora|ia3`)")
    s.add_argument("--out", required=True, help="output model directory")
    s.add_argument("--force", action="store_true", help="overwrite an existing output directory")
    s.set_defaults(func=cmd_merge)

    s = _sub(sub, "generate", "continue a prompt with a model directory or a fine-tuning run")
    s.add_argument("model_dir", help="a model directory (from `minift pretrain` / `minift merge`) or a run directory")
    s.add_argument("--prompt", required=True, help="the text, or the instruction when a template is used")
    s.add_argument("--input", default=None, help="the instruction's input (templates only)")
    s.add_argument("--template", default="auto", choices=["auto", "alpaca", "plain", "none"],
                   help="auto: the run's template for instruction runs, none for plain models")
    s.add_argument("--max-new-tokens", type=_positive_int, default=60, help="tokens to generate at most")
    s.add_argument("--temperature", type=_non_negative_float, default=0.8, help="0 = greedy")
    s.add_argument("--top-k", type=_positive_int, default=None, help="sample among the k most likely tokens only")
    s.add_argument("--seed", type=int, default=0, help="sampling")
    s.set_defaults(func=cmd_generate)

    s = _sub(sub, "data", "the built-in task data sets")
    data_sub = s.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    e = _sub(data_sub, "export", "write one split of a built-in task as JSONL")
    e.add_argument("name", help="task name (sentiment, qa, json, style)")
    e.add_argument("--out", required=True, help="output .jsonl file")
    e.add_argument("--split", default="train", help="train, val, test (qa also heldout)")
    e.add_argument("--seed", type=int, default=0, help="the task generator's seed")
    e.add_argument("--force", action="store_true", help="overwrite an existing file")
    e.set_defaults(func=cmd_data_export)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from . import distributed

    try:
        return args.func(args)
    except MiniftError as e:
        print(f"minift: error: {distributed.rank_tag()}{e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minift: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.cleanup()  # under torchrun: leave the process group (no-op otherwise)


if __name__ == "__main__":
    sys.exit(main())
