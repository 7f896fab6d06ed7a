"""`minift align`: preference training from the command line (its options, and what it does).

    minift align --task polite --method dpo --sft-epochs 2 --sft-on both --out runs/polite-dpo
    minift align --base smollm2 --data prefs.jsonl --method simpo --out runs/mine

The parser reads only minift/align/config.py and minift/data/preferences.py (pure data), so `--help` stays instant;
the command imports the alignment stage when it runs.
"""

from __future__ import annotations

from minift.align.config import DEFAULT_LR, PREFERENCE_METHODS, PREFERENCE_SETS, AlignConfig
from minift.cli.arguments import _key_value, _non_negative_float, _positive_float, _positive_int, _sub

D = AlignConfig.__dataclass_fields__


def add_align_parser(sub, compute_args) -> None:
    s = _sub(sub, "align", "align a model with preferences: the DPO family and KTO, from a base or an SFT run "
             "(results.json, preference.jsonl, the adapter or model)")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=PREFERENCE_SETS, help="a built-in preference set (`minift data export NAME` "
                                                                "writes it as JSONL)")
    what.add_argument("--data", help="your JSONL: {prompt, chosen, rejected} per line, or {prompt, completion, "
                                     "label} for kto")
    s.add_argument("--method", default="dpo", choices=PREFERENCE_METHODS, help="the preference loss (docs/alignment.md)")
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
    s.add_argument("--beta", type=_positive_float, default=None, help="β (unset: 0.1; simpo 2.5)")
    s.add_argument("--opt", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="another option of the loss: eps, gamma, lam, alpha, sft_weight, average (repeatable)")
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
    s.add_argument("--template", default="auto", help="prompt layout (auto: chatml for a chat model)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    compute_args(s)
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--force", action="store_true", help="overwrite an existing run directory")
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
        max_new_tokens=args.max_new_tokens, seed=args.seed, device=args.device, dtype=args.dtype,
        threads=args.threads)
    r = align(config, args.out, force=args.force, progress=not args.quiet)
    line = f"{r['method']}: {r['steps']} steps"
    if "pair_accuracy" in r:
        line += f"; held-out pairs ranked right {r['pair_accuracy']:.0%} (margin {r['pair_margin']:+.2f})"
    if "win_rate" in r:
        line += (f"; judged answers {r['judge_reference']:.0%} → {r['judge_policy']:.0%}, win rate over the "
                 f"reference {r['win_rate']:.0%}")
    line += f"; KL {r['kl_policy_answers']:.2f}; answer length {r['length_reference']:.1f} → {r['length_policy']:.1f}"
    print(line)
    print(f"wrote {args.out}/ (results.json, preference.jsonl, metrics.jsonl, "
          + ("adapter.pt" if config.update == "lora" else "model/") + ")")
    return 0
