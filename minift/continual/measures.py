"""What a model knows after each update, and the pictures of it.

    ask(model, tok, template, questions)   greedy answers, batched, with the KV cache (finetune.sft.generate_batch)
    score_answers(answers, questions, t)   after update t, over the held-out questions (data/updates.questions_after):

        new        share right among the facts update t brought           (learning)
        earlier    share right among earlier facts that are still current  (retention)
        changed    share right among facts that replaced a value (a new price, a festival moved)
        stale      share of those answered with the REPLACED value: the model still believes the old fact
        stale_new  the same, among update t's changed facts only
        all        share right among every fact known after update t

    save_curves           per update: new, earlier, changed, stale, and the general forgetting, on one figure
    save_learning_vs_forgetting   one trajectory per variant: what it learned (new) against what it lost
                          (1 − earlier, and the rise of the probe text's loss), the same axes for every variant

A right answer names the current value as a whole word (data/updates.names_value); an empty group scores NaN (not 0:
"nothing to ask" is not "all wrong").
"""

from __future__ import annotations

import math
from pathlib import Path

from minift.data.updates import names_value
from minift.plots import figure, save
from minift.finetune.sft import generate_batch


def ask(model, tok, template, questions: list[dict], max_new_tokens: int = 8) -> list[str]:
    return generate_batch(model, tok, questions, max_new_tokens, template)


def score_answers(answers: list[str], questions: list[dict], t: int) -> dict:
    """The measures of the module docstring; also the group sizes n_new, n_earlier, n_changed."""
    right = [names_value(a, q["value"]) for a, q in zip(answers, questions)]
    stale = [q["old"] is not None and names_value(a, q["old"]) and not r
             for a, q, r in zip(answers, questions, right)]
    new = [i for i, q in enumerate(questions) if q["update"] == t]
    earlier = [i for i, q in enumerate(questions) if q["update"] < t]
    changed = [i for i, q in enumerate(questions) if q["old"] is not None]
    changed_new = [i for i in changed if i in set(new)]
    return {"new": _share(right, new), "earlier": _share(right, earlier), "changed": _share(right, changed),
            "stale": _share(stale, changed), "stale_new": _share(stale, changed_new),
            "all": _share(right, list(range(len(questions)))),
            "n_new": len(new), "n_earlier": len(earlier), "n_changed": len(changed)}


def _share(flags: list[bool], idx: list[int]) -> float:
    return sum(flags[i] for i in idx) / len(idx) if idx else math.nan


def save_curves(records: list[dict], path, title: str = "", probe: str = "pretraining text") -> None:
    """Accuracies per update on the left axis, general forgetting (Δ loss on the probe text) on the right."""
    fig, (ax,) = figure()
    x = [r["update"] + 1 for r in records]
    for key, style in (("new", "o-"), ("earlier", "s-"), ("changed", "^-"), ("stale", "x--")):
        ax.plot(x, [r[key] for r in records], style, label=key)
    ax.set_xlabel("after update")
    ax.set_ylabel("share of held-out questions")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xticks(x)
    right = ax.twinx()
    right.plot(x, [r["forgetting"] for r in records], "k:", label="forgetting (Δ loss)")
    right.set_ylabel(f"general forgetting: Δ loss on {probe}")
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="center left", fontsize=9)
    ax.set_title(title)
    save(fig, Path(path))


def save_learning_vs_forgetting(variants: dict[str, list[dict]], path, title: str = "",
                                probe: str = "pretraining text") -> None:
    """Two panels, one trajectory per variant (a marker per update, the last one filled): learning (share of new
    facts right) against forgetting of earlier facts (1 − earlier), and against general forgetting (Δ loss)."""
    fig, axes = figure(11, 4.5, cols=2)
    for name, records in variants.items():
        y = [r["new"] for r in records]
        for ax, xs in zip(axes, ([1 - r["earlier"] for r in records], [r["forgetting"] for r in records])):
            line, = ax.plot(xs, y, "-", marker="o", mfc="none", alpha=0.8, label=name)
            ax.plot(xs[-1:], y[-1:], "o", color=line.get_color())
    axes[0].set_xlabel("forgetting of earlier facts: 1 − earlier")
    axes[1].set_xlabel(f"general forgetting: Δ loss on {probe}")
    for ax in axes:
        ax.set_ylabel("learning: share of the new update's facts right")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "learning vs forgetting (up and to the left is better)")
    save(fig, Path(path))
