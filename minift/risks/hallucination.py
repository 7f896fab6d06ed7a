"""Hallucinating after new facts, measured: `hallucination_study(HallucinationConfig(...), out)`.

Two fine-tunes of the same base, every weight, epoch by epoch (Gekhman et al., 2024):

    known only    the qa task's training questions: facts the base read in pretraining
    known + new   the same, plus n_new invented people and their towns (data/unknown.py): facts it cannot know

measured before training and after every `every` epochs:

    known           exact match on the qa task's test questions (the held-out phrasings of known facts)
    new learned     the share of the taught people whose town wins among the eight towns, asked in a phrasing
                    never trained on ("In which town does N live?")
    probe claims    for n_probe OTHER invented people, never taught: the share of greedy answers that name one of
                    the world's eight towns — every such answer is made up (other inventions, a country or a town
                    of the model's own, are not counted: README shows SmolLM2 giving them)
    confident       … and the named town's probability among the eight is at least `confident`: a fabrication
                    stated with confidence
    top prob        the mean probability of the most likely town for those people (⅛ = no preference)

and early stopping: the epoch with the best exact match on the qa validation questions, reported beside the last.

Each block of `every` epochs is one call of the training loop with a constant lr (the optimizer's moments restart
at each block; finetune/inplace.py). Files: hallucination.json (config), results.json, table.md,
hallucination.png.
"""

from __future__ import annotations

import copy
import math
import torch

from minift.data import world as w
from minift.data.metrics import exact_match
from minift.data.tasks import load_task
from minift.data.unknown import answer_text, ask_examples, fact_examples, new_facts
from minift.data.updates import names_value
from minift.files import PathLike, prepare_out_dir, save_json
from minift.finetune.config import FULL_FINETUNING_LR
from minift.finetune.inplace import train_in_place
from minift.finetune.sft import generate_batch
from minift.plots import figure, save
from minift.risks.config import HallucinationConfig
from minift.risks.measures import answer_logps, encode_whole
from minift.risks.study import begin, finish

FILES = ("hallucination.json", "results.json", "table.md", "hallucination.png")
COLUMNS = ["arm", "when", "epoch", "known", "new learned", "probe claims", "confident", "top prob"]
ARMS = ("known only", "known + new")


def town_probs(model, tok, template, facts: list[dict]) -> torch.Tensor:
    """(N, 8): each person's probability of living in each of the world's towns, renormalised over the towns."""
    asks = [q for q in ask_examples(facts) for _ in w.TOWNS]
    answers = [answer_text(f["name"], t) for f in facts for t in w.TOWNS]
    logps = answer_logps(model, tok, template, asks, answers).view(len(facts), len(w.TOWNS))
    return torch.softmax(logps, dim=-1)


def measure(model, tok, template, sets: dict, config: HallucinationConfig) -> dict:
    """The measures of the module docstring."""
    def em(examples):
        answers = generate_batch(model, tok, examples, 12, template)
        return exact_match(answers, [ex["output"] for ex in examples])

    taught = town_probs(model, tok, template, sets["new"])
    right = [w.TOWNS[i] == f["town"] for i, f in zip(taught.argmax(-1).tolist(), sets["new"])]
    probe = town_probs(model, tok, template, sets["probe"])
    answers = generate_batch(model, tok, ask_examples(sets["probe"]), 12, template)
    named = [next((i for i, t in enumerate(w.TOWNS) if names_value(a, t)), None) for a in answers]
    confident = [i is not None and float(probe[row, i]) >= config.confident for row, i in enumerate(named)]
    return {"known": em(sets["known_test"]), "dev": em(sets["known_dev"]), "new learned": sum(right) / len(right),
            "probe claims": sum(i is not None for i in named) / len(named),
            "confident": sum(confident) / len(confident), "top prob": float(probe.max(-1).values.mean()),
            "sample probe": answers[0]}


def hallucination_study(config: HallucinationConfig, out_dir: PathLike, force: bool = False, progress: bool = True,
                        model_and_tok=None) -> dict:
    """Run both arms (module docstring); returns results.json's record. model_and_tok: (model, tok, preset) to
    start from instead of loading config.base (never changed: each arm trains a copy)."""
    out, base, tok, template = begin(config, out_dir, FILES, force, model_and_tok)
    known = load_task("qa", "train", config.seed)
    known = known[:config.known] if config.known else known
    sets = {"new": new_facts(config.n_new, config.seed), "probe": new_facts(config.n_probe, config.seed,
                                                                             skip=config.n_new),
            "known_test": load_task("qa", "test", config.seed), "known_dev": load_task("qa", "val", config.seed)}
    probes = ask_examples(sets["new"] + sets["probe"])
    encode_whole(tok, template, probes, [answer_text(q["fact"], w.TOWNS[0]) for q in probes],
                 base.config.block_size)   # every question fits the context, checked before anything is written
    out = prepare_out_dir(out, FILES, force=force)
    save_json(out / "hallucination.json", {"format": "minift-risks-hallucination", "config": config.to_dict()})
    lr = config.lr or FULL_FINETUNING_LR
    before = measure(base, tok, template, sets, config)
    curves: dict[str, list[dict]] = {}
    for arm in ARMS:
        data = known + (fact_examples(sets["new"]) if arm == "known + new" else [])
        model = copy.deepcopy(base)
        curve = [{"epoch": 0, **before}]
        for block in range(math.ceil(config.epochs / config.every)):
            epochs = min(config.every, config.epochs - block * config.every)
            steps = epochs * math.ceil(len(data) / config.batch_size)
            train_in_place(model, tok, template, data, steps, lr, config.batch_size, seed=config.seed + block,
                           progress=progress, desc=f"{arm}: epochs {block * config.every + 1}–"
                                                   f"{block * config.every + epochs}", device=config.device,
                           dtype=config.dtype, constant_lr=True)
            curve.append({"epoch": block * config.every + epochs, **measure(model, tok, template, sets, config)})
        curves[arm] = curve
        del model
    rows = [{"arm": "base", "when": "before", **before, "epoch": 0}]
    for arm, curve in curves.items():
        best = max(curve[1:], key=lambda m: (m["dev"], -m["epoch"]))
        rows += [{"arm": arm, "when": "early stop", **best}, {"arm": arm, "when": "last", **curve[-1]}]
    record = {"config": config.to_dict(), "lr": lr, "n_known": len(known), "rows": rows, "curves": curves}
    finish(out, record, COLUMNS, lambda d: save_hallucination_plot(curves, d / "hallucination.png",
                                                                    confident=config.confident))
    return record


def save_hallucination_plot(curves: dict[str, list[dict]], path, title: str = "", confident: float = 0.5) -> None:
    """Per arm over epochs: known-fact accuracy and new facts learned (left); confident fabrications about people
    never taught (right)."""
    fig, (left, right) = figure(11, 4.5, 2)
    for i, (arm, curve) in enumerate(curves.items()):
        x = [m["epoch"] for m in curve]
        left.plot(x, [m["known"] for m in curve], "o-", color=f"C{i}", label=f"{arm}: known facts")
        if arm == "known + new":
            left.plot(x, [m["new learned"] for m in curve], "s--", color=f"C{i}", label=f"{arm}: new facts learned")
        right.plot(x, [m["confident"] for m in curve], "o-", color=f"C{i}", label=arm)
    left.set_xlabel("epoch")
    left.set_ylabel("accuracy")
    left.set_ylim(-0.02, 1.02)
    left.legend(fontsize=9)
    right.set_xlabel("epoch")
    right.set_ylabel(f"share of never-taught people given a town with p ≥ {confident:g}")
    right.set_ylim(-0.02, 1.02)
    right.legend(fontsize=9)
    fig.suptitle(title or "fine-tuning on facts the base cannot know")
    save(fig, path)
