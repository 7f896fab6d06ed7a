"""`minift align`: preference training from the command line (its options, and what it does).

    minift align --task polite --method dpo --sft-epochs 2 --sft-on both --out runs/polite-dpo
    minift align --base smollm2 --data prefs.jsonl --method simpo --out runs/mine

The parser reads only minift/align/config.py and minift/data/preferences.py (pure data), so `--help` stays instant;
the command imports the alignment stage when it runs.
"""

from __future__ import annotations

from pathlib import Path

from minift.align.config import ALIGN_METHODS, DEFAULT_LR, PREFERENCE_SETS, RL_TASKS, AlignConfig
from minift.errors import ConfigError
from minift.cli.arguments import _key_value, _non_negative_float, _positive_float, _positive_int, _sub

D = AlignConfig.__dataclass_fields__


def add_align_parser(sub, compute_args) -> None:
    s = _sub(sub, "align", "align a model with preferences: the DPO family, KTO, or GRPO / RLOO with rule rewards, "
             "from a base or an SFT run")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=PREFERENCE_SETS + RL_TASKS,
                      help="a built-in preference set (`minift data export NAME` writes it as JSONL), or json for "
                           "grpo / rloo (a post's sentiment and topic as strict JSON, checked by rule)")
    what.add_argument("--data", help="your JSONL: {prompt, chosen, rejected} per line, or {prompt, completion, "
                                     "label} for kto")
    s.add_argument("--method", default="dpo", choices=ALIGN_METHODS,
                   help="a preference loss, or grpo / rloo: sample, reward by the set's rule (docs/alignment.md)")
    s.add_argument("--base", default="tiny", help="a preset or a model directory: the policy to start from")
    s.add_argument("--from", dest="from_run", default=None,
                   help="start from a finished fine-tuning run instead (full, or LoRA / DoRA / (IA)³, merged first)")
    s.add_argument("--update", default="lora", choices=("lora", "full"),
                   help="train a new LoRA (the reference is the policy with it switched off) or every weight (the "
                        "reference is a frozen copy)")
    s.add_argument("--sft-epochs", type=_non_negative_float, default=0.0,
                   help="first fine-tune every weight on the answers for this many epochs (the SFT step)")
    s.add_argument("--sft-on", default="chosen", choices=("chosen", "both"),
                   help="the SFT step's answers: the chosen ones, or both answers of each pair")
    s.add_argument("--beta", type=_non_negative_float, default=None,
                   help="β (unset: 0.1; simpo 2.5; grpo / rloo: the KL weight, 0.04)")
    s.add_argument("--opt", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="another option of the method: eps, gamma, lam, alpha, sft_weight, average; for grpo / rloo: "
                        "group, clip_eps, temperature, aggregation, scale_by_std, skip_zero_spread (repeatable)")
    s.add_argument("--lr", type=_positive_float, default=None,
                   help=f"peak learning rate (unset: {DEFAULT_LR['lora']:g} for lora, {DEFAULT_LR['full']:g} for full)")
    steps = s.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=_positive_float, default=D["epochs"].default,
                       help="passes over the pairs (default 1: preference sets overfit fast)")
    steps.add_argument("--max-steps", type=_positive_int, default=None)
    s.add_argument("--batch-size", type=_positive_int, default=D["batch_size"].default, help="pairs per micro-batch")
    s.add_argument("--grad-accum", type=_positive_int, default=1)
    s.add_argument("--precompute-ref", action="store_true",
                   help="compute the reference log-probs once before training (one forward pass fewer per step)")
    s.add_argument("--n-train", type=_positive_int, default=None, help="use only the first n training pairs")
    s.add_argument("--n-eval", type=_positive_int, default=None, help="score only the first n test prompts")
    s.add_argument("--max-new-tokens", type=_positive_int, default=D["max_new_tokens"].default,
                   help="answer length for the win rate")
    s.add_argument("--reward-model", default=None,
                   help="a `minift reward train` run: also judge the answers by its rewards (win rate, mean reward)")
    s.add_argument("--template", default="auto", help="prompt layout (auto: chatml for a chat model)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    compute_args(s)
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    s.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from OUT/last.pt, with the same settings (the SFT step, if any, "
                        "is recomputed: it is deterministic)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_align)


def cmd_align(args) -> int:
    from minift.align.run import align

    options = dict(args.opt or [])
    if args.beta is not None:
        options["beta"] = args.beta
    config = AlignConfig(
        base=args.base, from_run=args.from_run, sft_epochs=args.sft_epochs, sft_on=args.sft_on, task=args.task,
        data=args.data, method=args.method, options=options, update=args.update, lr=args.lr, epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
        precompute_ref=args.precompute_ref, template=args.template, n_train=args.n_train, n_eval=args.n_eval,
        max_new_tokens=args.max_new_tokens, reward_model=args.reward_model, seed=args.seed, device=args.device, dtype=args.dtype,
        threads=args.threads)
    r = align(config, args.out, force=args.force, progress=not args.quiet, resume=args.resume)
    line = f"{r['method']}: {r['steps']} steps"
    if r.get("sanity"):
        line += f" (reward check: good {r['sanity']['good_mean']:.2f} vs bad {r['sanity']['bad_mean']:.2f})"
    if "pair_accuracy" in r:
        line += f"; held-out pairs ranked right {r['pair_accuracy']:.0%} (margin {r['pair_margin']:+.2f})"
    if "win_rate" in r:
        line += (f"; judged answers {r['judge_reference']:.0%} → {r['judge_policy']:.0%}, win rate over the "
                 f"reference {r['win_rate']:.0%}")
    if "rm_win_rate" in r:
        line += f"; by the reward model {r['rm_win_rate']:.0%}"
    line += f"; KL {r['kl_policy_answers']:.2f}; answer length {r['length_reference']:.1f} → {r['length_policy']:.1f}"
    print(line)
    print(f"wrote {args.out}/ (results.json, preference.jsonl, metrics.jsonl, "
          + ("adapter.pt" if config.update == "lora" else "model/") + ")")
    return 0


def add_reward_parser(sub, compute_args) -> None:
    s = _sub(sub, "reward", "train a reward model on preference pairs, or score answers with one")
    rsub = s.add_subparsers(dest="reward_command", metavar="ACTION", required=True)
    t = _sub(rsub, "train", "a scalar head on the model's last real token, Bradley–Terry loss; accuracy on "
                            "held-out pairs")
    what = t.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=PREFERENCE_SETS, help="a built-in preference set")
    what.add_argument("--data", help="your JSONL: {prompt, chosen, rejected} per line")
    t.add_argument("--base", default="tiny", help="a preset or a model directory")
    t.add_argument("--from", dest="from_run", default=None, help="the body of a finished fine-tuning run instead")
    t.add_argument("--update", default="lora", choices=("lora", "full"), help="a LoRA on the body, or every weight")
    t.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (unset: as `minift align`)")
    steps = t.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=_positive_float, default=1.0)
    steps.add_argument("--max-steps", type=_positive_int, default=None)
    t.add_argument("--batch-size", type=_positive_int, default=8, help="pairs per step")
    t.add_argument("--margin", type=_non_negative_float, default=0.0, help="−log σ(r_c − r_r − margin)")
    t.add_argument("--n-train", type=_positive_int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    compute_args(t)
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_reward_train)
    c = _sub(rsub, "score", "the reward of an answer to a prompt")
    c.add_argument("run_dir", help="a `minift reward train` run")
    c.add_argument("--prompt", required=True)
    c.add_argument("--answer", required=True, action="append", help="an answer (repeat to compare several)")
    c.set_defaults(func=cmd_reward_score)


def cmd_reward_train(args) -> int:
    from minift.align.config import RewardConfig
    from minift.align.reward_run import train_reward

    config = RewardConfig(base=args.base, from_run=args.from_run, task=args.task, data=args.data,
                          update=args.update, lr=args.lr, epochs=args.epochs, max_steps=args.max_steps,
                          batch_size=args.batch_size, margin=args.margin, n_train=args.n_train, seed=args.seed,
                          device=args.device, dtype=args.dtype, threads=args.threads)
    r = train_reward(config, args.out, force=args.force, progress=not args.quiet)
    print(f"reward model: {r['steps']} steps; held-out pairs ranked right {r['test']['accuracy']:.1%} "
          f"(mean margin {r['test']['margin']:+.2f}; on training pairs {r['train']['accuracy']:.1%})")
    print(f"wrote {args.out}/")
    return 0


def cmd_reward_score(args) -> int:
    from minift.align.reward_run import load_reward_model, score

    rm, tok, template = load_reward_model(args.run_dir)
    for answer, value in zip(args.answer, score(rm, tok, template, [args.prompt] * len(args.answer), args.answer)):
        print(f"{value:+.3f}  {answer}")
    return 0


def cmd_compare_alignment(args) -> int:
    """`minift compare --task PREFERENCE_SET`: every alignment method side by side (minift/compare/align.py)."""
    from minift.align.config import PREFERENCE_METHODS, AlignConfig
    from minift.compare.align import compare_alignment

    if args.seeds != 1 or args.in_process:
        raise ConfigError("an alignment comparison runs one seed per method, in this process; drop --seeds and "
                          "--in-process")
    config = AlignConfig(base=args.base, task=args.task, sft_epochs=args.sft_epochs, sft_on=args.sft_on,
                         epochs=args.epochs or 1.0, max_steps=args.max_steps, batch_size=args.batch_size or 8,
                         n_train=args.n_train, n_eval=args.n_eval, device=args.device or "auto", dtype=args.dtype,
                         threads=args.threads, reward_model=args.reward_model)
    compare_alignment(config, args.methods or ",".join(PREFERENCE_METHODS), args.out, force=args.force,
                      progress=not args.quiet)
    out = Path(args.out)
    print((out / "table.md").read_text(encoding="utf-8"))
    print(f"wrote {out}/ (results.json, table.md, one run directory per method)")
    return 0
