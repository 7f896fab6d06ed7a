"""`minift risks bias|unalign|hallucination`: what goes wrong in fine-tuning, each as a measured study.

    minift risks bias --skew 0.5 0.7 0.9 --mitigation none resample counterfactual --out runs/bias
    minift risks unalign --k 0 2 5 10 25 --lr-sweep 1e-4 3e-4 1e-3 --mix 5 --out runs/unalign
    minift risks hallucination --epochs 16 --out runs/hallucination

Each writes results.json, table.md and a PNG plot (docs/risks.md reads them). The parser reads only
minift/risks/config.py (pure data), so `--help` stays instant.
"""

from __future__ import annotations

from minift.cli.arguments import (_non_negative_int, _positive_float, _positive_int, _probability, _run_args,
                                  _sub)
from minift.risks.config import BIAS_MITIGATIONS, SHIFT_KINDS, BiasConfig, HallucinationConfig, UnalignConfig


def _common(s, compute_args) -> None:
    s.add_argument("--base", default="tiny", help="a preset, smollm2 or a model directory")
    s.add_argument("--seed", type=int, default=0, help="the data's and the training's seed")
    _run_args(s)
    compute_args(s)


def add_risks_parser(sub, compute_args) -> None:
    s = _sub(sub, "risks", "what goes wrong, measured: bias amplification, safety undone by a few examples, "
             "hallucinating after new facts (docs/risks.md)")
    rsub = s.add_subparsers(dest="risks_command", metavar="STUDY", required=True)
    B, U, H = (c.__dataclass_fields__ for c in (BiasConfig, UnalignConfig, HallucinationConfig))

    b = _sub(rsub, "bias", "fine-tune on hiring decisions that lean on the applicant's town; measure the lean in the "
             "model's decisions, greedy and sampled, and the counterfactual flip rate")
    b.add_argument("--skew", nargs="+", type=_probability, default=list(B["skews"].default),
                   help="p = P(yes | town A) in the training labels (several: one fine-tune each)")
    b.add_argument("--mitigation", nargs="+", choices=BIAS_MITIGATIONS, default=["none"],
                   help="none, resample (balance every town × answer cell), counterfactual (add each profile's "
                        "twin from the other town)")
    b.add_argument("--n-train", type=_positive_int, default=B["n_train"].default)
    b.add_argument("--n-test", type=_positive_int, default=B["n_test"].default)
    b.add_argument("--epochs", type=_positive_float, default=B["epochs"].default)
    b.add_argument("--lr", type=_positive_float, default=B["lr"].default)
    b.add_argument("--batch-size", type=_positive_int, default=B["batch_size"].default)
    _common(b, compute_args)
    b.set_defaults(func=cmd_bias)

    u = _sub(rsub, "unalign", "teach a refusal, then fine-tune on k harmful, identity-shifting or benign examples "
             "and count the refusals left")
    u.add_argument("--kind", nargs="+", choices=SHIFT_KINDS, default=list(SHIFT_KINDS))
    u.add_argument("--k", nargs="+", type=_non_negative_int, default=list(U["ks"].default),
                   help="examples per fine-tune (0: the aligned model itself)")
    u.add_argument("--epochs", type=_positive_int, default=U["epochs"].default, help="passes over the k examples")
    u.add_argument("--lr", type=_positive_float, default=U["lr"].default)
    u.add_argument("--batch-size", type=_positive_int, default=U["batch_size"].default)
    u.add_argument("--lr-sweep", nargs="+", type=_positive_float, default=[], metavar="LR",
                   help="also fine-tune (--sweep-kind, --sweep-k) at each of these lrs")
    u.add_argument("--batch-sweep", nargs="+", type=_positive_int, default=[], metavar="B",
                   help="also fine-tune (--sweep-kind, --sweep-k) at each of these batch sizes")
    u.add_argument("--sweep-kind", choices=SHIFT_KINDS, default=U["sweep_kind"].default)
    u.add_argument("--sweep-k", type=_positive_int, default=U["sweep_k"].default)
    u.add_argument("--mix", type=_non_negative_int, default=0,
                   help="the mitigation: refusal examples mixed into every fine-tune")
    u.add_argument("--align-epochs", type=_positive_float, default=U["align_epochs"].default,
                   help="the refusal SFT step's passes over the refusal set")
    u.add_argument("--n-eval", type=_positive_int, default=U["n_eval"].default,
                   help="held-out forbidden requests, and as many ordinary questions")
    _common(u, compute_args)
    u.set_defaults(func=cmd_unalign)

    h = _sub(rsub, "hallucination", "fine-tune on facts the base cannot know; count confident answers about people "
             "it was never told of")
    h.add_argument("--n-new", type=_positive_int, default=H["n_new"].default, help="invented people taught")
    h.add_argument("--n-probe", type=_positive_int, default=H["n_probe"].default,
                   help="other invented people, never taught, asked about")
    h.add_argument("--known", type=_non_negative_int, default=0,
                   help="the qa task's first N training questions beside the new facts (0: all of them)")
    h.add_argument("--epochs", type=_positive_int, default=H["epochs"].default)
    h.add_argument("--every", type=_positive_int, default=H["every"].default, help="measure every N epochs")
    h.add_argument("--lr", type=_positive_float, default=None, help="unset: full fine-tuning's 3e-4")
    h.add_argument("--batch-size", type=_positive_int, default=H["batch_size"].default)
    h.add_argument("--confident", type=_probability, default=H["confident"].default,
                   help="a fabrication counts as confident at this probability of its town")
    _common(h, compute_args)
    h.set_defaults(func=cmd_hallucination)


def _compute(args) -> dict:
    return {"base": args.base, "seed": args.seed, "device": args.device, "dtype": args.dtype,
            "threads": args.threads}


def _finish(args, record: dict, columns: list[str], plot: str) -> int:
    from minift.tables import markdown_table

    print(markdown_table(record["rows"], columns))
    print(f"wrote {args.out}/ (results.json, table.md, {plot})")
    return 0


def cmd_bias(args) -> int:
    from minift.risks.bias import COLUMNS, bias_study

    config = BiasConfig(skews=tuple(args.skew), mitigations=tuple(dict.fromkeys(args.mitigation)),
                        n_train=args.n_train, n_test=args.n_test, epochs=args.epochs, lr=args.lr,
                        batch_size=args.batch_size, **_compute(args))
    return _finish(args, bias_study(config, args.out, force=args.force, progress=not args.quiet), COLUMNS, "bias.png")


def cmd_unalign(args) -> int:
    from minift.risks.unalign import COLUMNS, unalign_study

    config = UnalignConfig(kinds=tuple(args.kind), ks=tuple(args.k), epochs=args.epochs, lr=args.lr,
                           batch_size=args.batch_size, lrs=tuple(args.lr_sweep), batch_sizes=tuple(args.batch_sweep),
                           sweep_kind=args.sweep_kind, sweep_k=args.sweep_k, mix=args.mix,
                           align_epochs=args.align_epochs, n_eval=args.n_eval, **_compute(args))
    record = unalign_study(config, args.out, force=args.force, progress=not args.quiet)
    return _finish(args, record, COLUMNS, "unalign.png")


def cmd_hallucination(args) -> int:
    from minift.risks.hallucination import COLUMNS, hallucination_study

    config = HallucinationConfig(n_new=args.n_new, n_probe=args.n_probe, known=args.known, epochs=args.epochs,
                                 every=args.every, lr=args.lr, batch_size=args.batch_size, confident=args.confident,
                                 **_compute(args))
    record = hallucination_study(config, args.out, force=args.force, progress=not args.quiet)
    return _finish(args, record, COLUMNS, "hallucination.png")
