"""`minift continual`: fine-tune on the changing world's updates one after another, and measure what is kept.

    minift continual --base tiny --method full --mitigation none --out runs/cont
    minift continual --method full lora --mitigation none replay ewc l2sp --out runs/sweep     every valid pair,
                                                                 side by side, with the learning-vs-forgetting plot

The parser reads only minift/continual/config.py (pure data), so `--help` stays instant.
"""

from __future__ import annotations

from minift.cli.arguments import _non_negative_float, _positive_float, _positive_int, _run_args, _sub
from minift.continual.config import METHODS, MITIGATIONS, ContinualConfig

D = ContinualConfig.__dataclass_fields__


def add_continual_parser(sub, compute_args) -> None:
    s = _sub(sub, "continual", "fine-tune on a stream of updates to the world, one after another: what is learned, "
             "what is forgotten, with replay / EWC / L2-SP")
    s.add_argument("--base", default="tiny", help="a preset, smollm2 or a model directory")
    s.add_argument("--method", nargs="+", default=["full"], choices=METHODS,
                   help="full: every weight; lora: one adapter through the stream; lora-merge: a new adapter per "
                        "update, merged when learned (several: a sweep)")
    s.add_argument("--mitigation", nargs="+", default=["none"], metavar="{" + ",".join(MITIGATIONS) + "}",
                   help="replay earlier (still true) examples, EWC, L2-SP towards the start, or none; several joined "
                        "by + act together (replay+l2sp); several values: a sweep over every valid "
                        "method × mitigation pair")
    s.add_argument("--updates", type=_positive_int, default=D["n_updates"].default, help="updates in the stream")
    s.add_argument("--facts", type=_positive_int, default=D["facts"].default, help="facts per update")
    s.add_argument("--paraphrases", type=int, choices=range(1, 5), default=D["paraphrases"].default, metavar="1-4",
                   help="documents per fact (default: %(default)s)")
    s.add_argument("--train-on", default="both", choices=("questions", "documents", "both"),
                   help="an update's training questions, its documents as plain text, or both")
    s.add_argument("--epochs", type=_positive_float, default=D["epochs"].default,
                   help="passes over each update's examples")
    s.add_argument("--lr", type=_positive_float, default=None,
                   help="peak lr (unset: 3e-4 for full, the tiny base's; README uses 1e-4 for SmolLM2; LoRA's own "
                        "default for lora and lora-merge)")
    s.add_argument("--batch-size", type=_positive_int, default=D["batch_size"].default)
    s.add_argument("--replay", type=_non_negative_float, default=D["replay"].default,
                   help="replay: the share of each update's examples drawn from earlier updates")
    s.add_argument("--ewc-lambda", type=_non_negative_float, default=D["ewc_lambda"].default, help="EWC's λ")
    s.add_argument("--l2sp-alpha", type=_non_negative_float, default=D["l2sp_alpha"].default, help="L2-SP's α")
    s.add_argument("--seed", type=int, default=0, help="the stream's and the training's seed")
    _run_args(s)
    compute_args(s)
    s.set_defaults(func=cmd_continual)


def configs_of(args) -> list[ContinualConfig]:
    """Every valid (method, mitigation) pair of the arguments; lora-merge with ewc / l2sp is left out of a sweep
    (and refused when asked for alone)."""
    pairs = [(m, g) for m in args.method for g in args.mitigation]
    if len(pairs) > 1:
        pairs = [(m, g) for m, g in pairs if not (m == "lora-merge" and {"ewc", "l2sp"} & set(g.split("+")))]
    return [ContinualConfig(base=args.base, method=m, mitigation=g, n_updates=args.updates, facts=args.facts,
                            paraphrases=args.paraphrases, train_on=args.train_on, epochs=args.epochs, lr=args.lr,
                            batch_size=args.batch_size, replay=args.replay, ewc_lambda=args.ewc_lambda,
                            l2sp_alpha=args.l2sp_alpha, seed=args.seed, threads=args.threads, device=args.device,
                            dtype=args.dtype) for m, g in dict.fromkeys(pairs)]


def cmd_continual(args) -> int:
    configs = configs_of(args)
    if len(configs) == 1:
        from minift.continual.run import continual

        r = continual(configs[0], args.out, force=args.force, progress=not args.quiet)
        for u in r["updates"]:
            print(f"update {u['update'] + 1} ({u['date']}): new {_pct(u['new'])}, earlier {_pct(u['earlier'])}, "
                  f"changed {_pct(u['changed'])} (stale {_pct(u['stale'])}), forgetting {u['forgetting']:+.3f}, "
                  f"{u['train_seconds']:.1f} s")
        print(f"wrote {args.out}/ (updates.jsonl, results.json, curves.png)")
        return 0
    from minift.continual.sweep import COLUMNS, continual_sweep
    from minift.tables import markdown_table

    rows = continual_sweep(configs, args.out, force=args.force, progress=not args.quiet)
    print(markdown_table(rows, COLUMNS))
    print(f"wrote {args.out}/ (table.md, sweep.json, learning_vs_forgetting.png, one directory per variant)")
    return 0


def _pct(x: float) -> str:
    return "—" if x != x else f"{100 * x:.0f}%"
