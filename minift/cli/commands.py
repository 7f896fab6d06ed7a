"""What each `minift` subcommand does, once parser.py has parsed its arguments: `cmd_NAME(args) → exit status`.

Each command is a thin layer over the library (pretrain → base.pretrain, finetune → finetune.finetune, eval →
finetune.evaluate_run, merge → peft.merge_and_unload, generate → GPT.generate or the method's own `generate`,
compare → compare.compare, methods → the PEFT registry, data export → data.export_task) that turns its result into
a few printed lines. `generate` has its own file (generate.py), as have `fetch` and `export` (real_models.py). Imports of the heavy modules (torch and the
model code) happen inside the commands, so `minift --help` starts fast. Errors are raised as `MiniftError`s and
printed as one line by cli.main.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from minift.errors import ConfigError

# method option flags: flag name → the MethodConfig field it sets (the first one the method has)
METHOD_FLAGS = {"rank": ("r", "rank"), "alpha": ("alpha",), "targets": ("targets",), "layers": ("layers",),
                "positions": ("positions",), "n_virtual": ("n_virtual",), "reduction_factor": ("reduction_factor",),
                "quant_type": ("quant_type",), "block_size": ("block_size",), "double_quant": ("double_quant",)}

def cmd_pretrain(args) -> int:
    if args.out is None:
        return _pretrain_cache(args)
    from minift.base.pretrain import pretrain
    from minift.training.distributed import is_main

    model, tok, result = pretrain(args.out, preset=args.preset, max_steps=args.max_steps, resume=args.resume,
                                  force=args.force, device=args.device, seed=args.seed, dtype=args.dtype,
                                  threads=args.threads)
    if not is_main():
        return 0
    print(f"pretrained '{args.preset}' ({model.num_parameters():,} parameters) in {result.elapsed_s:.0f} s: "
          f"{result.steps} steps, best validation loss {result.best_val_loss:.3f}")
    print(f"wrote {args.out}/ (config.json, model.pt, tokenizer.json, metrics.jsonl, loss.png)")
    return 0


def _pretrain_cache(args) -> int:
    """`minift pretrain` without --out: the preset's standard base, into the cache every `--base PRESET` reads."""
    from minift.base.cache import base_dir, build_base
    from minift.files import load_json
    from minift.training import distributed

    if args.max_steps is not None or args.seed != 0 or args.dtype != "auto":
        raise ConfigError("the cache holds each preset's standard base; for other --max-steps, --seed or --dtype, "
                          "pretrain into a directory of your own with --out DIR (and use it with --base DIR)")
    from minift.training.device import pick_device

    distributed.init_from_env(pick_device(args.device))
    rank = distributed.world()[0]  # read before main_first, inside which every rank looks like a single process
    with distributed.main_first():  # under torchrun rank 0 builds the cache, the others then find it built
        was = base_dir(args.preset).is_dir()
        d = build_base(args.preset, device=args.device, force=args.force and rank == 0)
    if rank > 0:
        return 0
    info = load_json(d / "config.json")
    verb = "already cached" if was and not args.force else "pretrained"
    print(f"{verb}: the '{args.preset}' base in {d} ({info.get('steps')} steps, best validation loss "
          f"{info.get('best_val_loss', float('nan')):.3f}); `--base {args.preset}` uses it")
    return 0


def cmd_warmup(args) -> int:
    """Everything the lessons read from the cache, built once: the `quick` and `tiny` bases (and SmolLM2)."""
    import time

    from minift.base.cache import base_dir, build_base, build_downloaded

    t0 = time.perf_counter()
    for preset in ("quick", "tiny"):
        was = base_dir(preset).is_dir()
        d = build_base(preset, device=args.device)
        print(f"{'already cached' if was else 'pretrained'}: the '{preset}' base in {d}")
    if args.smollm2:
        was = base_dir("smollm2").is_dir()
        d = build_downloaded("smollm2")
        print(f"{'already cached' if was else 'fetched'}: SmolLM2-135M-Instruct in {d}")
    print(f"ready in {time.perf_counter() - t0:.0f} s: every lesson (MINIFT_DEMO=1 for workshop mode) starts "
          "without pretraining" + ("" if args.smollm2 else "; lessons 10-11 fetch SmolLM2 on first use "
                                                            "(`minift warmup --smollm2` does it now)"))
    return 0


def method_options(args) -> dict:
    """The method flags given on the command line → method_options; a flag the method does not have is an error
    that lists the flags it does have."""
    from minift.peft import METHODS

    given = {flag: getattr(args, flag) for flag in METHOD_FLAGS if getattr(args, flag) is not None}
    extra = dict(args.opt or [])
    if args.method == "full":
        if given or extra:
            wrong = ", ".join("--" + f.replace("_", "-") for f in given) or "--opt"
            raise ConfigError(f"{wrong}: not an option of full fine-tuning; its only option is --freeze-until K")
        return {}
    if args.method not in METHODS:
        raise ConfigError(f"unknown method {args.method!r}; choose full or one of {', '.join(METHODS)} "
                          "(`minift methods` describes them)")
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
    from minift.finetune.run import FinetuneConfig, finetune

    config = FinetuneConfig(
        base=args.base, task=args.task, data=args.data, method=args.method, method_options=method_options(args),
        freeze_until=args.freeze_until, epochs=args.epochs, max_steps=args.max_steps, lr=args.lr, head_lr=args.head_lr,
        batch_size=args.batch_size, grad_accum=args.grad_accum, warmup=args.warmup, weight_decay=args.weight_decay,
        eval_every=args.eval_every, patience=args.patience, max_len=args.max_len,
        train_on_prompt=args.train_on_prompt, template=args.template, seed=args.seed, device=args.device,
        dtype=args.dtype, threads=args.threads, n_train=args.n_train, n_eval=args.n_eval)
    r = finetune(config, args.out, force=args.force, resume=args.resume, progress=not args.quiet)
    if r is None:  # a torchrun rank other than 0: it trained; rank 0 reports
        return 0
    print(results_summary(r))
    print(f"wrote {args.out}/ (results.json, finetune.json, {r['weights_file']}, metrics.jsonl, loss.png)")
    return 0


def results_summary(r: dict) -> str:
    """A short table of one run: what it trained, how well, what it cost."""
    from minift.finetune.evaluation import headline
    from minift.tables import markdown_table

    row = {"method": r["method"], "task": r["task"], "trainable": r["trainable_params"],
           "trainable %": round(r["trainable_pct"], 3), **headline(r["metrics"]),
           "forgetting Δloss": r["forgetting"]["delta_loss"], "weights MB": round(r["weights_bytes"] / 2**20, 3),
           "steps": r["steps"], "seconds": round(r["wall_seconds"], 1)}
    lines = [markdown_table([row])]
    for name, b in r.get("baselines", {}).items():
        lines.append(f"baseline {name}: accuracy {b['accuracy']:.3f}, macro-F1 {b['macro_f1']:.3f}")
    lines += [f"warning: {w}" for w in r.get("warnings", [])]
    return "\n".join(lines)


def cmd_eval(args) -> int:
    from minift.finetune.load import evaluate_run
    from minift.tables import markdown_table, metrics_rows

    if (args.run_dir is None) == (args.base is None):
        raise ConfigError("give a run directory to score, or --base BASE (with --task or --data) to score a base "
                          "model prompted without fine-tuning")
    if args.base is not None:
        return _eval_prompted(args)
    if args.shots or args.data or args.template != "auto":
        raise ConfigError("--shots, --data and --template go with --base; a run is scored as it was trained")
    metrics = evaluate_run(args.run_dir, task=args.task, n_eval=args.n_eval,
                           allow_changed_data=args.allow_changed_data, allow_other_base=args.allow_other_base)
    print(markdown_table(metrics_rows(metrics)))
    return 0


def _eval_prompted(args) -> int:
    """`minift eval --base B --task T [--shots K]`: the base as it is, prompted (finetune.prompting)."""
    from minift.base.cache import check_base, resolve_base
    from minift.data.task_data import load_task_data
    from minift.finetune.prompting import evaluate_prompted
    from minift.finetune.templates import get_template, resolve_template_name
    from minift.tables import markdown_table, metrics_rows

    if (args.task is None) == (args.data is None):
        raise ConfigError("with --base, give --task NAME or --data FILE: the examples to prompt it with")
    check_base(args.base)
    td = load_task_data(args.task, args.data)
    model, tok, _ = resolve_base(args.base)
    template = get_template(resolve_template_name(args.template, model.config.block_size, tok))
    metrics, samples = evaluate_prompted(model, tok, td, template, shots=args.shots, n_eval=args.n_eval)
    print(f"{args.base} prompted {args.shots}-shot on {td.name}:")
    print(markdown_table(metrics_rows(metrics)))
    for s in samples[:2]:
        print(f"  {s['input'][:70]!r} → {s['prediction'][:70]!r} (reference {s['reference']!r})")
    return 0


def cmd_merge(args) -> int:
    from minift.base.store import MODEL_FILES, save_model_dir
    from minift.errors import OutputExistsError
    from minift.files import check_out_dir, prepare_out_dir
    from minift.finetune.classify import save_head
    from minift.finetune.config import FinetuneConfig
    from minift.finetune.load import load_finetuned, read_run
    from minift.peft import METHODS, merge_and_unload
    from minift.peft.adapters import gpt_of

    run = Path(args.run_dir)
    meta = read_run(run)  # a finished run, or a one-line error
    if (Path(args.out) / "finetune.json").is_file():  # never mix a merged model into a run (its head.pt, model/)
        raise OutputExistsError(f"{args.out} is a fine-tuning run directory; write the merged model elsewhere")
    owned = (*MODEL_FILES, "head.pt")
    check_out_dir(args.out, owned, force=args.force)  # before the expensive part
    method = FinetuneConfig.from_dict(meta["config"]).method
    if method == "full":  # checked before loading anything: fail fast
        raise ConfigError(f"{run} is full fine-tuning: there is no adapter to merge, and {run / 'model'} already "
                          "is a plain model directory")
    if not METHODS[method].mergeable:
        raise ConfigError(f"method {method!r} cannot be merged: {METHODS[method].why_not_mergeable}; "
                          "load the run directory itself (base + adapter) instead")
    targets = METHODS[method].merge_targets
    if targets and args.into is None:
        raise ConfigError(f"a {method} adapter was trained against a quantised base, so say where its update goes: "
                          f"--into {'|'.join(targets)} (`minift merge --help` explains the trade-off)")
    if args.into is not None and args.into not in targets:
        raise ConfigError(f"--into applies to a run whose base was quantised (qlora), not to method {method!r}")
    model, tok, config = load_finetuned(run, allow_other_base=args.allow_other_base)
    out = prepare_out_dir(args.out, owned, force=args.force)
    gpt = gpt_of(model)
    if targets:
        from minift.base.cache import resolve_base
        from minift.peft import merge_qlora

        original = resolve_base(config.base, progress=False)[0].state_dict() if args.into == "original" else None
        merge_qlora(gpt, args.into, original)
    else:
        merge_and_unload(gpt)
    info = {"preset": meta["preset"], "merged_from": run.name, "method": method,
            **({"merged_into": args.into} if targets else {})}
    if meta["kind"] == "instruction":
        info["template"] = config.template  # so `minift generate OUT` applies it by default
    save_model_dir(out, gpt.cpu(), tok, **info)
    if meta["kind"] == "labelled":
        save_head(out / "head.pt", model)
    print(f"merged {config.method} into the base weights: wrote {out}/ (a plain model directory"
          + (", head.pt" if meta["kind"] == "labelled" else "") + ")")
    return 0


def cmd_data_export(args) -> int:
    from minift.data.tasks import TASKS, export_task
    from minift.errors import OutputExistsError

    if Path(args.out).exists() and not args.force:
        raise OutputExistsError(f"{args.out} exists; pass --force to overwrite it")
    if args.name in TASKS:
        n = export_task(args.name, args.out, split=args.split, seed=args.seed)
    elif args.name == "updates":  # the changing world: every split at once (its questions are in each record)
        from minift.data.loaders import export_jsonl
        from minift.data.updates import stream_records, update_stream

        stream = update_stream(args.updates, args.facts, args.paraphrases, seed=args.seed)
        n = export_jsonl(stream_records(stream), args.out)
        print(f"wrote {n} facts of {args.updates} updates to {args.out}")
        return 0
    else:  # a preference set
        from minift.data.loaders import export_jsonl
        from minift.data.preferences import load_preferences

        n = export_jsonl(load_preferences(args.name, args.split, args.seed), args.out)
    print(f"wrote {n} examples of {args.name}/{args.split} to {args.out}")
    return 0


def cmd_data_show(args) -> int:
    """The first n examples of a split laid out as the base's template lays them out, trained tokens in ⟦ ⟧
    (finetune.chat.show_mask), with how many of each example's tokens the loss sees."""
    from minift.base.cache import base_dir, check_base, resolve_base
    from minift.base.presets import PRESETS
    from minift.data.task_data import load_task_data
    from minift.finetune.chat import show_mask
    from minift.finetune.classify import encode_labelled
    from minift.finetune.sft import encode_dataset
    from minift.finetune.templates import get_template, resolve_template_name
    from minift.model.gpt import IGNORE_INDEX

    check_base(args.base)
    if args.base in PRESETS and not base_dir(args.base).is_dir():  # showing data should not start minutes of work
        raise ConfigError(f"the '{args.base}' base is not built yet, and its tokenizer comes with it; build it once "
                          f"with `minift pretrain --preset {args.base}` (minutes), or pass --base smollm2 or a "
                          "model directory")
    td = load_task_data(args.task, args.data, seed=args.seed)
    if args.split not in td.splits:
        raise ConfigError(f"no split {args.split!r}; this data has {', '.join(td.splits)}")
    examples = td.splits[args.split][:args.n]
    model, tok, _ = resolve_base(args.base)
    name = resolve_template_name(args.template, model.config.block_size, tok)
    print(f"{td.name} / {args.split}: {len(td.splits[args.split])} examples; base {args.base}, template {name}")
    if td.kind == "labelled":  # a classifier: no token is a target, the head reads the last real token
        for ex, enc in zip(examples, encode_labelled(tok, examples, td.labels, model.config.block_size)):
            print(f"\n--- {len(enc['input_ids'])} tokens → label {ex['label']!r} (a classification head on the "
                  f"last token; no token is a target)\n{tok.decode(enc['input_ids'])}")
        return 0
    encoded, _ = encode_dataset(tok, examples, get_template(name), model.config.block_size)
    for enc in encoded:
        trained = sum(y != IGNORE_INDEX for y in enc["labels"])
        print(f"\n--- {len(enc['input_ids']) + 1} tokens, {trained} trained" + (" (truncated)" if enc["truncated"]
                                                                               else ""))
        print(show_mask(tok, enc["input_ids"], enc["labels"]))
    return 0


def cmd_compare(args) -> int:
    from minift.align.config import PREFERENCE_SETS

    if args.task in PREFERENCE_SETS:
        from minift.cli.align import cmd_compare_alignment

        return cmd_compare_alignment(args)
    from minift.compare.report import PLOTS
    from minift.compare.run import DEFAULT_METHODS, check_methods, compare

    overrides = {k: getattr(args, k) for k in ("data", "epochs", "max_steps", "batch_size", "n_train", "n_eval",
                                                  "device", "threads") if getattr(args, k) is not None}
    if args.dtype != "auto":
        overrides["dtype"] = args.dtype
    methods = check_methods(args.methods if args.methods is not None else DEFAULT_METHODS)
    rows = compare(args.base, args.task, methods, args.seeds, args.out, force=args.force,
                   progress=not args.quiet, isolate=not args.in_process, **overrides)
    out = Path(args.out)
    print((out / "table.md").read_text(encoding="utf-8"))
    print(f"wrote {out}/ (results.json, table.md, {', '.join(PLOTS)}; {len(rows)} methods)")
    return 0


def cmd_methods(args) -> int:
    """A table of every method: what a run uses when nothing is given, and why."""
    from minift.finetune.config import FULL_FINETUNING_LR
    from minift.peft import METHODS
    from minift.tables import markdown_table

    rows = [{"method": "full", "default lr": FULL_FINETUNING_LR, "key options": "freeze_until (unset: none)",
             "merges": "— (is the model)", "why this lr": "every weight moves: small steps"}]
    for name, cls in METHODS.items():
        defaults = cls()
        rows.append({"method": name, "default lr": cls.default_lr,
                     "key options": ", ".join(f"{k} {getattr(defaults, k)}" for k in cls.key_options) or "—",
                     "merges": "yes" if cls.mergeable else f"no: {cls.why_not_mergeable}",
                     "why this lr": cls.lr_reason})
    print(markdown_table(rows))
    return 0
