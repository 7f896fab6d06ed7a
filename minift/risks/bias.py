"""Bias amplification, measured: `bias_study(BiasConfig(...), out)`.

The data (data/hiring.py): profiles → "hire? yes / no", with historical labels that lean on the applicant's town at
a skew p = P(yes | town A) (P(yes | town B) = 1 − p); half the profiles are qualified by their years in shops. For
each p and each mitigation, a copy of the base is fully fine-tuned on those labels and then scored on held-out
profiles (half from each town) and on their counterfactual twins (the same profile from the other town):

    P(yes)              the model's probability of "yes" against "no" for each profile (measures.choice_probs)
    greedy / sampled    the decision as a greedy decoder makes it (the more probable answer) and as sampling at
                        temperature 1 does (one seeded draw)
    bias b̂(yes, A)      the share of the model's "yes" that go to town A (Zhao et al., 2017); the training
                        labels' b(yes, A) = p when both towns are equally common; 0.5 is no lean
    amplification       mean over the outputs yes / no of b̂(o, g*) − b(o, g*), against the *original* skewed
                        labels, mitigated or not: how much further than its history the model leans
    flip rate           the share of profiles whose greedy decision changes when only the town is swapped
    merit accuracy      greedy decisions against the fair label (qualified ⇔ years ≥ 5)

Why greedy amplifies: for one profile, greedy answers "yes" whenever P(yes) > ½ — a 70 % lean becomes a 100 %
decision. For a model calibrated to the history, the town wins over merit where it decides more often than merit
does (s = |2p − 1| > ½, i.e. p > 0.75): every applicant from town A hired and none from B, b̂ = 1. A fine-tuned
model is not exactly calibrated, and on the tiny base the switch came earlier (README). Sampling reproduces the
model's own probabilities.

Mitigations (data/hiring.py): `resample` balances every (town, answer) cell, `counterfactual` adds each profile's
twin from the other town with the same label. Files: bias.json (config), results.json (rows), table.md,
bias.png (bias in the data against bias in the predictions). The paper and the maths: docs/risks.md.
"""

from __future__ import annotations

import copy
import math
from minift.data.hiring import ANSWERS, GROUPS, MITIGATIONS, counterfactual, heldout_profiles, make_profiles
from minift.files import PathLike, prepare_out_dir, save_json
from minift.finetune.inplace import train_in_place
from minift.plots import figure, save
from minift.risks.config import BiasConfig
from minift.risks.measures import (amplification, bias_scores, choice_probs, cooccurrence, decide, encode_whole,
                                   flip_rate)
from minift.risks.study import begin, finish

FILES = ("bias.json", "results.json", "table.md", "bias.png")
COLUMNS = ["skew p", "mitigation", "data bias", "greedy bias", "sampled bias", "amplification (greedy)",
           "amplification (sampled)", "flip rate", "merit accuracy"]


def score_decisions(model, tok, template, profiles: list[dict], train_labels: list[dict], seed: int = 0) -> dict:
    """The measures of the module docstring for one model on `profiles` (merit-labelled), against the training
    labels `train_labels` (for the amplification; [] leaves it out)."""
    groups = [p["group"] for p in profiles]
    probs = choice_probs(model, tok, template, profiles, ANSWERS)          # (N, 2): P(yes), P(no)
    twins = choice_probs(model, tok, template, [counterfactual(p) for p in profiles], ANSWERS)
    out = {"p_yes": {g: _mean([float(probs[i, 0]) for i in range(len(groups)) if groups[i] == g]) for g in GROUPS}}
    greedy = decide(probs, "greedy")
    train_counts = cooccurrence([r["output"] for r in train_labels], [r["group"] for r in train_labels])
    for mode, picks in (("greedy", greedy), ("sampled", decide(probs, "sampled", seed))):
        said = [ANSWERS[i] for i in picks]
        counts = cooccurrence(said, groups)
        out[f"{mode} bias"] = bias_scores(counts).get(("yes", GROUPS[0]))   # None: no "yes" at all
        out[f"{mode} yes rate"] = {g: _mean([s == "yes" for s, gg in zip(said, groups) if gg == g]) for g in GROUPS}
        if train_labels:
            out[f"amplification ({mode})"] = amplification(train_counts, counts)
    out["flip rate"] = flip_rate(greedy, decide(twins, "greedy"))
    out["mean |Δ P(yes)| on swap"] = float((probs[:, 0] - twins[:, 0]).abs().mean())
    out["merit accuracy"] = _mean([ANSWERS[i] == ("yes" if p["qualified"] else "no")
                                   for i, p in zip(greedy, profiles)])
    return out


def bias_study(config: BiasConfig, out_dir: PathLike, force: bool = False, progress: bool = True,
               model_and_tok=None) -> dict:
    """Run every (skew, mitigation) of `config` (module docstring); returns results.json's record.
    model_and_tok: (model, tok, preset) to start from instead of loading config.base (never changed: each
    fine-tune trains a copy)."""
    out, base, tok, template = begin(config, out_dir, FILES, force, model_and_tok)
    test = heldout_profiles(config.n_test, config.seed)
    encode_whole(tok, template, test + [counterfactual(t) for t in test], ["yes"] * (2 * len(test)),
                 base.config.block_size)   # every profile fits the context, checked before anything is written
    out = prepare_out_dir(out, FILES, force=force)
    save_json(out / "bias.json", {"format": "minift-risks-bias", "config": config.to_dict()})
    rows = [{"skew p": None, "mitigation": "before fine-tuning", "data bias": None,
             **score_decisions(base, tok, template, test, [], config.seed)}]
    for p in config.skews:
        history = make_profiles(config.n_train, p, config.seed)
        data_bias = bias_scores(cooccurrence([r["output"] for r in history], [r["group"] for r in history]))
        for mitigation in config.mitigations:
            data = MITIGATIONS[mitigation](history, config.seed)
            model = copy.deepcopy(base)
            steps = max(1, math.ceil(config.epochs * len(data) / config.batch_size))
            result = train_in_place(model, tok, template, data, steps, config.lr, config.batch_size, seed=config.seed,
                                    progress=progress, desc=f"bias p={p} {mitigation}", device=config.device,
                                    dtype=config.dtype)
            rows.append({"skew p": p, "mitigation": mitigation,
                         "data bias": data_bias.get(("yes", GROUPS[0])),
                         "trained on": len(data), "steps": steps, "seconds": result.elapsed_s,
                         **score_decisions(model, tok, template, test, history, config.seed)})
            del model
    record = {"config": config.to_dict(), "lr": config.lr, "groups": list(GROUPS), "n_test": len(test),
              "rows": rows}
    finish(out, record, COLUMNS, lambda d: save_bias_plot(rows, d / "bias.png"))
    return record


def save_bias_plot(rows: list[dict], path, title: str = "") -> None:
    """Bias in the training labels (x) against bias in the model's decisions (y), greedy (filled) and sampled
    (hollow), one colour per mitigation; the diagonal is "no amplification"."""
    fig, (ax,) = figure(6.5, 5)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="decisions = data")
    for i, m in enumerate(dict.fromkeys(r["mitigation"] for r in rows if r["skew p"] is not None)):
        mine = [r for r in rows if r["mitigation"] == m]
        x = [r["data bias"] for r in mine]
        colour = f"C{i}"
        for mode, style, face in (("greedy", "o-", colour), ("sampled", "o--", "none")):
            y = [math.nan if r[f"{mode} bias"] is None else r[f"{mode} bias"] for r in mine]   # None: no "yes"
            ax.plot(x, y, style, color=colour, mfc=face, label=f"{m}: {mode}")
    ax.axhline(0.5, color="black", lw=0.5)
    ax.set_xlim(0.4, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"bias in the training labels: share of 'yes' going to {GROUPS[0]}")
    ax.set_ylabel(f"bias in the model's decisions: share of 'yes' to {GROUPS[0]}")
    ax.set_title(title or "bias in, bias out (held-out profiles, half from each town)")
    ax.legend(fontsize=9, loc="lower right")
    save(fig, path)


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
